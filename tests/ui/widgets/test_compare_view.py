"""Compare view through the real BackendManager: panes filled per generation id, failures
shown, and on a tiny local model the adapter really changes the answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from app.core.run_events import RunCancelled, RunFailed, RunFinished, RunText
from app.core.services import Services
from app.core.types import ChatMessage, GenerationParams
from app.providers.mock import MockScript
from app.ui.backend_manager import BackendManager
from app.ui.widgets.compare_view import CompareView
from tests.conftest import expect_run_event, wait_run_event, wait_signal
from tests.ui.widgets.test_lora_panel import tiny  # noqa: F401  (module fixture: tiny model + adapters)

PROMPT = [ChatMessage("user", "Tell me a story about cats")]


def _how(event: Any) -> str:
    """finished, failed or cancelled."""
    return {RunFinished: "finished", RunFailed: "failed", RunCancelled: "cancelled"}[type(event)]


async def _both_done(backend: BackendManager, start: Any) -> list[tuple[str, str]]:
    """Call ``start`` and wait until two generations ended: [(how, run id), ...]."""
    ends = expect_run_event(backend, RunFinished, RunFailed, RunCancelled, count=2)
    start()
    return [(_how(event), event.run_id) for (event,) in await ends.wait(60)]


def _close(qloop: Any, backend: BackendManager, services: Services) -> None:
    async def close() -> None:
        await backend.aclose()
        await services.aclose()

    qloop.run_until_complete(asyncio.wait_for(close(), 20))


def test_each_pane_gets_its_own_answer_and_figures(qtbot: Any, qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:echo")
    view = CompareView(backend)
    qtbot.addWidget(view)
    services.registry.get("mock").enqueue(  # type: ignore[attr-defined]
        ["The **base** answer", "The adapter answer:\n\n```python\nprint('hi')\n```\n"]
    )
    ids: list[tuple[str, str] | None] = []
    ends = qloop.run_until_complete(
        asyncio.wait_for(_both_done(backend, lambda: ids.append(view.start(PROMPT, GenerationParams()))), 30)
    )
    assert ids[0] is not None
    base_id, adapter_id = ids[0]
    assert ends == [("finished", base_id), ("finished", adapter_id)]
    assert view.pane_text("base") == "The **base** answer"
    assert view.pane_text("adapter").startswith("The adapter answer:")
    base_view = view._panes["base"].text.toPlainText()
    assert "The base answer" in base_view and "**" not in base_view  # rendered Markdown
    assert "print('hi')" in view._panes["adapter"].text.toPlainText()
    assert [c.strip() for c in view._panes["adapter"].renderer.code_blocks] == ["print('hi')"]
    view._panes["adapter"]._on_text_anchor_clicked(QUrl("copy:0"))  # the code block's Copy link
    assert QGuiApplication.clipboard().text().strip() == "print('hi')"
    assert "print('hi')" in view._panes["adapter"].text.toPlainText()  # the link did not navigate
    assert view.pane_stats("base")["tokens"] == 3 and view.pane_stats("base")["state"] == "done"
    assert "3 tokens" in view._panes["base"].stats.text()
    assert not view.is_running() and not view._stop.isEnabled()
    assert "Tell me a story" in view._prompt.text()
    _close(qloop, backend, services)


def test_a_failed_base_answer_is_shown_and_the_second_is_not_run(
    qtbot: Any, qloop: Any, services: Services
) -> None:
    backend = BackendManager(services, model_id="mock:echo")
    view = CompareView(backend)
    qtbot.addWidget(view)
    services.registry.get("mock").enqueue([MockScript("one two three four five", fail_after=2)])  # type: ignore[attr-defined]

    async def scenario() -> None:
        failed = asyncio.ensure_future(wait_run_event(backend, RunFailed, timeout=20))
        view.start(PROMPT, GenerationParams())
        await failed

    qloop.run_until_complete(asyncio.wait_for(scenario(), 30))
    assert view.pane_text("base") == "one two"  # the partial text is kept
    assert "cut" in view.pane_error("base").lower()
    assert "not run" in view.pane_error("adapter").lower()
    assert not view.is_running()
    _close(qloop, backend, services)


def test_busy_backend_is_reported_not_raised(qtbot: Any, qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="mock:lorem?n=400&rate=200")
    view = CompareView(backend)
    qtbot.addWidget(view)

    async def scenario() -> None:
        started = asyncio.ensure_future(wait_run_event(backend, RunText, timeout=20))
        backend.generate(backend.request(PROMPT, GenerationParams()))
        await started
        assert view.start(PROMPT, GenerationParams()) is None
        cancelled = asyncio.ensure_future(wait_run_event(backend, RunCancelled, timeout=20))
        backend.stop()
        await cancelled

    qloop.run_until_complete(asyncio.wait_for(scenario(), 30))
    assert "already running" in view._error.text()
    assert view.start([ChatMessage("system", "be brief")], GenerationParams()) is None
    assert "Type a prompt" in view._error.text()
    parent = QWidget()
    qtbot.addWidget(parent)
    assert CompareView(backend, parent).isWindow()  # a window of its own, not a child overlay
    _close(qloop, backend, services)


def test_the_adapter_changes_the_answer_of_a_tiny_local_model(
    qtbot: Any, qloop: Any, services: Services, tiny: dict[str, Path]  # noqa: F811
) -> None:
    backend = BackendManager(services, model_id=f"local:{tiny['model']}")
    view = CompareView(backend)
    qtbot.addWidget(view)
    params = GenerationParams(temperature=0.0, max_tokens=12, seed=0)
    try:
        async def load() -> None:
            changed = asyncio.ensure_future(wait_signal(backend.adapters_changed, 60))
            backend.load_adapter(str(tiny["adapter"]))
            await changed

        qloop.run_until_complete(asyncio.wait_for(load(), 90))
        ends = qloop.run_until_complete(
            asyncio.wait_for(_both_done(backend, lambda: view.start(PROMPT, params)), 90)
        )
        assert [kind for kind, _ in ends] == ["finished", "finished"]
        base, adapted = view.pane_text("base"), view.pane_text("adapter")
        assert base and adapted and base != adapted
        assert "style_a" in view._panes["adapter"].title.text()
        assert view.pane_stats("adapter")["tokens"] > 0
    finally:
        _close(qloop, backend, services)


def test_close_button_and_esc_close_the_window_and_stop_its_answers(qtbot: Any, qloop: Any, services: Services) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    backend = BackendManager(services, model_id="mock:lorem?n=4000&rate=100")
    main = QWidget()  # the main window stays open (closing the last window would end the loop)
    qtbot.addWidget(main)
    main.show()
    view = CompareView(backend, main)
    view.show()
    QTest.keyClick(view, Qt.Key.Key_Escape)
    assert not view.isVisible()
    view.show()

    async def scenario() -> None:
        ends = expect_run_event(backend, RunCancelled, RunFinished, count=2)
        started = expect_run_event(backend, RunText)
        assert view.start(PROMPT, GenerationParams()) is not None
        await started.wait(20)
        view.close_button.click()  # while both answers are running
        assert not view.isVisible()
        await ends.wait(20)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 30))
    assert not backend.is_busy()
    _close(qloop, backend, services)


def test_each_side_shows_the_tool_calls_it_made(qtbot: Any, qloop: Any, services: Services) -> None:
    from dataclasses import replace

    from app.core.tools import ToolSpec

    backend = BackendManager(services, model_id="mock:tools")
    view = CompareView(backend)
    qtbot.addWidget(view)
    tool = ToolSpec("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}},
                                        "required": ["city"]})  # fmt: skip
    ends = qloop.run_until_complete(asyncio.wait_for(_both_done(
        backend, lambda: view.start(PROMPT, GenerationParams(), lambda r: replace(r, tools=(tool,)))), 30))
    assert [how for how, _ in ends] == ["finished", "finished"]
    for side in ("base", "adapter"):
        pane = view._panes[side]
        assert pane.calls.isVisibleTo(view) and pane.calls.text() == '\u2192 get_weather({"city": "example"})'
    view.start(PROMPT, GenerationParams())  # without tools: no calls shown
    assert not view._panes["base"].calls.isVisibleTo(view)
    view.close()
    _close(qloop, backend, services)
