"""The window fits 1024 x 700 with its default docks: nothing cut, the Speed tile whole, no
sideways scrolling in the Usage tables, the chart never widens the dock, and the Usage dock
shows the conversation that is open."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QAbstractButton, QApplication, QTabBar, QWidget

from app.core.run_events import LiveFigures, RunFinished
from app.core.services import Services
from app.core.types import ChatMessage, GenerationParams
from app.ui import theme
from app.ui.backend_manager import BackendManager
from app.ui.main_window import MainWindow
from tests.conftest import expect_run_event, expect_signal

LONG_MODEL = "mock:fixed?text=a%20fairly%20long%20answer%20for%20the%20table&delay=0"


@pytest.fixture
def window(qloop: Any, qapp: Any, services: Services) -> Iterator[MainWindow]:
    theme.apply(qapp)  # as the app starts: Fusion, the palette and the stylesheet
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend)
    win.show()
    yield win
    win.close()
    qloop.run_until_complete(backend.aclose())


def _settle(window: MainWindow, width: int, height: int) -> None:
    window.resize(width, height)
    for _ in range(3):
        QApplication.processEvents()


def _inside(widget: QWidget, outer: QWidget) -> bool:
    top_left = widget.mapTo(outer, widget.rect().topLeft())
    return outer.rect().contains(QRect(top_left, widget.size()))


def _send(qloop: Any, window: MainWindow, text: str, model: str | None = None) -> None:
    async def scenario() -> None:
        if model is not None:
            window.backend.set_model(model)
        done = expect_signal(window.session.answer_done)
        ledger = expect_signal(window.backend.ledger_changed)
        window.editor.set_message(text)
        window.chat.send()
        await done.wait(10)
        await ledger.wait(10)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))


@pytest.mark.parametrize("size", [(1024, 700), (1480, 900)])
def test_the_window_fits_with_its_default_docks(window: MainWindow, qloop: Any, size: tuple[int, int]) -> None:
    _settle(window, *size)
    dash = window.dashboard
    assert dash is not None
    _assert_tables_fit(dash)  # empty
    for i in range(16):  # enough rows for a vertical scroll bar, which narrows the table
        _send(qloop, window, f"message number {i} with a few words", LONG_MODEL if i == 2 else None)
    _settle(window, *size)
    assert (window.width(), window.height()) == size
    assert window.minimumSizeHint().width() <= 1024
    assert dash.isVisible() and window.sidebar is not None and window.sidebar.isVisible()
    # no button, field or label of the editor and the toolbar is squeezed below its own minimum
    for widget in [*window.editor.findChildren(QWidget), *window.toolbar.findChildren(QAbstractButton)]:
        if widget.isVisibleTo(window) and widget.minimumSizeHint().isValid():
            assert widget.width() >= min(widget.minimumSizeHint().width(), widget.sizeHint().width()), widget
    for button in (window.editor.send_button, window.editor.stop_button, window.picker):
        assert _inside(button, window), button
    # the Speed tile is never cut, even at 51,143 tokens a second
    dash.tiles()["tokens_per_s"].set_value("51,143 tok/s")
    dash.tiles()["cost_usd"].set_value("$12.345678")
    QApplication.processEvents()
    for key, tile in dash.tiles().items():
        assert tile.value_fits(), (key, tile.value(), tile.width())
    # the Usage tables never scroll sideways; the most telling columns stay
    if size[1] <= 700:
        assert dash.messages_table().verticalScrollBar().isVisible()
    _assert_tables_fit(dash)
    assert {"Model", "Prompt", "Completion"} <= set(dash.messages_table().visible_columns())


def test_the_right_docks_tab_titles_are_whole_at_1024(window: MainWindow) -> None:
    _settle(window, 1024, 700)  # the panels behind Usage are not made yet: they do not widen the area
    bars = [b for b in window.findChildren(QTabBar) if "Usage" in [b.tabText(i) for i in range(b.count())]]
    assert len(bars) == 1
    bar = bars[0]
    titles = [bar.tabText(i) for i in range(bar.count())]
    assert {"Usage", "LoRA adapters", "Tools", "Server"} <= set(titles)
    for i, title in enumerate(titles):  # squeezed below its size hint, a title is elided ("Us…")
        assert bar.tabRect(i).width() >= bar.tabSizeHint(i).width(), (title, bar.tabRect(i).width())


def _assert_tables_fit(dash: Any) -> None:
    for table in (dash.messages_table(), dash.models_table()):
        assert table.horizontalHeader().length() <= table.viewport().width() + 1, table.visible_columns()
        assert table.horizontalScrollBar().maximum() == 0 and table.horizontalHeader().offset() == 0


def test_opening_the_chart_never_widens_the_dock(window: MainWindow, qloop: Any) -> None:
    _send(qloop, window, "one")
    _settle(window, 1024, 700)
    dash = window.dashboard
    assert dash is not None
    before = (dash.width(), window.width(), dash.widget().minimumSizeHint().width())
    dash.show_chart()
    for _ in range(3):
        QApplication.processEvents()
    assert dash.chart_points() == 1
    assert (dash.width(), window.width(), dash.widget().minimumSizeHint().width()) == before


def test_the_usage_dock_shows_the_opened_conversation(window: MainWindow, qloop: Any) -> None:
    """It used to keep showing the last run, whichever conversation was open."""
    _send(qloop, window, "first conversation says hi")  # 5 tokens, echoed
    first = window.session.conversation_id
    window.conversations.new_conversation()
    dash = window.dashboard
    assert dash is not None and dash.message_rows() == 0 and dash.tile_value("tokens") == "\u2014"
    _send(qloop, window, "two words")
    second = window.session.conversation_id
    assert dash.message_rows() == 1 and dash.tile_value("tokens") == "2"
    assert first is not None and second is not None
    window.open_conversation(first)
    assert dash.conversation_id() == first and dash.message_rows() == 1
    assert dash.tile_value("tokens") == "4" and dash.message_cell(0, "Completion") == "4"
    assert dash.status_text().startswith("Last answer")
    # a comparison's answers (no conversation) leave the tiles alone
    async def both() -> None:
        ends = expect_run_event(window.backend, RunFinished, count=2)
        window.backend.compare([ChatMessage("user", "x y z")], GenerationParams())
        await ends.wait(10)

    qloop.run_until_complete(asyncio.wait_for(both(), 20))
    assert dash.tile_value("tokens") == "4"
    dash._set_live(LiveFigures(7))  # (what a live tick would do)
    window.open_conversation(second)
    assert dash.tile_value("tokens") == "2"
