"""The run scheduler against real parts: the loopback OpenAI-compatible server (remote lanes),
the mock provider, and an in-process provider fake that keeps a model worker's state (the
local lane)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.core.engine import Engine
from app.core.errors import AdapterError, RateLimited
from app.core.pricing import PriceTable
from app.core.provider import LocalModelProvider, ProviderContext, ProviderRegistry
from app.core.run_events import (
    RunCancelled,
    RunEvent,
    RunFailed,
    RunFinished,
    RunProgress,
    RunQueued,
    RunStarted,
    RunStats,
    RunText,
)
from app.core.runs import RunScheduler
from app.core.settings import RetryPolicy
from app.core.types import (
    AdapterSpec,
    ChatMessage,
    GenerationParams,
    GenerationRequest,
    ModelRef,
)
from app.core.usage import UsageLedger
from tests.support.fakes import FakeLocal
from tests.support.openai_server import OpenAIServer, provider_context, rate_limited, text

HI = (ChatMessage("user", "hi"),)


def _scheduler(context: ProviderContext, ledger: UsageLedger | None = None, **kw: Any) -> RunScheduler:
    registry = ProviderRegistry(context, {"local": FakeLocal})
    return RunScheduler(Engine(registry, PriceTable.load(), ledger), **kw)


def _closing(scheduler: RunScheduler, coro: Any) -> Any:
    """``coro``, then the scheduler's runs and the providers' connections closed."""

    async def wrapped() -> Any:
        try:
            return await coro
        finally:
            await scheduler.aclose()
            await scheduler.engine.registry.aclose()

    return wrapped()


def _request(model: str, endpoint: str | None = None, *, adapters: tuple[AdapterSpec, ...] = (),
             max_tokens: int = 64) -> GenerationRequest:
    return GenerationRequest(ModelRef.parse(model), HI, GenerationParams(temperature=0, max_tokens=max_tokens),
                             endpoint, adapters)


def test_local_fake_is_a_local_model_provider(tmp_path: Any) -> None:
    assert isinstance(FakeLocal(provider_context([])), LocalModelProvider)


def test_remote_runs_overlap_bounded_per_endpoint(run: Any, openai_server: OpenAIServer, tmp_path: Any) -> None:
    openai_server.default = text("a", " b", " c", first_delay_s=0.3)
    context = provider_context([openai_server.endpoint("Loop")], home=tmp_path)
    context.settings.max_concurrent_per_endpoint = 3
    ledger = UsageLedger(tmp_path / "usage.sqlite3")
    scheduler = _scheduler(context, ledger)

    async def scenario() -> list[Any]:
        runs = [scheduler.submit(_request("openai:test-model", "Loop")) for _ in range(7)]
        assert len(scheduler.active()) == 7
        return [await r for r in runs]

    results = run(_closing(scheduler, scenario()), 30)
    assert [r.text for r in results] == ["a b c"] * 7
    assert openai_server.max_active_streams == 3  # concurrent, and never more than the bound
    assert len(ledger.recent(20)) == 7  # every run is in the ledger
    assert not scheduler.busy()
    ledger.close()


def test_a_429_holds_back_that_endpoint_only(run: Any, tmp_path: Any) -> None:
    with OpenAIServer() as limited, OpenAIServer() as other:
        limited.enqueue(rate_limited(retry_after="30"))
        context = provider_context([limited.endpoint("Limited"), other.endpoint("Other")], home=tmp_path,
                                   retry=RetryPolicy(max_attempts=1))
        ledger = UsageLedger(tmp_path / "usage.sqlite3")
        scheduler = _scheduler(context, ledger)

        async def scenario() -> None:
            first = scheduler.submit(_request("openai:test-model", "Limited"))
            ended = await first.wait()
            assert isinstance(ended, RunFailed) and isinstance(ended.error, RateLimited)
            held = scheduler.submit(_request("openai:test-model", "Limited"))
            elsewhere = await scheduler.submit(_request("openai:test-model", "Other"))
            assert elsewhere.text == "Hello from the loopback server."
            assert held.status == "queued"  # the limited endpoint waits out its Retry-After
            held.cancel()
            assert isinstance(await held.wait(), RunCancelled)

        run(_closing(scheduler, scenario()), 20)
        assert len(limited.chat_requests) == 1  # nothing more was sent to the limited endpoint
        assert len(other.chat_requests) == 1
        rows = sorted(ledger.recent(10), key=lambda r: r.started_at)
        assert [r.finish_reason for r in rows] == ["error", "stop", "cancelled"]  # every run, the unsent one too
        assert rows[2].error == "not sent" and rows[2].cost_usd == "0" and rows[2].completion_tokens == 0
        ledger.close()


def test_local_runs_are_grouped_by_model_and_load_each_once(run: Any, tmp_path: Any) -> None:
    context = provider_context([], home=tmp_path)
    scheduler = _scheduler(context)
    fake = scheduler.engine.registry.get("local")
    assert isinstance(fake, FakeLocal)
    fake.gate = asyncio.Event()
    a1, b1 = AdapterSpec("/adapters/one"), AdapterSpec("/adapters/two")

    async def scenario() -> None:
        assert fake.gate is not None
        runs = [
            scheduler.submit(_request("local:A")),
            scheduler.submit(_request("local:B")),
            scheduler.submit(_request("local:A", adapters=(a1,))),
            scheduler.submit(_request("local:B", adapters=(b1,))),
            scheduler.submit(_request("local:A")),
        ]
        await asyncio.sleep(0)
        assert [r.status for r in runs] == ["running", "queued", "queued", "queued", "queued"]
        fake.gate.set()
        results = [await r for r in runs]
        assert [r.text for r in results] == ["A says hi", "B says hi", "A says hi", "B says hi", "A says hi"]

    run(_closing(scheduler, scenario()), 20)
    assert [m for m, _ in fake.runs] == ["A", "A", "A", "B", "B"]  # one model at a time, grouped
    assert fake.loads == ["A", "B"]  # each model loaded once; adapters change per run
    assert fake.runs[1] == ("A", ("/adapters/one",)) and fake.runs[4] == ("B", ("/adapters/two",))


def test_events_of_a_run_in_order_and_cancel_one_keeps_the_partial_text(run: Any, tmp_path: Any) -> None:
    context = provider_context([], home=tmp_path)
    scheduler = _scheduler(context, stats_interval_s=0.0)
    seen: list[RunEvent] = []
    scheduler.subscribe(seen.append)

    async def scenario() -> None:
        slow = scheduler.submit(_request("mock:lorem?n=5000&rate=500", max_tokens=5000))
        quick = scheduler.submit(_request("mock:echo"))
        texts: list[str] = []
        while len(texts) < 3:
            await asyncio.sleep(0.01)
            texts = [e.text for e in seen if isinstance(e, RunText) and e.run_id == slow.id]
        assert scheduler.cancel(slow.id) and not scheduler.cancel("no-such-run")
        ended = await slow.wait()
        assert isinstance(ended, RunCancelled) and ended.partial_text.startswith("".join(texts))
        assert (await quick).text == "hi"  # the other run is untouched

    run(_closing(scheduler, scenario()), 20)
    mine = [type(e) for e in seen if e.run_id == seen[0].run_id]
    assert mine[:2] == [RunQueued, RunStarted] and mine[-1] is RunCancelled
    assert RunText in mine and RunStats in mine


def test_cancel_all_with_a_tag_and_failures_stay_apart(run: Any, tmp_path: Any) -> None:
    context = provider_context([], home=tmp_path)
    scheduler = _scheduler(context)

    async def scenario() -> None:
        grid = [scheduler.submit(_request("mock:lorem?n=5000&rate=200", max_tokens=5000), tag="grid-1")
                for _ in range(3)]
        broken = scheduler.submit(_request("mock:lorem?n=50&fail=mid&fail_after=3"), tag="grid-1")
        chat = scheduler.submit(_request("mock:echo"))
        failed = await broken.wait()
        assert isinstance(failed, RunFailed) and len(failed.partial_text.split()) == 3
        assert scheduler.busy("grid-1")
        assert scheduler.cancel_all(tag="grid-1") == 3
        ends = [await r.wait() for r in grid]
        assert all(isinstance(e, RunCancelled) for e in ends)
        assert isinstance(await chat.wait(), RunFinished)  # another tag's run goes on
        with pytest.raises(asyncio.CancelledError):
            await grid[0]

    run(_closing(scheduler, scenario()), 20)


def test_a_run_loading_its_model_reports_progress_and_the_load_apart(run: Any, tmp_path: Any) -> None:
    context = provider_context([], home=tmp_path)
    scheduler = _scheduler(context)
    seen: list[RunEvent] = []

    async def scenario() -> Any:
        return await scheduler.submit(_request("local:M"), on_event=seen.append)

    result = run(_closing(scheduler, scenario()), 10)
    assert [e.progress.phase for e in seen if isinstance(e, RunProgress)] == ["reading weights", "loaded"]
    assert result.load_s is not None and result.figures().load_s == result.load_s
    assert "loaded in" in result.figures().sentence()


def test_a_callback_that_raises_stops_its_own_run(run: Any, tmp_path: Any) -> None:
    context = provider_context([], home=tmp_path)
    scheduler = _scheduler(context)

    def closed_pipe(event: RunEvent) -> None:
        if isinstance(event, RunText):
            raise AdapterError("the reader went away")

    async def scenario() -> None:
        ended = await scheduler.submit(_request("mock:lorem?n=100"), on_event=closed_pipe).wait()
        assert isinstance(ended, RunFailed) and "reader went away" in ended.message

    run(_closing(scheduler, scenario()), 10)


def test_the_wait_in_a_lane_is_not_counted_as_the_run_s_time(run: Any, tmp_path: Any) -> None:
    context = provider_context([], home=tmp_path)
    scheduler = _scheduler(context)
    fake = scheduler.engine.registry.get("local")
    assert isinstance(fake, FakeLocal)
    fake.loaded = "A"

    async def scenario() -> None:
        assert isinstance(fake, FakeLocal)
        fake.gate = asyncio.Event()
        first = scheduler.submit(_request("local:A"))
        second = scheduler.submit(_request("local:A"))  # waits behind the first
        await asyncio.sleep(0.3)
        fake.gate.set()
        await first
        result = await second
        assert result.duration_s < 0.25 and (result.ttft_s or 0.0) < 0.25

    run(_closing(scheduler, scenario()), 10)


def test_the_end_of_a_run_has_a_loop_turn_of_its_own_and_a_stop_then_is_too_late(run: Any, tmp_path: Any) -> None:
    scheduler = _scheduler(provider_context([], home=tmp_path))
    order: list[str] = []
    runs: list[Any] = []

    def on_event(event: Any) -> None:
        order.append(type(event).__name__)
        if isinstance(event, RunText) and event.text.strip() == "c":  # the last piece: stop now
            order.append("stop")
            runs[0].cancel()

    async def turns() -> None:
        while True:
            order.append("turn")
            await asyncio.sleep(0)

    async def scenario() -> Any:
        ticker = asyncio.ensure_future(turns())
        runs.append(scheduler.submit(_request("mock:fixed?text=a b c"), on_event=on_event))
        try:
            return await runs[0].wait()
        finally:
            ticker.cancel()

    ended = run(_closing(scheduler, scenario()), 10)
    assert isinstance(ended, RunFinished) and ended.result.text == "a b c" and runs[0].status == "finished"
    tail = order[order.index("stop"):]
    assert "turn" in tail[: tail.index("RunStats")]  # another task ran between the last piece and the end
