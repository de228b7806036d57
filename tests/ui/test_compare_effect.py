"""Compare with base marks the tokens the adapter changed: an in-process stand-in (FakeLocal
that takes an adapter and streams its answer's tokens with ids and log-probabilities) answers
both sides, the adapter's answer is scored under the base model in one call, and its pane
highlights the most-changed tokens with a summary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from app.core.events import Finished, Progress, StreamEvent, TextDelta, TokenLogprob, UsageReport
from app.core.run_events import RunFinished
from app.core.services import Services
from app.core.types import AdapterInfo, ChatMessage, GenerationParams, GenerationRequest
from app.ui.backend_manager import BackendManager
from app.ui.widgets.compare_view import CompareView
from tests.conftest import expect_run_event, expect_signal
from tests.support.fakes import FakeLocal

WORDS = ["The", " cat", " sat", " on", " the", " warm", " mat", "."]
ADAPTER_LOGPROBS = [-0.5, -0.5, -0.05, -0.5, -3.0, -0.45, -0.5, -0.4]
"""The adapter's log-probabilities; FakeLocal scores every token -0.5 under the base model, so
the adapter moved " sat" (+0.45), " the" (-2.5), " warm" (+0.05) and "." (+0.1)."""


class LensLocal(FakeLocal):
    """FakeLocal with one adapter and tokens: each answer is WORDS, with token ids 100.. and,
    when probabilities are asked for, ADAPTER_LOGPROBS (with adapters) or -0.5 (base)."""

    instances: list[LensLocal] = []

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.scored: list[tuple[GenerationRequest, list[int]]] = []
        LensLocal.instances.append(self)

    async def load_adapter(self, path: str, name: str | None = None) -> AdapterInfo:
        return AdapterInfo(name or "style", path, "ab" * 32, 4, 8.0, ("q_proj",))

    async def score(self, request: GenerationRequest, token_ids: Sequence[int]) -> list[float]:
        self.scored.append((request, list(token_ids)))
        return await super().score(request, token_ids)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        if self.loaded != request.model.name:
            await self.load(request.model.name)
            yield Progress("loaded", 1.0)
        asked = request.params.logprobs is not None
        for i, word in enumerate(WORDS):
            lp = ADAPTER_LOGPROBS[i] if request.adapters else -0.5
            yield TextDelta(word, (TokenLogprob(word, lp, (), 100 + i),) if asked else ())
            await asyncio.sleep(0)
        yield UsageReport(5, len(WORDS))
        yield Finished("stop")


def test_compare_with_base_marks_the_tokens_the_adapter_changed(qtbot: Any, qloop: Any, services: Services) -> None:
    services.registry.register("local", LensLocal)
    backend = BackendManager(services, model_id="local:tiny")
    view = CompareView(backend)
    qtbot.addWidget(view)
    view.resize(1024, 700)
    view.show()

    async def scenario() -> None:
        changed = expect_signal(backend.adapters_changed)
        backend.load_adapter("/adapters/style")
        await changed.wait(10)
        ends = expect_run_event(backend, RunFinished, count=2)
        assert view.start([ChatMessage("user", "Where did the cat sit?")], GenerationParams(seed=3)) is not None
        await ends.wait(10)
        await asyncio.wait_for(view.wait_effect(), 10)

    try:
        qloop.run_until_complete(asyncio.wait_for(scenario(), 30))
        provider = LensLocal.instances[-1]
        (request, ids), = provider.scored  # one forward pass of the base model
        assert request.adapters == () and ids == list(range(100, 108))
        assert request.messages[-1].content == "Where did the cat sit?"
        effect = view.effect
        assert effect.effect is not None and effect.showing_effect()
        assert effect.marked_texts() == [" sat", " the", " warm", "."]
        assert not view._panes["adapter"].text.isVisible() and effect.view.isVisible()
        summary = effect.summary.text()
        assert "mean \u0394 logprob \u22120.24" in summary and "\u2423the\u201d 61% \u2192 5.0%" in summary
        # the marked tokens carry a highlight, the others none
        doc = effect.document
        assert doc is not None
        cursor = QTextCursor(effect.view.document())

        def background(i: int) -> str:
            cursor.setPosition(doc.starts[i] + 1)
            fmt = cursor.charFormat()
            return fmt.background().color().name() if fmt.background().style() != Qt.BrushStyle.NoBrush else ""

        assert all(background(i) for i in (2, 4, 5, 7)) and not any(background(i) for i in (0, 1, 3, 6))
        assert background(2) != background(4)  # raised vs lowered
        effect.toggle.click()  # back to the Markdown
        assert view._panes["adapter"].text.isVisible() and not effect.view.isVisible()
        assert view.pane_text("adapter") == "".join(WORDS)
    finally:
        async def close() -> None:
            await backend.aclose()
            await services.aclose()

        qloop.run_until_complete(asyncio.wait_for(close(), 20))
