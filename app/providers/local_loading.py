"""Finding and loading in-process models: Hub ids, model folders and GGUF files.

``resolve_source`` is cheap (no torch). ``load_model`` runs on the model worker thread,
imports torch/transformers lazily and reports progress through a callback. A GGUF file is
converted once into a safetensors copy under ``<cache>/gguf/<sha256>`` (written to a temp
folder and renamed, so an interrupted conversion never leaves a half cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import ModelLoadError, ModelNotFound, NoSuchModel
from app.core.settings import LocalModelSettings
from app.providers.bundled import (
    BUNDLED_ALIAS,
    bundled_gguf_path,
    local_install_hint,
    prebuilt_dirs,
)
from app.providers.local_hub import (
    _check_repo_id,
    check_hub_reachable,
    download_snapshot,
    hub_cached,
    hub_offline,
)
from app.providers.local_progress import LoadProgress, ProgressFn, StepFn, gguf_tensor_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. ``kind``: "hub", "folder" or "gguf"."""

    model_id: str
    kind: str
    location: str
    display_name: str


@dataclass
class LoadedModel:
    """A loaded model with its tokenizer (only touched on the model worker thread)."""

    source: ModelSource
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    context_length: int | None
    folder: str = ""
    requested_dtype: str = ""  # the dtype asked for (``dtype`` is what runs: bf16 when int4 does not apply)
    fast: Any = None  # a FastDecoder when the lean CPU decode step runs this model
    fast_reason: str | None = None  # why it does not (None when it does)
    load_seconds: float = 0.0


def resolve_source(provider: str, name: str) -> ModelSource:
    """Turn ``provider:name`` into a :class:`ModelSource`; raise clear errors when missing."""
    model_id = f"{provider}:{name}"
    if provider == "huggingface":
        _check_repo_id(name)
        return ModelSource(model_id, "hub", name, name)
    if name.strip().lower() == BUNDLED_ALIAS:
        path = bundled_gguf_path()
        return ModelSource(f"local:{BUNDLED_ALIAS}", "gguf", str(path), "SmolLM2-135M-Instruct (bundled)")
    path = Path(name).expanduser()
    if not path.exists():
        raise NoSuchModel(
            f"No model at '{path}'.",
            hint="Give the path of a model folder (config.json + weights + tokenizer) or of a "
            ".gguf file, or use local:smollm2 for the bundled model.",
        )
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(
                f"'{path.name}' is not a .gguf file.",
                hint="local: accepts a model folder or a .gguf file.",
            )
        return ModelSource(f"local:{path}", "gguf", str(path), path.stem)
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"The folder '{path}' has no config.json, so it is not a transformers model folder.",
            hint="Point to the folder that holds config.json, the weights (*.safetensors) and the tokenizer files.",
        )
    return ModelSource(f"local:{path}", "folder", str(path), path.name)


def pick_device(settings: LocalModelSettings) -> str:
    """The user's device, else CUDA, then MPS, then CPU."""
    import torch

    if settings.device != "auto":
        if settings.device == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("CUDA was chosen but no CUDA GPU is available.", hint="Set the device to auto or cpu in the settings.")
        if settings.device == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("MPS was chosen but is not available.", hint="Set the device to auto or cpu in the settings.")
        return settings.device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# Measured in benchmarks/bench_local.py (docs/benchmarks.md): int4 (groups of 32, least-squares zeros) on
# the lean decode step is ~4x bf16 ``generate`` with perplexity within 1% of bf16 and bf16's
# answers to four of the five questions (Paris included); int4-qkv8 (int8 q/k/v) is as good
# and ~5-10% slower. (All-int4 flipped
# SmolLM2's near-tie on "capital of France" until the lean step's RMSNorm took the model's eps.)
CPU_DEFAULT_DTYPE = "int4"
QUANT_VARIANTS = ("int8", "int4", "int4-qkv8")


def pick_dtype(settings: LocalModelSettings, device: str) -> str:
    """The user's dtype, else bf16 on CUDA, fp16 on MPS and :data:`CPU_DEFAULT_DTYPE` on CPU.

    ``int8`` / ``int4`` (CPU only) quantize the weights of the linear layers (weight-only,
    bf16 activations, see :mod:`app.providers.local_quant`); LoRA adapters still attach.
    """
    if settings.dtype in QUANT_VARIANTS and device != "cpu":
        raise ModelLoadError(f"{settings.dtype} weights run on the CPU only.", hint="Set the device to cpu, or the dtype to auto.")
    if settings.dtype != "auto":
        return settings.dtype
    return {"cuda": "bfloat16", "mps": "float16"}.get(device, CPU_DEFAULT_DTYPE)


def file_sha256(path: Path, progress: StepFn | None = None) -> str:
    """Hex sha256 of a file, reporting progress as phase "hashing"."""
    size = max(1, path.stat().st_size)
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress("hashing", min(1.0, done / size), path.name)
    return digest.hexdigest()


def gguf_cache_dir(cache_root: Path, sha: str) -> Path:
    """Where the safetensors copy of the GGUF with hash ``sha`` lives."""
    return cache_root / "gguf" / sha


def convert_gguf(gguf: Path, target: Path, progress: StepFn | None = None) -> Path:
    """Convert ``gguf`` into a safetensors model folder at ``target`` (atomic rename).

    Progress (phase "converting"): the tokenizer 0-15%, the tensors (done / total) 15-90%,
    writing the cache 90-100%.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def report(fraction: float, message: str) -> None:
        if progress:
            progress("converting", fraction, message)

    def tensors(done: int, total: int) -> None:
        if progress:
            message = f"Converting {gguf.name}: tensor {done} of {total}"
            if done == total:  # the count's end is always reported (not rate-limited)
                progress("converting", 0.9, message, True)
            else:
                progress("converting", 0.15 + 0.75 * done / max(1, total), message)

    report(0.0, f"Reading {gguf.name} (once; later loads use a cache)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        report(0.15, f"Converting {gguf.name}: reading the tensors")
        with gguf_tensor_progress(tensors):
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ImportError, ModuleNotFoundError) as exc:
        raise ModelLoadError(f"Reading GGUF files needs the 'gguf' package ({exc}).", hint="pip install gguf") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"Could not read the GGUF file '{gguf.name}': {type(exc).__name__}: {exc}",
            hint="Check that it is a complete llama.cpp GGUF of a model architecture transformers supports.",
        ) from exc
    report(0.9, "Writing the safetensors cache")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name[:16]}-", dir=target.parent))
    try:
        state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps({"name": gguf.name, "size": gguf.stat().st_size}), encoding="utf-8")
        del model, state
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent finished copy
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


STALE_TEMP_S = 3600.0
SOURCE_FILE = "source.json"  # in a conversion folder: the GGUF's name and size


def remove_stale_temp(folder: Path, older_than: float = STALE_TEMP_S) -> None:
    """Delete conversion temp folders left by a killed app (each one a full model copy).

    A conversion interrupted by closing the app never reaches its cleanup. Recent temp
    folders are kept: another app instance may be writing one right now.
    """
    import time

    now = time.time()
    for entry in folder.glob(".tmp-*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > older_than:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _known_sha(gguf: Path, cache_root: Path, progress: StepFn | None) -> str:
    """sha256 of ``gguf``, remembered in ``<cache>/gguf/index.json`` by path, size and mtime."""
    index_file = cache_root / "gguf" / "index.json"
    st = gguf.stat()
    key = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
        if not isinstance(index, dict):
            index = {}
    except (OSError, ValueError):
        index = {}
    sha = index.get(key)
    if isinstance(sha, str) and len(sha) == 64:
        return sha
    sha = file_sha256(gguf, progress)
    index[key] = sha
    try:
        index_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_file.with_name(f".index-{os.getpid()}.json")
        tmp.write_text(json.dumps(index), encoding="utf-8")
        os.replace(tmp, index_file)
    except OSError:  # only a speed-up
        log.debug("could not write %s", index_file, exc_info=True)
    return sha


def expects_conversion(gguf: Path, cache_root: Path) -> bool:
    """A cheap guess (no hashing) whether loading ``gguf`` will convert it (for the ETA)."""
    try:
        size = gguf.stat().st_size
    except OSError:
        return True
    for root in (*prebuilt_dirs(), cache_root):
        for source in (root / "gguf").glob(f"*/{SOURCE_FILE}"):
            try:
                info = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if info.get("name") == gguf.name and info.get("size") == size and (source.parent / "config.json").is_file():
                return False
    return True


def gguf_folder(
    gguf: Path, cache_root: Path, progress: StepFn | None = None, variant: str | None = None
) -> tuple[Path, bool]:
    """The safetensors folder for ``gguf`` (prebuilt, cached or converted now) and whether it existed.

    A prebuilt folder (setup / installer build) may hold only the quantized copy of the
    default variant, without the full weights: it serves ``variant`` when that copy is there.
    """
    from app.providers.local_quant_cache import quant_file_name

    sha = _known_sha(gguf, cache_root, progress)
    for root in prebuilt_dirs():  # converted at setup / build time (read-only)
        folder = gguf_cache_dir(root, sha)
        if (folder / "config.json").is_file() and (
            (folder / "model.safetensors").is_file() or (variant is not None and (folder / quant_file_name(variant)).is_file())
        ):
            return folder, True
    target = gguf_cache_dir(cache_root, sha)
    if (target / "config.json").is_file():
        return target, True
    return convert_gguf(gguf, target, progress), False


def load_model(
    source: ModelSource,
    settings: LocalModelSettings,
    cache_root: Path,
    progress: ProgressFn | None = None,
) -> LoadedModel:
    """Load ``source`` (on the worker thread). Raise ModelNotFound / ModelLoadError clearly.

    ``progress`` gets (phase, overall fraction, message with the ETA) from the first event
    on, and finally ("loaded", 1.0, "... loaded in N s"); ``LoadedModel.load_seconds`` has N.
    """
    import sys

    starting = "torch" not in sys.modules or "transformers" not in sys.modules
    lp = LoadProgress(progress, {"starting": 1.5 if starting else 0.0, **_stage_priors(source, settings, cache_root)})
    lp.update("starting", 0.0, f"Loading {source.display_name}" + (" (starting torch)" if starting else ""), force=True)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelLoadError(
            f"Local models need torch and transformers ({exc}).",
            hint=local_install_hint(),
        ) from exc
    quiet_progress_bars()
    device = pick_device(settings)
    dtype_name = requested = pick_dtype(settings, device)
    trust = source.model_id in settings.trust_remote_code or source.location in settings.trust_remote_code
    kwargs: dict[str, Any] = {"trust_remote_code": trust}
    location: str | Path = source.location

    def stage(phase: str, fraction: float | None, message: str, force: bool = False) -> None:
        lp.update(phase, fraction or 0.0, message, force)

    stage("hashing" if source.kind == "gguf" else "loading", 0.0, f"Preparing {source.display_name}")
    if source.kind == "hub":
        cached = hub_cached(source.location)
        if not cached and hub_offline():
            raise ModelNotFound(
                f"The model '{source.location}' is not downloaded and the Hugging Face Hub is offline.",
                hint=f"Download it first: hf download {source.location} (or huggingface-cli download "
                f"{source.location}), or unset HF_HUB_OFFLINE.",
            )
        if not cached:
            check_hub_reachable(source.location)  # fails in seconds, not after ~50 s of retries
            location = _download(source.location, lp)
        kwargs["local_files_only"] = True  # cached, or downloaded just now
    elif source.kind == "gguf":
        try:
            variant = dtype_name if dtype_name in QUANT_VARIANTS else None
            location, _ = gguf_folder(Path(source.location), cache_root, stage, variant)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"Could not convert '{Path(source.location).name}' into the model cache: {type(exc).__name__}: {exc}",
                hint=f"Check free disk space in {cache_root}; nothing half-written was kept. Try again.",
            ) from exc
    stage("loading", 0.1, f"Loading {source.display_name}")
    quantized: Any = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = None
        if dtype_name in QUANT_VARIANTS:
            model, quantized = _load_quantized(source, location, dtype_name, settings, cache_root, kwargs, stage)
        if model is None:
            weights_dtype = getattr(torch, "bfloat16" if dtype_name in QUANT_VARIANTS else dtype_name)
            dtype_name = "bfloat16" if dtype_name in QUANT_VARIANTS else dtype_name
            model = AutoModelForCausalLM.from_pretrained(location, dtype=weights_dtype, **kwargs)
    except (OSError, ValueError) as exc:
        text = str(exc).lower()
        if source.kind == "hub" and ("offline" in text or "couldn't connect" in text):
            raise ModelNotFound(
                f"Could not get '{source.location}' from the Hugging Face Hub: {exc}",
                hint=f"Download it first: hf download {source.location}",
            ) from exc
        raise ModelLoadError(
            f"Could not load '{source.model_id}': {type(exc).__name__}: {exc}",
            hint="Check that the folder is a complete transformers causal-LM (config, weights, tokenizer). "
            "Models with custom code need their id in settings.local.trust_remote_code.",
        ) from exc
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load '{source.model_id}': {type(exc).__name__}: {exc}",
            hint="The previously loaded model (if any) is still loaded.",
        ) from exc
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers types .to oddly
    model.eval()
    if getattr(tokenizer, "chat_template", None) is None:
        log.warning("%s has no chat template; a plain template is used", source.model_id)
    ctx = getattr(model.config, "max_position_embeddings", None)
    loaded = LoadedModel(source, model, tokenizer, device, dtype_name, ctx if isinstance(ctx, int) else None, str(location),
                         requested_dtype=requested)
    if quantized is not None:
        from app.providers.local_fast import FastDecoder, unsupported_reason

        reason = unsupported_reason(model, quantized)
        if reason is None:
            loaded.fast = FastDecoder(model, quantized)
        else:
            log.info("%s: quantized, but the lean decode step cannot run it (%s)", source.model_id, reason)
        loaded.fast_reason = reason
    elif device != "cpu":
        loaded.fast_reason = f"device {device} (the fast path runs on the CPU)"
    else:
        loaded.fast_reason = (f"no int8/int4 path for {getattr(model.config, 'model_type', 'this model')!r}"
                              if requested in QUANT_VARIANTS else f"dtype {dtype_name} (the fast path runs int8/int4 weights)")
    loaded.load_seconds = lp.finish(source.display_name)
    return loaded


def _stage_priors(source: ModelSource, settings: LocalModelSettings, cache_root: Path) -> dict[str, float]:
    """Prior seconds of each stage of this load (measured here; the ETA rescales them)."""
    stages: dict[str, float] = {}
    dtype_name = settings.dtype if settings.dtype != "auto" else (CPU_DEFAULT_DTYPE if settings.device in ("auto", "cpu") else "")
    if source.kind == "gguf":
        gguf = Path(source.location)
        size = gguf.stat().st_size if gguf.is_file() else 0
        stages["hashing"] = size / 600e6
        stages["converting"] = size / 6e6 if expects_conversion(gguf, cache_root) else 0.0  # ~16 s for 98 MB
    elif source.kind == "hub":
        stages["downloading"] = 0.0 if hub_cached(source.location) else 60.0
    stages["loading"] = 0.5
    if dtype_name in QUANT_VARIANTS:
        stages["quantizing"] = 1.5
    return stages


def _download(repo_id: str, lp: LoadProgress) -> Path:
    """Download ``repo_id`` into the Hub cache with byte progress; its local folder."""
    def report(done: float, total: float) -> None:
        lp.update("downloading", done / total if total else 0.0, f"Downloading {repo_id}: {done / 1e6:.0f} of {total / 1e6:.0f} MB")

    try:
        return download_snapshot(repo_id, report, local_only=False)
    except Exception as exc:
        raise ModelNotFound(
            f"Could not download '{repo_id}' from the Hugging Face Hub: {type(exc).__name__}: {exc}",
            hint=f"Check the connection, or download it first: hf download {repo_id}",
        ) from exc


def _load_quantized(
    source: ModelSource, location: str | Path, variant: str, settings: LocalModelSettings,
    cache_root: Path, kwargs: dict[str, Any], progress: StepFn | None,
) -> tuple[Any, Any]:
    """(model, quantized) from the quantized cache or by quantizing; (None, None) when the
    architecture has no quantized path and the dtype was "auto" (bf16 is used then)."""
    from app.providers.local_quant_cache import load_quantized

    folder = Path(location)
    if source.kind == "hub":
        folder = download_snapshot(source.location, None, local_only=True)
    key = folder.name if source.kind == "gguf" else None

    def report(done: int, total: int) -> None:
        if progress:
            progress("quantizing", done / total, f"Quantizing to {variant}: layer {done} of {total}")

    try:
        model, quantized, _cached = load_quantized(folder, variant, cache_root, key, bool(kwargs.get("trust_remote_code")), report)
    except ValueError as exc:
        if settings.dtype == "auto":
            log.info("%s: no quantized path (%s); loading bfloat16", source.model_id, exc)
            return None, None
        raise ModelLoadError(
            f"{variant} weights need a Llama-style model (q/k/v/o and gate/up/down projections): {exc}.",
            hint="Set the local dtype to auto, bfloat16 or float32 in the settings.",
        ) from exc
    return model, quantized


def quiet_progress_bars() -> None:
    """Silence transformers' console progress bars: loading reports Progress events instead."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def free_memory(device: str | None) -> None:
    """Empty the CUDA cache after a model was dropped (runs on the worker thread).

    No ``gc.collect()`` here: a collection on this thread may destroy unrelated Qt objects
    caught in reference cycles off the GUI thread, which crashes the process. The provider
    collects on the event-loop thread instead (``collect_garbage``).
    """
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def collect_garbage() -> None:
    """Collect reference cycles (a dropped model's) and release cached CUDA memory.

    Call it on the thread that owns the UI objects (the asyncio loop / GUI thread).
    """
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
