"""The local transformers providers with a tiny Llama built in a fixture (no network)."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ModelLoadError, ModelNotFound
from app.core.events import Finished, Progress, TextDelta, UsageReport
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.transformers import HuggingFaceProvider, LocalProvider

MSGS = (ChatMessage("system", "be brief"), ChatMessage("user", "hello world, what is the capital?"))


def request(model: Path | str, provider: str = "local", **params: Any) -> GenerationRequest:
    params.setdefault("temperature", 0.0)
    return GenerationRequest(ModelRef(provider, str(model)), MSGS, GenerationParams(**params))


async def collect(provider: LocalProvider, req: GenerationRequest) -> tuple[str, list[Any]]:
    events = [e async for e in provider.stream(req)]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


def raw_greedy(provider: LocalProvider, max_new: int) -> tuple[list[int], list[int], str]:
    """Prompt ids, generated ids and their decode with plain ``model.generate`` on the worker."""
    import torch

    from app.providers.local_prompt import prompt_ids

    def job() -> tuple[list[int], list[int], str]:
        loaded = provider._runtime().loaded
        assert loaded is not None
        ids = prompt_ids(loaded.tokenizer, MSGS)
        out = loaded.model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False)
        gen = out[0, len(ids):].tolist()
        return ids, gen, loaded.tokenizer.decode(gen, skip_special_tokens=True)

    return provider.worker.call(job, timeout=30)


def test_stream_matches_generate_with_exact_usage(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    text, events = run(collect(provider, request(tiny_model, max_tokens=24)))
    ids, gen, expected = raw_greedy(provider, 24)
    assert text == expected and text
    usage = next(e for e in events if isinstance(e, UsageReport))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (len(ids), 24, False)
    assert events[-1] == Finished("length")
    assert any(isinstance(e, Progress) for e in events[: events.index(next(e for e in events if isinstance(e, TextDelta)))])
    count = provider.count_tokens(str(tiny_model), list(MSGS))
    assert count.exact and count.tokens == len(ids)


def test_chat_template_has_a_single_bos(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    run(provider.load(str(tiny_model)))
    ids, _, _ = raw_greedy(provider, 1)
    tok = provider.worker.call(lambda: provider._runtime().loaded.tokenizer)
    assert tok("x")["input_ids"][0] == tok.bos_token_id  # the tokenizer adds BOS by itself...
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # ...but only one lands


def test_same_seed_same_text_other_seed_other_text(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    a = run(collect(provider, request(tiny_model, temperature=1.0, seed=7, max_tokens=30)))[0]
    b = run(collect(provider, request(tiny_model, temperature=1.0, seed=7, max_tokens=30)))[0]
    c = run(collect(provider, request(tiny_model, temperature=1.0, seed=8, max_tokens=30)))[0]
    assert a == b
    assert a != c


def test_stop_string_is_cut_and_reason_is_stop(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    full, _ = run(collect(provider, request(tiny_model, max_tokens=40)))
    i = next(i for i in range(4, len(full) - 2) if "\ufffd" not in full[i : i + 2] and full[i : i + 2].strip())
    stop = full[i : i + 2]
    text, events = run(collect(provider, request(tiny_model, max_tokens=40, stop=(stop,))))
    assert text == full[: full.index(stop)]
    assert events[-1] == Finished("stop")
    usage = next(e for e in events if isinstance(e, UsageReport))
    assert usage.completion_tokens < 40


def test_cancel_stops_within_a_token_and_frees_the_worker(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    run(provider.load(str(tiny_model)))

    async def scenario() -> str:
        first = asyncio.Event()

        async def consume() -> None:
            async for event in provider.stream(request(tiny_model, max_tokens=450)):
                if isinstance(event, TextDelta):
                    first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        cancelled = provider.last_stats
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await provider.worker.submit(lambda: None)  # the generation job has ended
        assert cancelled is not None and cancelled.tokens_at_cancel is not None
        assert cancelled.tokens - cancelled.tokens_at_cancel <= 2
        text, events = await collect(provider, request(tiny_model, max_tokens=3))
        assert events[-1] == Finished("length")
        return text

    assert run(scenario(), timeout=30)
    stats = provider.last_stats  # the second request's stats
    assert stats is not None and stats.tokens == 3


def test_cancel_counts_tokens_after_the_cancel(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    run(provider.load(str(tiny_model)))

    async def scenario() -> Any:
        stream = provider.stream(request(tiny_model, max_tokens=450))
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        stats = provider.last_stats
        await stream.aclose()  # what the engine does when its task is cancelled
        await provider.worker.submit(lambda: None)
        return stats

    stats = run(scenario(), timeout=30)
    assert stats.tokens_at_cancel is not None
    assert stats.tokens - stats.tokens_at_cancel <= 2
    assert stats.tokens < 450


def test_two_streams_take_turns(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    log: list[tuple[int, str]] = []

    async def consume(i: int) -> str:
        parts = []
        async for event in provider.stream(request(tiny_model, max_tokens=20)):
            log.append((i, type(event).__name__))
            if isinstance(event, TextDelta):
                parts.append(event.text)
        return "".join(parts)

    async def scenario() -> list[str]:
        return list(await asyncio.gather(consume(1), consume(2)))

    a, b = run(scenario(), timeout=30)
    assert a == b  # same greedy request, no interference
    first_done = log.index((1, "Finished"))
    assert all(i == 1 for i, kind in log[:first_done] if kind == "TextDelta")
    assert (2, "TextDelta") in log[first_done:]


def test_switching_models_frees_the_old_one(local_ctx: Any, tiny_model: Path, tiny_model_wide: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    run(provider.load(str(tiny_model)))
    ref = provider.worker.call(lambda: weakref.ref(provider._runtime().loaded.model))
    info = run(provider.load(str(tiny_model_wide)))
    assert info.state == "ready" and info.context_length == 512 and info.supports_adapters and info.is_local
    assert ref() is None
    assert run(provider.loaded_model()) == f"local:{tiny_model_wide}"
    run(provider.unload())
    assert run(provider.loaded_model()) is None


def test_failed_load_keeps_the_previous_model(local_ctx: Any, tiny_model: Path, tmp_path: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    before, _ = run(collect(provider, request(tiny_model, max_tokens=8)))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 10}))
    with pytest.raises(ModelLoadError, match="Could not load"):
        run(provider.load(str(broken)))
    assert run(provider.loaded_model()) == f"local:{tiny_model}"
    after, _ = run(collect(provider, request(tiny_model, max_tokens=8)))
    assert after == before


def test_bad_local_paths_get_clear_errors(local_ctx: Any, tmp_path: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    with pytest.raises(ModelNotFound, match="No model at"):
        run(provider.load(str(tmp_path / "nothing")))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        run(provider.load(str(tmp_path / "notes.txt")))
    with pytest.raises(ModelLoadError, match="no config.json"):
        run(provider.load(str(tmp_path)))


def test_huggingface_model_not_downloaded_offline_is_a_clear_error(local_ctx: Any, run: Callable[..., Any]) -> None:
    provider = HuggingFaceProvider(local_ctx)
    with pytest.raises(ModelNotFound) as err:
        run(provider.load("nobody-here/not-a-real-model-xyz"), timeout=20)
    assert "hf download nobody-here/not-a-real-model-xyz" in str(err.value)
    assert "Traceback" not in str(err.value)


def _fake_hub_cache(root: Path, repo: str, files_from: Path) -> None:
    """A Hugging Face Hub cache entry (blobs + snapshot symlinks), as hf download leaves it."""
    import hashlib

    entry = root / ("models--" + repo.replace("/", "--"))
    commit = "0" * 40
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    snap = entry / "snapshots" / commit
    snap.mkdir(parents=True)
    (entry / "blobs").mkdir()
    for f in files_from.iterdir():
        data = f.read_bytes()
        blob = entry / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(Path("../../blobs") / blob.name)


def test_huggingface_loads_and_lists_from_the_hub_cache(
    local_ctx: Any, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "org/tiny-chat", tiny_model)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    provider = HuggingFaceProvider(local_ctx)
    models = run(provider.list_models())
    assert [m.ref.name for m in models] == ["org/tiny-chat"] and models[0].state == "available"
    text, events = run(collect(provider, request("org/tiny-chat", provider="huggingface", max_tokens=5)))
    assert text and events[-1] == Finished("length")
    assert run(provider.list_models())[0].state == "ready"


def test_local_list_models_has_the_bundled_model_and_recent_ones(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    models = run(provider.list_models())
    assert models[0].ref.name == "smollm2"
    assert models[0].display_name == "SmolLM2-135M-Instruct (bundled)"
    assert models[0].state == "available"
    progress: list[Progress] = []
    run(provider.load(str(tiny_model), on_progress=progress.append))
    assert progress and progress[-1].phase == "loaded"
    assert local_ctx.settings.recent_local_models == [f"local:{tiny_model}"]
    listed = {m.ref.name: m for m in run(provider.list_models())}
    assert listed[str(tiny_model)].state == "ready"


def test_count_tokens_estimates_when_no_tokenizer_is_at_hand(local_ctx: Any) -> None:
    """Before the bundled GGUF is loaded (or converted) its own chat template is rendered
    from the file's metadata: the default system prompt it adds is counted (the window once
    said ~11 where SmolLM2 used 37)."""
    count = LocalProvider(local_ctx).count_tokens("smollm2", [ChatMessage("user", "What is the capital of France?")])
    assert not count.exact and "chat template" in count.method and "estimate" in count.method
    assert abs(count.tokens - 37) <= 37 * 0.1  # 37: llama.cpp's own count of this request


def test_count_tokens_before_loading_uses_the_folders_template_exactly(
    local_ctx: Any, tiny_model: Path, run: Callable[..., Any]
) -> None:
    from app.providers.chat_templates import count_in_folder

    provider = LocalProvider(local_ctx)
    before = count_in_folder(tiny_model, MSGS)  # tokenizer.json + template: no transformers needed
    run(collect(provider, request(tiny_model, max_tokens=2)))
    after = provider.count_tokens(str(tiny_model), list(MSGS))  # the loaded tokenizer's apply_chat_template
    assert after.exact and before == (after.tokens, True)


def test_the_tokenizer_copy_for_counting_loads_on_its_own_thread(
    local_ctx: Any, tiny_model: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting on the event loop (a run's live figures) never loads a tokenizer there: the
    copy is made on a thread of its own; until it is ready it counts from the files, exactly."""
    import threading

    from transformers import AutoTokenizer

    real = AutoTokenizer.from_pretrained
    loaded_on: list[str] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        loaded_on.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", recorded)
    provider = LocalProvider(local_ctx)
    run(collect(provider, request(tiny_model, max_tokens=2)))
    loaded_on.clear()  # the model's own load (on the worker)

    async def count_on_the_loop() -> Any:  # as a run's live figures count
        return provider.count_tokens(str(tiny_model), list(MSGS))

    during = run(count_on_the_loop())
    for thread in list(provider._tokenizer_loads.values()):
        thread.join(timeout=30)
    after = run(count_on_the_loop())
    assert during.exact and after.exact and during.tokens == after.tokens
    assert after.method.startswith("tokenizer:")
    assert loaded_on == ["tokenizer-copy"], loaded_on  # never on the loop's thread


def test_closing_while_the_interpreter_exits_still_stops_the_worker(
    local_ctx: Any, tiny_model: Path, run: Callable[..., Any]
) -> None:
    """At interpreter exit no executor takes work (``asyncio.to_thread`` raises): the worker
    is then stopped on the calling thread, not left running into the exit."""
    from concurrent.futures import ThreadPoolExecutor

    provider = LocalProvider(local_ctx)
    run(collect(provider, request(tiny_model, max_tokens=2)))
    worker = provider.worker
    assert worker._thread is not None and worker._thread.is_alive()

    async def close_without_an_executor() -> None:
        executor = ThreadPoolExecutor()
        executor.shutdown()  # as concurrent.futures leaves them at exit
        asyncio.get_running_loop().set_default_executor(executor)
        await provider.aclose()

    run(close_without_an_executor())
    assert not worker._thread.is_alive()


def test_changing_the_dtype_setting_reloads_the_model(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    run(provider.load(str(tiny_model)))
    local_ctx.settings.local.dtype = "bfloat16"
    text, events = run(collect(provider, request(tiny_model, max_tokens=4)))
    assert text and events[-1] == Finished("length")
    assert provider.worker.call(lambda: str(next(provider._runtime().loaded.model.parameters()).dtype)) == "torch.bfloat16"


def test_aclose_stops_a_running_generation(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    provider = LocalProvider(local_ctx)
    run(provider.load(str(tiny_model)))

    async def scenario() -> list[Any]:
        first = asyncio.Event()
        events: list[Any] = []

        async def consume() -> None:
            async for event in provider.stream(request(tiny_model, max_tokens=450)):
                events.append(event)
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        await provider.aclose()
        await task
        return events

    events = run(scenario(), timeout=30)
    assert events[-1] == Finished("cancelled")
    stats = provider.last_stats
    assert stats is not None and stats.tokens_at_cancel is not None
    assert stats.tokens - stats.tokens_at_cancel <= 2
    assert "model_worker" not in local_ctx.extra


def test_int8_setting_quantises_linear_layers_and_takes_adapters(
    local_ctx: Any, tiny_model: Path, adapters: dict[str, Path], run: Callable[..., Any]
) -> None:
    from app.core.settings import LocalModelSettings
    from app.core.types import AdapterSpec
    from app.providers.local_loading import pick_dtype

    local_ctx.settings.local.dtype = "int8"
    provider = LocalProvider(local_ctx)
    text, events = run(collect(provider, request(tiny_model, max_tokens=6)))
    assert text and events[-1] == Finished("length")
    kinds = provider.worker.call(lambda: {type(m).__name__ for m in provider._runtime().loaded.model.modules()})
    assert "QuantLinear" in kinds and "Linear" not in kinds
    req = GenerationRequest(ModelRef("local", str(tiny_model)), MSGS, GenerationParams(temperature=0.0, max_tokens=6),
                            adapters=(AdapterSpec(str(adapters["a"])),))
    with_adapter, events = run(collect(provider, req))
    assert with_adapter and with_adapter != text and events[-1] == Finished("length")
    with pytest.raises(ModelLoadError, match="CPU only"):
        pick_dtype(LocalModelSettings(dtype="int8"), "cuda")
    with pytest.raises(ModelLoadError, match="CPU only"):
        pick_dtype(LocalModelSettings(dtype="int4"), "cuda")
    assert pick_dtype(LocalModelSettings(), "cpu") == "int4" and pick_dtype(LocalModelSettings(), "cuda") == "bfloat16"


def test_huggingface_model_without_network_fails_fast(
    local_ctx: Any, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    """Not offline by setting, but no network: a clear error in seconds, not after ~50 s of retries."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    provider = HuggingFaceProvider(local_ctx)
    with pytest.raises(ModelNotFound) as err:
        run(provider.load("nobody-here/not-a-real-model-xyz"), timeout=15)
    assert "cannot be reached" in str(err.value) and "hf download nobody-here/not-a-real-model-xyz" in str(err.value)


def test_cancel_while_loading_skips_generation(
    local_ctx: Any, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    """Stop pressed during the load: the model still loads, but no prompt is processed after it."""
    import threading

    from app.providers import local_runtime

    real_load = local_runtime.load_model
    loaded, release = threading.Event(), threading.Event()

    def load_then_wait(*args: Any, **kwargs: Any) -> Any:
        result = real_load(*args, **kwargs)
        loaded.set()
        release.wait(10)  # the user presses Stop now
        return result

    monkeypatch.setattr(local_runtime, "load_model", load_then_wait)
    provider = LocalProvider(local_ctx)

    async def scenario() -> None:
        task = asyncio.create_task(collect(provider, request(tiny_model, max_tokens=450)))
        assert await asyncio.to_thread(loaded.wait, 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        release.set()
        await provider.worker.submit(lambda: None)  # the stream's job has ended

    run(scenario(), timeout=30)
    stats = provider.last_stats
    assert stats is not None and stats.tokens == 0 and stats.prompt_tokens == 0
    assert run(provider.loaded_model()) == f"local:{tiny_model}"


def test_token_counting_never_runs_a_models_custom_code(
    local_ctx: Any, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_remote_code is off unless the model is listed in the settings (no stdin prompt either)."""
    import builtins
    import shutil

    import transformers  # noqa: F401  (count_tokens only loads tokenizers once transformers is imported)

    folder = tmp_path / "custom-code"
    shutil.copytree(tiny_model, folder)
    marker = tmp_path / "custom-code-ran"
    (folder / "custom_tok.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PreTrainedTokenizerFast\n"
        "class CustomTok(PreTrainedTokenizerFast):\n    pass\n"
    )
    cfg_file = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["auto_map"] = {"AutoTokenizer": [None, "custom_tok.CustomTok"]}
    cfg["tokenizer_class"] = "CustomTok"  # no class of that name in transformers: only the custom code has it
    cfg_file.write_text(json.dumps(cfg))
    monkeypatch.setattr(builtins, "input", lambda *_a: "y")  # someone at the terminal would say yes
    count = LocalProvider(local_ctx).count_tokens(str(folder), list(MSGS))
    assert not marker.exists()
    assert not count.exact
