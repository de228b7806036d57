"""The quantized copy of a model on disk: keyed by the source's hash and the variant.

A GGUF model's copy lives next to its safetensors conversion
(``<cache>/gguf/<sha256>/quantized-<variant>-v<format>.safetensors``); a folder or Hub
model's under ``<cache>/quantized/<fingerprint>/``. Prebuilt read-only copies (made at
setup or build time, see :mod:`app.providers.bundled`) are found the same way and never
written. A copy is written to a temp file and renamed, so a killed app leaves no half file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.providers.bundled import prebuilt_dirs
from app.providers.local_quant import FORMAT_VERSION, QuantizedModel

log = logging.getLogger(__name__)


def quant_file_name(variant: str) -> str:
    """The file name of a quantized copy."""
    return f"quantized-{variant}-v{FORMAT_VERSION}.safetensors"


def folder_fingerprint(folder: Path) -> str:
    """A cheap key of a model folder: names, sizes and mtimes of its weights and config."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin", ".json") and path.is_file() and not path.name.startswith("quantized-"):
            st = path.stat()
            digest.update(f"{path.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def candidates(folder: Path, source_key: str | None, cache_root: Path, variant: str) -> list[Path]:
    """Where a quantized copy may be, in lookup order (``source_key``: the GGUF sha, if any)."""
    name = quant_file_name(variant)
    found = []
    if source_key is not None:
        found.append(folder / name)  # next to the GGUF conversion (prebuilt or user cache)
        found.append(cache_root / "gguf" / source_key / name)
    found.append(cache_root / "quantized" / (source_key or folder_fingerprint(folder)) / name)
    return list(dict.fromkeys(found))


def load_cached(paths: list[Path], config: Any, source_key: str) -> tuple[Any, QuantizedModel, Path] | None:
    """The model rebuilt from the first readable copy whose key matches, else None."""
    from app.providers.local_quant import load_packed, model_from_packed

    for path in paths:
        if not path.is_file():
            continue
        try:
            meta, tensors = load_packed(path)
            if meta.get("source") != source_key:
                log.info("quantized copy %s is for another source; ignored", path)
                continue
            model, quantized = model_from_packed(config, meta, tensors)
        except Exception:  # a damaged or old copy: quantize again
            log.warning("could not use the quantized copy %s", path, exc_info=True)
            continue
        return model, quantized, path
    return None


def writable(paths: list[Path], cache_root: Path) -> list[Path]:
    """The candidates a copy may be written to: never into a prebuilt folder, unless that is
    the cache being filled (``python -m app.providers.bundled_setup prepare``)."""
    roots = [r.resolve() for r in prebuilt_dirs()]
    cache = cache_root.resolve()
    return [p for p in paths if p.resolve().is_relative_to(cache) or not any(p.resolve().is_relative_to(r) for r in roots)]


def store(paths: list[Path], quantized: QuantizedModel, model: Any, source_key: str) -> Path | None:
    """Write the copy to the first writable place; None when none is (only a speed-up)."""
    from app.providers.local_quant import save_packed

    for path in paths:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_packed(quantized, model, tmp, {"source": source_key, "written": str(int(time.time()))})
            os.replace(tmp, path)
            prune_older_formats(path, quantized.variant)
            return path
        except OSError:
            log.debug("cannot write the quantized copy at %s", path, exc_info=True)
            try:
                tmp.unlink()
            except OSError:
                pass
    return None


def prune_older_formats(path: Path, variant: str) -> list[Path]:
    """Delete the copies of ``variant`` in ``path``'s folder written in an older format (a
    format change quantizes again; the old copy, tens of MB, would never be read). Returns them."""
    removed = []
    older = re.compile(rf"quantized-{re.escape(variant)}-v\d+\.safetensors")
    for old in path.parent.glob(f"quantized-{variant}-v*.safetensors"):
        if old.name != quant_file_name(variant) and older.fullmatch(old.name):
            try:
                old.unlink()
                removed.append(old)
            except OSError:
                log.debug("cannot remove the old quantized copy %s", old, exc_info=True)
    return removed


def load_quantized(
    location: Path,
    variant: str,
    cache_root: Path,
    source_key: str | None,
    trust_remote_code: bool,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, QuantizedModel, bool]:
    """(model, quantized, from cache): the quantized copy if cached, else quantize and cache it.

    Raises ``ValueError`` when the model is not a Llama-style decoder (the caller falls back).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from app.providers.local_quant import decoder_layers, quantize_model

    key = source_key or folder_fingerprint(location)
    paths = candidates(location, source_key, cache_root, variant)
    config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    hit = load_cached(paths, config, key)
    if hit is not None:
        if progress:
            progress(1, 1)
        return hit[0], hit[1], True
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, trust_remote_code=trust_remote_code)
    if decoder_layers(model) is None:
        raise ValueError("not a Llama-style decoder")
    model.eval()  # type: ignore[no-untyped-call]
    quantized = quantize_model(model, variant, progress)
    written = store(writable(paths, cache_root), quantized, model, key)
    if written is None:
        log.warning("no writable place for the quantized copy of %s; the next load quantizes again", location)
    return model, quantized, False
