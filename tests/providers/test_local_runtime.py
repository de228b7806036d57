"""The model worker's state (app/providers/local_runtime.py): one loaded model kept across
requests of the same id and settings, replaced only after a new load succeeds, its adapters
set to exactly a request's, and generation and counting on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import AdapterError, ModelLoadError
from app.core.settings import LocalModelSettings
from app.core.types import AdapterSpec, ChatMessage, GenerationParams
from app.providers.local_generation import CancelFlag, GenStats
from app.providers.local_loading import resolve_source
from app.providers.local_runtime import LocalRuntime

MSGS = (ChatMessage("user", "hello there"),)


@pytest.fixture
def settings() -> list[LocalModelSettings]:
    return [LocalModelSettings(device="cpu", dtype="float32", threads=1)]


@pytest.fixture
def runtime(settings: list[LocalModelSettings], tmp_path: Path) -> LocalRuntime:
    return LocalRuntime(lambda: settings[0], tmp_path / "cache")


def test_nothing_loaded_says_to_load_a_model_first(runtime: LocalRuntime) -> None:
    assert runtime.list_adapters() == [] and runtime.loaded_id is None
    with pytest.raises(AdapterError, match="No local model is loaded") as info:
        runtime.count(MSGS)
    assert "Load a local or huggingface model first" in info.value.hint
    with pytest.raises(AdapterError):
        runtime.load_adapter("/nowhere")
    runtime.apply_request_adapters([])  # no adapters asked: nothing to do, no error


def test_the_same_model_is_kept_and_a_settings_change_reloads_it(
    runtime: LocalRuntime, settings: list[LocalModelSettings], tiny_model: Path
) -> None:
    source = resolve_source("local", str(tiny_model))
    first = runtime.load(source)
    assert runtime.loaded_id == source.model_id and runtime.context_length == first.context_length
    assert runtime.load(source) is first  # same id, device and dtype: not loaded again
    settings[0] = LocalModelSettings(device="cpu", dtype="bfloat16", threads=1)
    second = runtime.load(source)
    assert second is not first and second.dtype == "bfloat16" and runtime.loaded is second
    runtime.unload()
    assert (runtime.loaded, runtime.adapters, runtime.loaded_id, runtime.context_length) == (None, None, None, None)
    assert runtime.garbage  # the provider collects on the loop thread


def test_a_first_load_leaves_nothing_to_collect_and_starts_measuring_the_load(
    settings: list[LocalModelSettings], tiny_model: Path, tmp_path: Path
) -> None:
    settings[0] = LocalModelSettings(device="cpu", dtype="float32")  # threads chosen by the tuner
    runtime = LocalRuntime(lambda: settings[0], tmp_path / "cache")
    runtime.load(resolve_source("local", str(tiny_model)))
    assert not runtime.garbage  # no model was dropped: no full collection stalls the first answer
    # the tuner's first look at the other processes' load spans the model load (not a 0 s window
    # at the first answer, which reads as an idle machine and probes every core under load)
    assert runtime.tuner is not None and runtime.tuner.free_cores() >= 1


def test_a_failed_load_keeps_the_loaded_model(runtime: LocalRuntime, tiny_model: Path, tmp_path: Path) -> None:
    loaded = runtime.load(resolve_source("local", str(tiny_model)))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelLoadError):
        runtime.load(resolve_source("local", str(broken)))
    assert runtime.loaded is loaded and runtime.count(MSGS) > 0


def test_request_adapters_become_exactly_the_active_ones(runtime: LocalRuntime, tiny_model: Path, adapters: dict[str, Path]) -> None:
    runtime.load(resolve_source("local", str(tiny_model)))
    runtime.apply_request_adapters([AdapterSpec(str(adapters["a"]), scale=0.5), AdapterSpec(str(adapters["b"]))])
    active = {i.name: i.scale for i in runtime.list_adapters() if i.active}
    assert sorted(active.values()) == [0.5, 1.0] and len(runtime.list_adapters()) == 2
    runtime.apply_request_adapters([AdapterSpec(str(adapters["a"]))])  # loaded once, then found by path
    assert len(runtime.list_adapters()) == 2
    assert [i.scale for i in runtime.list_adapters() if i.active] == [1.0]
    runtime.apply_request_adapters([])
    assert not any(i.active for i in runtime.list_adapters())
    name = runtime.list_adapters()[0].name
    runtime.unload_adapter(name)
    assert name not in {i.name for i in runtime.list_adapters()}


def test_generate_and_count_use_the_loaded_model(runtime: LocalRuntime, tiny_model: Path) -> None:
    runtime.load(resolve_source("local", str(tiny_model)))
    got: list[str] = []
    prompt, completion, reason = runtime.generate(MSGS, GenerationParams(temperature=0.0, max_tokens=4), got.append,
                                                  CancelFlag(GenStats()))  # fmt: skip
    assert prompt == runtime.count(MSGS) and (completion, reason) == (4, "length")
    assert runtime.threads == 1  # the setting's thread count was applied
    assert runtime.count((*MSGS, ChatMessage("assistant", "a longer answer here"))) > prompt


def test_a_quantized_model_generates_on_the_lean_step(runtime: LocalRuntime, settings: list[LocalModelSettings], tiny_model: Path) -> None:
    settings[0] = LocalModelSettings(device="cpu", dtype="int8", threads=1)
    loaded = runtime.load(resolve_source("local", str(tiny_model)))
    assert loaded.fast is not None and loaded.fast.ready
    got: list[str] = []
    _, completion, reason = runtime.generate(MSGS, GenerationParams(temperature=0.0, max_tokens=3), got.append,
                                             CancelFlag(GenStats()))  # fmt: skip
    assert (completion, reason) == (3, "length")
