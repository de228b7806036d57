"""The BackendManager against the real Engine, ledger and mock provider (qasync loop)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.core.events import Progress
from app.core.run_events import (
    RunCancelled,
    RunFailed,
    RunFinished,
    RunReasoning,
    RunStarted,
    RunStats,
    RunText,
)
from app.core.services import Services
from app.core.types import (
    ChatMessage,
    GenerationParams,
)
from app.ui.backend_manager import BackendManager
from tests.conftest import collect_run_events, wait_run_event, wait_signal
from tests.support.fakes import FakeLocal

HI = [ChatMessage("user", "hello there")]


def _collect(backend: BackendManager) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {}
    for signal in (backend.run_event, backend.run_delta):
        signal.connect(lambda event: seen.setdefault(type(event).__name__, []).append(event))
    for name in ("busy_changed", "ledger_changed", "model_changed", "model_loading", "model_loaded", "model_load_failed", "adapter_failed"):
        getattr(backend, name).connect(lambda *a, n=name: seen.setdefault(n, []).append(a))
    return seen


def test_generate_streams_and_records(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:echo")
    seen = _collect(backend)

    async def scenario() -> None:
        request = backend.request(HI, GenerationParams())
        gen = backend.generate(request, conversation_id="c1", message_id=5)
        assert backend.is_busy()
        finished = await wait_run_event(backend, RunFinished)
        assert finished.run_id == gen and finished.result.text == "hello there"
        assert finished.result.request is request  # passed down unchanged
        assert not backend.is_busy()
        started = seen["RunStarted"][0]
        assert started.run_id == gen and started.info.model == "mock:echo"
        assert started.info.conversation_id == "c1" and started.info.message_id == 5
        assert "".join(e.text for e in seen["RunText"]) == "hello there"
        assert seen["RunStats"][-1].figures.tokens == 2
        assert [b for (b,) in seen["busy_changed"]] == [True, False]
        await asyncio.sleep(0)
        assert len(seen["ledger_changed"]) == 1
        rec = services.ledger.recent(5)[0]
        assert rec.model == "echo" and rec.conversation_id == "c1" and rec.completion_tokens == 2

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_stop_mid_stream_reports_partial(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:lorem?n=5000&rate=200")
    seen = _collect(backend)

    async def scenario() -> None:
        gen = backend.generate(backend.request(HI, GenerationParams(max_tokens=None)))
        for _ in range(3):
            await wait_run_event(backend, RunText, timeout=5)
        backend.stop()
        cancelled = await wait_run_event(backend, RunCancelled, timeout=5)
        assert cancelled.run_id == gen and len(cancelled.partial_text.split()) >= 3
        assert not backend.is_busy()
        assert "RunFinished" not in seen
        assert services.ledger.recent(1)[0].finish_reason == "cancelled"

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_error_mid_stream_keeps_partial(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:lorem?n=50&fail=mid&fail_after=5")

    async def scenario() -> None:
        gen = backend.generate(backend.request(HI, GenerationParams()))
        failed = await wait_run_event(backend, RunFailed, timeout=5)
        assert failed.run_id == gen and "cut mid-way" in failed.message
        assert len(failed.partial_text.split()) == 5
        assert not backend.is_busy()

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_bad_params_fail_cleanly(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:echo")

    async def scenario() -> None:
        backend.generate(backend.request(HI, GenerationParams(temperature=5.0)))
        failed = await wait_run_event(backend, RunFailed, timeout=5)
        assert "temperature" in failed.message and failed.partial_text == ""
        assert not backend.is_busy()

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_second_generate_while_busy_is_refused(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:lorem?n=100&rate=100")

    async def scenario() -> None:
        backend.generate(backend.request(HI, GenerationParams()))
        from app.core.errors import AppError

        with pytest.raises(AppError, match="already running"):
            backend.generate(backend.request(HI, GenerationParams()))
        backend.stop()
        await wait_run_event(backend, RunCancelled, timeout=5)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_switch_model_and_failed_load_keeps_previous(qloop: Any, services: Services) -> None:
    services.registry.register("local", FakeLocal)
    backend = BackendManager(services, model_id="mock:echo")
    seen = _collect(backend)

    async def scenario() -> None:
        backend.set_model("mock:markdown")
        assert backend.current_model() == "mock:markdown"
        backend.set_model("local:broken")
        mid, message = await wait_signal(backend.model_load_failed, 5)
        assert mid == "local:broken" and "damaged" in message
        assert backend.current_model() == "mock:markdown"
        assert ("local:broken", Progress("reading weights", 0.5)) in seen["model_loading"]
        backend.set_model("local:good")
        assert backend.current_model() == "local:good"  # the choice counts at once, before the load
        (mid,) = await wait_signal(backend.model_loaded, 5)
        assert mid == "local:good" and backend.current_model() == "local:good"
        assert seen["model_loaded"] == [("local:good",)]
        assert seen["model_changed"][-1] == ("local:good",)
        assert not backend.is_remote() and backend.is_remote("openai:gpt-4o-mini")

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_default_local_model_is_not_loaded_eagerly(qloop: Any, services: Services) -> None:
    services.registry.register("local", FakeLocal)
    backend = BackendManager(services, model_id="local:smollm2")
    assert backend.current_model() == "local:smollm2" and backend.needs_load()
    assert "local" not in services.registry.loaded()


def test_adapters_refused_for_remote_models(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="openai:gpt-4o-mini")

    async def scenario() -> None:
        backend.load_adapter("/nowhere/adapter")
        (message,) = await wait_signal(backend.adapter_failed, 5)
        assert "local models only" in message
        assert backend.adapters() == [] and backend.active_adapters() == ()

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_compare_runs_base_then_adapters(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:echo")
    seen = collect_run_events(backend)

    async def scenario() -> None:
        a, b = backend.compare(HI, GenerationParams())
        await wait_run_event(backend, RunFinished, timeout=5)
        if len([e for e in seen if isinstance(e, RunFinished)]) < 2:
            await wait_run_event(backend, RunFinished, timeout=5)
        assert [e.run_id for e in seen if isinstance(e, RunFinished)] == [a, b]
        assert [e.info.adapters for e in seen if isinstance(e, RunStarted)] == [(), ()]
        assert not backend.is_busy()

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


def test_reasoning_is_signalled_apart_from_the_answer(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:echo?think=4")
    seen = collect_run_events(backend)

    async def scenario() -> None:
        gen = backend.generate(backend.request(HI, GenerationParams()))
        finished = await wait_run_event(backend, RunFinished, timeout=10)
        result = finished.result
        tokens = [e.text for e in seen if isinstance(e, RunText)]
        reasoning = [(e.run_id, e.text) for e in seen if isinstance(e, RunReasoning)]
        stats = [e.figures for e in seen if isinstance(e, RunStats)]
        assert finished.run_id == gen and result.text == "hello there" == "".join(tokens)
        assert [g for g, _ in reasoning] == [gen] * 4
        assert "".join(t for _, t in reasoning) == result.reasoning == "alpha beta gamma delta"
        assert stats[0].reasoning_tokens == 1 and stats[0].tokens == 0  # thinking, no answer yet
        assert stats[-1].reasoning_tokens == 4

    qloop.run_until_complete(asyncio.wait_for(scenario(), 15))


def test_a_fast_stream_of_tokens_crosses_merged_and_before_its_end(qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:tokens?n=640")  # 64 tokens per loop turn
    seen = collect_run_events(backend)

    async def scenario() -> None:
        backend.generate(backend.request(HI, GenerationParams(max_tokens=None, logprobs=2)))
        finished = await wait_run_event(backend, RunFinished, timeout=10)
        texts = [e for e in seen if isinstance(e, RunText)]
        assert seen.index(finished) > seen.index(texts[-1])  # all text before the end
        assert "".join(e.text for e in texts) == finished.result.text
        tokens = [t for e in texts for t in e.tokens]
        assert len(tokens) == 640 and "".join(t.text for t in tokens) == finished.result.text
        assert len(texts) <= 640 // 32  # merged per loop turn, not one signal per token

    qloop.run_until_complete(asyncio.wait_for(scenario(), 15))


def test_merged_deltas_held_when_the_window_goes_are_dropped_quietly(qloop: Any, services: Services) -> None:
    import shiboken6

    from app.core.events import TokenLogprob

    backend = BackendManager(services, model_id="mock:echo")
    seen = collect_run_events(backend)

    async def scenario() -> None:
        backend._deltas.add(RunText("r1", "held", (TokenLogprob("held", -0.1),)))  # until the turn ends
        shiboken6.delete(backend)  # the window and its manager are gone before that
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 5))  # the loop saw no error
    assert seen == []
