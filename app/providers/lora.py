"""LoRA adapters on the loaded local model (peft), validated before they touch the model.

Everything except :class:`AdapterInfo` and :func:`read_adapter_files` runs on the model
worker thread. Several adapters stay loaded by name; one, none (base) or a weighted
combination (peft ``add_weighted_adapter`` with ``cat``, which is exact for any ranks) is
active; each adapter's scale multiplies its LoRA scaling. Switching never reloads the base.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.core.errors import AdapterError
from app.core.types import AdapterInfo

__all__ = ["AdapterInfo", "AdapterSet", "read_adapter_files", "check_fit"]

log = logging.getLogger(__name__)

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_KEY_RE = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$")


@dataclass(frozen=True)
class AdapterFiles:
    """The checked files of an adapter folder."""

    folder: Path
    config: dict[str, Any]
    weights: Path
    sha256: str
    rank: int
    alpha: float
    targets: tuple[str, ...] | str


def adapter_folder(path: str | Path) -> Path:
    """The adapter folder for ``path`` (the folder itself or its adapter_config.json)."""
    p = Path(path).expanduser()
    if p.is_file() and p.name == CONFIG_FILE:
        p = p.parent
    if not p.exists():
        raise AdapterError(f"No adapter at '{p}'.", hint="Choose the folder that holds adapter_config.json and adapter_model.safetensors.")
    if not p.is_dir():
        raise AdapterError(f"'{p}' is not an adapter folder.", hint="Choose the adapter folder or its adapter_config.json file.")
    return p.resolve()


def read_adapter_files(path: str | Path) -> AdapterFiles:
    """Read and check an adapter's config and weights header (no torch needed)."""
    folder = adapter_folder(path)
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise AdapterError(f"'{folder}' has no {CONFIG_FILE}.", hint="A LoRA adapter folder needs adapter_config.json and adapter_model.safetensors.")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("the top level is not an object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AdapterError(f"{CONFIG_FILE} in '{folder}' is not valid JSON ({exc}).", hint="Re-export the adapter.") from exc
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise AdapterError(f"The adapter in '{folder}' is a {config.get('peft_type')} adapter, not LoRA.", hint="Only LoRA adapters are supported.")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        extra = " It has adapter_model.bin: convert it to safetensors first." if (folder / "adapter_model.bin").exists() else ""
        raise AdapterError(f"'{folder}' has no {WEIGHTS_FILE}.{extra}", hint="Save the adapter with safe_serialization (the peft default).")
    targets = config.get("target_modules")
    if isinstance(targets, list):
        targets = tuple(str(t) for t in targets)
    elif not isinstance(targets, str):
        raise AdapterError(f"{CONFIG_FILE} in '{folder}' names no target_modules.", hint="Re-export the adapter with peft.")
    try:
        rank = int(config.get("r", 8))
        alpha = float(config.get("lora_alpha", rank))
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"{CONFIG_FILE} in '{folder}' has a bad r or lora_alpha ({exc}).") from exc
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return AdapterFiles(folder, config, weights, digest.hexdigest(), rank, alpha, targets)


def _tensor_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor, reading headers only; corrupt files raise AdapterError."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as exc:
        raise AdapterError(f"The adapter weights '{weights}' are corrupt or unreadable ({exc}).", hint="Re-download or re-export the adapter.") from exc


def _target_matches(target: tuple[str, ...] | str, name: str) -> bool:
    if isinstance(target, str):
        return target == "all-linear" or re.fullmatch(target, name) is not None
    return any(name == t or name.endswith("." + t) for t in target)


def _features(module: Any) -> tuple[int, int] | None:
    """(in, out) features of a Linear-like or Embedding module, looking through LoRA wrappers."""
    module = getattr(module, "base_layer", module)
    if type(module).__name__ == "QuantLinear":  # quantized weights: the shape is in the attributes
        return int(module.in_features), int(module.out_features)
    w = getattr(module, "weight", None)
    if w is None or w.dim() != 2:
        return None
    kind = type(module).__name__
    if kind == "Conv1D":  # GPT-2 style: weight is [in, out]
        return int(w.shape[0]), int(w.shape[1])
    if kind == "Embedding":
        return int(w.shape[0]), int(w.shape[1])
    return int(w.shape[1]), int(w.shape[0])


def check_fit(model: Any, files: AdapterFiles, model_hint: str) -> list[str]:
    """Check that the adapter fits ``model``: targets exist, shapes match. Return warnings."""
    modules = {
        n: m for n, m in model.named_modules() if n and ".lora_" not in n and not n.endswith(".base_layer") and "lora_" not in n.rsplit(".", 1)[-1]
    }
    if isinstance(files.targets, tuple):
        missing = [t for t in files.targets if not any(_target_matches((t,), n) for n in modules)]
        if missing:
            raise AdapterError(
                f"The adapter targets layers this model does not have: {', '.join(missing)}.",
                hint="It was made for a different model architecture; load the base model it was trained on.",
            )
    elif not any(_target_matches(files.targets, n) for n in modules):
        raise AdapterError(f"The adapter's target_modules '{files.targets}' match no layer of this model.", hint="Load the base model it was trained on.")
    shapes = _tensor_shapes(files.weights)
    if not shapes:
        raise AdapterError(f"The adapter weights '{files.weights}' hold no tensors.", hint="Re-export the adapter.")
    ranks: dict[str, int] = {}
    for key, shape in shapes.items():
        m = _KEY_RE.match(key[len(_PREFIX):] if key.startswith(_PREFIX) else key)
        if m is None:
            continue
        name, part = m.group("module"), m.group("part")
        module = modules.get(name)
        if module is None:
            raise AdapterError(f"The adapter has weights for '{name}', which this model does not have.", hint="Load the base model it was trained on.")
        feats = _features(module)
        if feats is None or len(shape) != 2:
            continue
        fin, fout = feats
        if part in ("lora_A", "lora_embedding_A"):
            ok, want, rank = shape[1] == fin, f"[r, {fin}]", shape[0]
        else:
            ok, want, rank = shape[0] == fout, f"[{fout}, r]", shape[1]
        if not ok:
            raise AdapterError(
                f"The adapter does not fit this model: {part} of '{name}' has shape {list(shape)}, the model needs {want}.",
                hint="It was trained for a different base model (different layer sizes).",
            )
        if ranks.setdefault(name, rank) != rank:
            raise AdapterError(f"The adapter is inconsistent: lora_A and lora_B of '{name}' have different ranks.", hint="Re-export the adapter.")
    warnings = []
    hint = files.config.get("base_model_name_or_path")
    if hint and model_hint and not _same_model(str(hint), model_hint):
        warnings.append(f"The adapter was trained on '{hint}', but the loaded model is '{model_hint}'; outputs may be poor.")
    return warnings


def _model_key(name: str) -> str:
    """``name``'s last path part, lower case, without a file extension, "-instruct" or punctuation."""
    parts = [p for p in re.split(r"[/\\]", name.strip().lower()) if p]
    last = re.sub(r"\.(gguf|safetensors|bin|pt)$", "", parts[-1]) if parts else ""
    return re.sub(r"[^a-z0-9]", "", last.replace("-instruct", ""))


def _same_model(a: str, b: str) -> bool:
    """Loose comparison of two model names (a hint only; unknown names count as the same)."""
    ka, kb = _model_key(a), _model_key(b)
    return not ka or not kb or ka in kb or kb in ka


def safe_adapter_name(stem: str, taken: set[str]) -> str:
    """A peft-safe adapter name from ``stem`` (never "lora", no dots), unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", stem).strip("_") or "adapter"
    if base.lower() in ("lora", "default") or base[0].isdigit():
        base = f"adapter_{base}"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


class AdapterSet:
    """The adapters on one base model. Worker thread only."""

    def __init__(self, base_model: Any, model_hint: str) -> None:
        self.base = base_model
        self.model_hint = model_hint
        self.peft: Any = None
        self._infos: dict[str, AdapterInfo] = {}
        self._orig_scaling: dict[str, list[tuple[Any, float]]] = {}
        self._combo: tuple[str, tuple[tuple[str, float], ...]] | None = None
        self.active: dict[str, float] = {}

    def infos(self) -> list[AdapterInfo]:
        """Loaded adapters with their scale and active flag."""
        return [replace(i, scale=self.active.get(n, i.scale), active=n in self.active) for n, i in self._infos.items()]

    def find(self, path: str | Path) -> str | None:
        """The name of the adapter loaded from ``path``, if any."""
        folder = str(adapter_folder(path))
        return next((n for n, i in self._infos.items() if i.path == folder), None)

    def load(self, path: str | Path, name: str | None = None) -> AdapterInfo:
        """Validate and load an adapter (inactive). The model is untouched on failure."""
        files = read_adapter_files(path)
        warnings = check_fit(self.base, files, self.model_hint)
        if name is not None:
            if name in self._infos:
                raise AdapterError(f"An adapter named '{name}' is already loaded.", hint="Unload it first or pick another name.")
            if name.lower() == "lora" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise AdapterError(f"'{name}' cannot be an adapter name.", hint="Use letters, digits and underscores (not 'lora').")
        else:
            name = safe_adapter_name(files.folder.name, set(self._infos))
        try:
            if self.peft is None:
                from peft import PeftModel

                self.peft = PeftModel.from_pretrained(self.base, str(files.folder), adapter_name=name, is_trainable=False)
            else:
                self.peft.load_adapter(str(files.folder), adapter_name=name, is_trainable=False)
        except Exception as exc:
            self._drop_partial(name)
            raise AdapterError(f"peft could not load the adapter '{files.folder}': {type(exc).__name__}: {exc}", hint="Check that it is a LoRA adapter for this model.") from exc
        missing = self._missing_weights(name, files.weights)
        if missing:
            self._drop_partial(name)
            raise AdapterError(
                f"The adapter weights in '{files.weights}' have no LoRA weights for {len(missing)} of the layers "
                f"its config targets (e.g. '{missing[0]}'): those layers would run with "
                f"{'random' if files.config.get('init_lora_weights') is False else 'empty'} values instead of trained ones.",
                hint="The file is incomplete or saved in a layout this app cannot read: re-export the adapter with peft's save_pretrained.",
            )
        self._orig_scaling[name] = [(m, m.scaling[name]) for m in self._lora_layers() if name in m.scaling]
        info = AdapterInfo(name, str(files.folder), files.sha256, files.rank, files.alpha,
                           files.targets if isinstance(files.targets, tuple) else (files.targets,),
                           files.config.get("base_model_name_or_path"), tuple(warnings))
        self._infos[name] = info
        self._apply()  # keep the previous activation (the new adapter stays inactive)
        return info

    def _missing_weights(self, name: str, weights: Path) -> list[str]:
        """Layers that peft gave adapter ``name`` but the weights file has no lora_A/lora_B for.

        peft only warns about such missing keys and leaves those layers at their init values
        (random when the config says ``init_lora_weights: false``), so the adapter would
        silently do nothing or produce garbage.
        """
        found: dict[str, set[str]] = {}
        for key in _tensor_shapes(weights):
            m = _KEY_RE.match(key[len(_PREFIX):] if key.startswith(_PREFIX) else key)
            if m is not None:
                found.setdefault(m.group("module"), set()).add(m.group("part"))
        missing = []
        for module_name, module in self.base.named_modules():
            if name in getattr(module, "lora_A", {}):
                need = {"lora_A", "lora_B"}
            elif name in getattr(module, "lora_embedding_A", {}):
                need = {"lora_embedding_A", "lora_embedding_B"}
            else:
                continue
            if not need <= found.get(module_name, set()):
                missing.append(module_name)
        return missing

    def _drop_partial(self, name: str) -> None:
        if self.peft is None:
            return
        try:
            if name in self.peft.peft_config:
                self.peft.delete_adapter(name)
        except Exception:  # best effort: the adapter never became usable
            log.debug("cleanup of adapter %s failed", name, exc_info=True)
        if not self._infos:
            self._unwrap()

    def _lora_layers(self) -> list[Any]:
        from peft.tuners.lora import LoraLayer

        return [m for m in self.base.modules() if isinstance(m, LoraLayer)]

    def unload(self, name: str) -> None:
        """Delete one adapter (and the combination that used it)."""
        if name not in self._infos:
            raise AdapterError(f"No adapter named '{name}' is loaded.", hint="See the list of loaded adapters.")
        self.active.pop(name, None)
        self._drop_combo()
        self.peft.delete_adapter(name)
        del self._infos[name]
        del self._orig_scaling[name]
        if not self._infos:
            self._unwrap()
        else:
            self._apply()

    def _unwrap(self) -> None:
        """Remove every LoRA layer, leaving the plain base model."""
        if self.peft is not None:
            self.base = self.peft.unload()
            self.peft = None
        self.active = {}

    def _drop_combo(self) -> None:
        if self._combo is not None and self.peft is not None:
            self.peft.delete_adapter(self._combo[0])
        self._combo = None

    def set_active(self, weights: dict[str, float]) -> None:
        """Make exactly ``weights`` active ({} = the base model)."""
        unknown = [n for n in weights if n not in self._infos]
        if unknown:
            raise AdapterError(f"No adapter named {', '.join(repr(u) for u in unknown)} is loaded.", hint="Load it first.")
        self.active = {n: float(w) for n, w in weights.items() if w != 0}
        self._apply()

    def _apply(self) -> None:
        if self.peft is None:
            return
        for name, layers in self._orig_scaling.items():
            factor = self.active.get(name, 1.0) if len(self.active) == 1 else 1.0
            for module, orig in layers:
                module.scaling[name] = orig * factor
        if not self.active:
            self._drop_combo()
            self.peft.base_model.disable_adapter_layers()
            return
        self.peft.base_model.enable_adapter_layers()
        if len(self.active) == 1:
            self._drop_combo()
            self.peft.base_model.set_adapter(next(iter(self.active)))
            return
        key = tuple(sorted(self.active.items()))
        if self._combo is None or self._combo[1] != key:
            self._drop_combo()
            combo = safe_adapter_name("combined", set(self._infos))
            names = [n for n, _ in key]
            self.peft.add_weighted_adapter(names, [w for _, w in key], combo, combination_type="cat")
            for module in self._lora_layers():
                if combo in module.scaling:
                    module.scaling[combo] = 1.0
            self._combo = (combo, key)
        self.peft.base_model.set_adapter(self._combo[0])
