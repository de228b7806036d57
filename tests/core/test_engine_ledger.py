"""The engine's ledger row: opened ("running") before the request is sent, updated while it
streams, closed with the final figures; a cancelled run closes it too; a broken ledger
costs no answer. A real UsageLedger; the provider is gated so the test looks mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.engine import Engine
from app.core.events import Finished, StreamEvent, TextDelta, UsageReport
from app.core.paths import AppPaths
from app.core.pricing import PriceTable
from app.core.provider import ProviderContext, ProviderRegistry
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import Settings
from app.core.tokens import count_chat
from app.core.types import ChatMessage, GenerationRequest, ModelInfo, ModelRef, TokenCount
from app.core.usage import RUNNING, UsageLedger

Run = Callable[..., Any]


@pytest.fixture
def ctx() -> ProviderContext:
    return ProviderContext(Settings(), SecretStore(MemoryKeyring(), environ={}), AppPaths.default().ensure())


class Gated:
    """Streams three tokens, then waits for ``gate`` before two more and the end."""

    id = "openai"

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        for word in ("one", " two", " three"):
            yield TextDelta(word)
        self.reached.set()
        await self.gate.wait()
        yield TextDelta(" four")
        yield TextDelta(" five")
        yield UsageReport(20, 5)
        yield Finished("stop")

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        return count_chat(model, messages)

    def model_info(self, model: str) -> ModelInfo:
        return ModelInfo(ref=ModelRef("openai", model), display_name=model)

    async def aclose(self) -> None:
        return None


def engine_with(ctx: ProviderContext, ledger: Any, provider: Gated) -> Engine:
    return Engine(ProviderRegistry(ctx, {"openai": lambda _ctx: provider}), PriceTable.load(), ledger)


REQUEST = GenerationRequest(ModelRef("openai", "gpt-4o-mini"), (ChatMessage("user", "count to five"),),
                            endpoint="http://u:sk-engine-secret-123456@127.0.0.1:9/v1")  # fmt: skip


def test_the_row_is_opened_updated_and_closed(run: Run, ctx: ProviderContext, tmp_path: Path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite3")
    provider = Gated()
    engine = engine_with(ctx, ledger, provider)

    async def scenario() -> None:
        task = asyncio.create_task(engine.run(REQUEST, tag="run-7"))
        await asyncio.wait_for(provider.reached.wait(), 5)
        [live] = ledger.recent()  # mid-stream: the row is there, with what has arrived
        assert live.finish_reason == RUNNING and live.run_id == "run-7"
        assert live.completion_tokens >= 1 and live.prompt_tokens == count_chat("gpt-4o-mini", REQUEST.messages).tokens
        assert live.endpoint == "http://127.0.0.1:9/v1"  # never the key
        provider.gate.set()
        result = await asyncio.wait_for(task, 5)
        [done] = ledger.recent()
        assert result.record_id is not None and done == result.record
        assert (done.finish_reason, done.prompt_tokens, done.completion_tokens, done.run_id) == ("stop", 20, 5, "run-7")

    try:
        run(scenario())
    finally:
        ledger.close()
    assert ledger.warnings == []


def test_a_cancelled_run_closes_its_row(run: Run, ctx: ProviderContext, tmp_path: Path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite3")
    provider = Gated()
    engine = engine_with(ctx, ledger, provider)

    async def scenario() -> None:
        task = asyncio.create_task(engine.run(REQUEST))
        await asyncio.wait_for(provider.reached.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        run(scenario())
        [row] = ledger.recent()
        assert row.finish_reason == "cancelled" and row.completion_tokens == 3
    finally:
        ledger.close()


def test_a_ledger_that_cannot_write_costs_no_answer(run: Run, ctx: ProviderContext, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    ledger = UsageLedger(blocker / "usage.sqlite3")
    provider = Gated()
    provider.gate.set()
    result = run(engine_with(ctx, ledger, provider).run(REQUEST))
    assert result.text == "one two three four five" and result.record_id is None
    ledger.close()
    assert any("could not be recorded" in w for w in ledger.warnings)
