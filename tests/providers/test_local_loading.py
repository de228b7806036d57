"""Loading a local model (app/providers/local_loading.py): where it comes from, the device and
dtype, hashing and the GGUF cache bookkeeping, and a real load of a tiny Llama with one
growing progress bar; failures say what to do."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ModelLoadError, ModelNotFound
from app.core.settings import LocalModelSettings
from app.providers import local_loading
from app.providers.local_loading import (
    ModelSource,
    load_model,
    pick_device,
    pick_dtype,
    resolve_source,
)

CPU32 = LocalModelSettings(device="cpu", dtype="float32", threads=1)


def test_sources_are_folders_gguf_files_or_hub_ids_and_mistakes_say_what_to_give(tmp_path: Path, tiny_model: Path) -> None:
    folder = resolve_source("local", str(tiny_model))
    assert (folder.kind, folder.location, folder.display_name) == ("folder", str(tiny_model.resolve()), tiny_model.name)
    assert folder.model_id == f"local:{tiny_model.resolve()}"
    gguf = tmp_path / "m.GGUF"
    gguf.write_bytes(b"GGUF")
    assert resolve_source("local", str(gguf)).kind == "gguf"
    assert resolve_source("huggingface", "org/model") == ModelSource("huggingface:org/model", "hub", "org/model", "org/model")
    with pytest.raises(ModelNotFound, match="No model at") as info:
        resolve_source("local", str(tmp_path / "missing"))
    assert "local:smollm2" in info.value.hint
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="is not a .gguf file"):
        resolve_source("local", str(tmp_path / "notes.txt"))
    with pytest.raises(ModelLoadError, match="has no config.json") as info:
        resolve_source("local", str(tmp_path))
    assert "config.json" in info.value.hint
    with pytest.raises(ModelNotFound, match="not a valid Hugging Face model id"):
        resolve_source("huggingface", "a//b c")


def test_device_and_dtype_follow_the_settings_with_cpu_defaults() -> None:
    import torch

    assert pick_device(LocalModelSettings(device="cpu")) == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU") as info:
            pick_device(LocalModelSettings(device="cuda"))
        assert "auto or cpu" in info.value.hint
        assert pick_device(LocalModelSettings()) in ("cpu", "mps")
    assert pick_dtype(LocalModelSettings(), "cpu") == local_loading.CPU_DEFAULT_DTYPE == "int4"
    assert pick_dtype(LocalModelSettings(), "cuda") == "bfloat16"
    assert pick_dtype(LocalModelSettings(), "mps") == "float16"
    assert pick_dtype(LocalModelSettings(dtype="float32"), "cuda") == "float32"
    with pytest.raises(ModelLoadError, match="int8 weights run on the CPU only"):
        pick_dtype(LocalModelSettings(dtype="int8"), "cuda")


def test_a_gguf_hash_is_computed_once_and_remembered_by_path_size_and_time(tmp_path: Path) -> None:
    import hashlib

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights" * 1000)
    steps: list[tuple[Any, ...]] = []
    sha = local_loading._known_sha(gguf, tmp_path / "cache", lambda *a: steps.append(a))
    assert sha == hashlib.sha256(gguf.read_bytes()).hexdigest() == local_loading.file_sha256(gguf)
    assert steps and steps[-1][:2] == ("hashing", 1.0)
    steps.clear()
    assert local_loading._known_sha(gguf, tmp_path / "cache", lambda *a: steps.append(a)) == sha
    assert steps == []  # remembered: not hashed again
    gguf.write_bytes(b"other weights")  # changed: hashed again
    assert local_loading._known_sha(gguf, tmp_path / "cache", None) == hashlib.sha256(b"other weights").hexdigest()
    (tmp_path / "cache" / "gguf" / "index.json").write_text("[not a mapping", encoding="utf-8")
    assert local_loading._known_sha(gguf, tmp_path / "cache", None) == hashlib.sha256(b"other weights").hexdigest()


def test_a_conversion_is_expected_unless_a_finished_copy_of_that_file_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_loading, "prebuilt_dirs", lambda: [])
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x" * 10)
    cache = tmp_path / "cache"
    assert local_loading.expects_conversion(gguf, cache)
    done = local_loading.gguf_cache_dir(cache, "ab" * 32)
    done.mkdir(parents=True)
    (done / local_loading.SOURCE_FILE).write_text(json.dumps({"name": "m.gguf", "size": 10}))
    assert local_loading.expects_conversion(gguf, cache)  # no config.json: unfinished
    (done / "config.json").write_text("{}")
    assert not local_loading.expects_conversion(gguf, cache)
    gguf.write_bytes(b"x" * 11)
    assert local_loading.expects_conversion(gguf, cache)
    assert local_loading.expects_conversion(tmp_path / "gone.gguf", cache)


def test_only_stale_conversion_temp_folders_are_removed(tmp_path: Path) -> None:
    old, new, other = tmp_path / ".tmp-old", tmp_path / ".tmp-new", tmp_path / "keep"
    for folder in (old, new, other):
        folder.mkdir()
    past = time.time() - 2 * local_loading.STALE_TEMP_S
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    local_loading.remove_stale_temp(tmp_path)
    assert not old.exists() and new.exists() and other.exists()


def test_a_folder_loads_with_one_growing_progress_bar(tiny_model: Path, tmp_path: Path) -> None:
    events: list[tuple[Any, ...]] = []
    loaded = load_model(resolve_source("local", str(tiny_model)), CPU32, tmp_path, lambda *e: events.append(e))
    assert (loaded.device, loaded.dtype, loaded.fast) == ("cpu", "float32", None)
    assert loaded.context_length == loaded.model.config.max_position_embeddings
    assert loaded.tokenizer.chat_template and not loaded.model.training
    fractions = [e[1] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[0][1] is not None and events[-1][0] == "loaded"
    assert f"{tiny_model.name} loaded in" in events[-1][2] and loaded.load_seconds >= 0.0


def test_an_int8_load_quantizes_runs_the_lean_step_and_caches_the_copy(tiny_model: Path, tmp_path: Path) -> None:
    settings = LocalModelSettings(device="cpu", dtype="int8", threads=1)
    phases: list[str] = []
    loaded = load_model(resolve_source("local", str(tiny_model)), settings, tmp_path, lambda *e: phases.append(e[0]))
    assert loaded.requested_dtype == "int8" and loaded.fast is not None
    assert "quantizing" in phases
    assert any(p.suffix == ".safetensors" for p in tmp_path.rglob("*"))  # the quantized copy, for next time


def test_a_broken_folder_is_a_clear_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelLoadError, match="Could not load") as info:
        load_model(resolve_source("local", str(broken)), CPU32, tmp_path / "cache")
    assert "complete transformers causal-LM" in info.value.hint
