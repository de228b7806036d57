"""Dashboard dock through the real BackendManager: live tiles tick while streaming, ledger views
refresh after, CSV export."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import pytest

from app.core.run_events import RunCancelled, RunFailed, RunFinished, RunStats
from app.core.services import Services
from app.core.types import ChatMessage, GenerationParams
from app.ui.backend_manager import BackendManager
from app.ui.widgets import dashboard as dashboard_mod
from app.ui.widgets.common import MessageLabel, format_cost
from app.ui.widgets.dashboard import DashboardDock
from tests.conftest import wait_run_event, wait_signal


def _backend(services: Services, model: str) -> BackendManager:
    """The real BackendManager on a mock model (real Engine and ledger underneath)."""
    return BackendManager(services, model_id=model)


def test_costs_are_shown_with_precision_for_tiny_amounts() -> None:
    assert format_cost("0.000123") == "$0.000123"
    assert format_cost("0.0123") == "$0.0123"
    assert format_cost("12.5") == "$12.50"
    assert format_cost("0") == "free"
    assert format_cost(None) == "\u2014"
    assert format_cost(None, provider="mock") == "free"


def test_live_figures_tick_while_streaming_and_tables_fill_after(qtbot: Any, qloop: Any, services: Services) -> None:
    backend = _backend(services, "mock:lorem?n=60&rate=400")
    dock = DashboardDock(backend)
    qtbot.addWidget(dock)
    conv = services.history.create_conversation("Dash test", model="mock:lorem")
    dock.set_conversation(conv.id)
    assert dock.message_rows() == 0
    seen_live: list[dict[str, Any]] = []

    async def scenario() -> None:
        finished = asyncio.ensure_future(wait_run_event(backend, RunFinished, timeout=15))
        ledger = asyncio.ensure_future(wait_signal(backend.ledger_changed, 15))

        def on_stats(event: object) -> None:
            if isinstance(event, RunStats):
                seen_live.append(dock.live_figures())

        backend.run_event.connect(on_stats)
        backend.generate(backend.request([ChatMessage("user", "hello there")], GenerationParams(seed=1)), conversation_id=conv.id
        )
        await finished
        await ledger

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))
    # the tiles ticked during the stream: token counts grew
    assert len(seen_live) >= 2
    assert seen_live[-1].tokens > seen_live[0].tokens > 0
    final = dock.live_figures()
    assert final.tokens == 60
    assert final.ttft_s is not None and final.tokens_per_s is not None
    assert dock.message_rows() == 1
    totals = dock.totals_text()
    assert totals["conversation"].startswith("1 request")
    assert "free" in totals["conversation"]
    assert totals["today"].startswith("1 request") and totals["all_time"].startswith("1 request")
    assert dock.model_rows() == 1
    dock.show_chart()
    assert dock.chart_points() == 1

    # another conversation has its own table; the all-time totals include both
    other = services.history.create_conversation("Other")

    async def second() -> None:
        done = asyncio.ensure_future(wait_signal(backend.ledger_changed, 15))
        backend.generate(backend.request([ChatMessage("user", "again")], GenerationParams()), conversation_id=other.id)
        await done

    qloop.run_until_complete(asyncio.wait_for(second(), 20))
    assert dock.message_rows() == 1  # still showing the first conversation
    assert dock.totals_text()["all_time"].startswith("2 requests")
    assert dock.chart_points() == 2  # the visible chart refreshed from the ledger
    dock.show_all()
    assert dock.message_rows() == 2
    dock.set_conversation(None)  # a new conversation: nothing yet
    assert dock.message_rows() == 0


def test_failed_generation_is_listed_with_its_finish_reason(qtbot: Any, qloop: Any, services: Services) -> None:
    backend = _backend(services, "mock:lorem?n=50&fail=mid&fail_after=5")
    dock = DashboardDock(backend)
    qtbot.addWidget(dock)

    async def scenario() -> RunFailed:
        failed = asyncio.ensure_future(wait_run_event(backend, RunFailed, timeout=15))
        backend.generate(backend.request([ChatMessage("user", "x")], GenerationParams()))
        return await failed

    failed = qloop.run_until_complete(asyncio.wait_for(scenario(), 20))
    assert "cut" in failed.message.lower() and failed.partial_text
    assert dock.message_rows() == 1
    assert "error" in dock.message_cell(0, "Finish")


def test_export_csv_writes_the_ledger_rows(
    qtbot: Any, qloop: Any, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _backend(services, "mock:echo")
    dock = DashboardDock(backend)
    qtbot.addWidget(dock)

    async def scenario() -> None:
        for text in ("one", "two"):
            done = asyncio.ensure_future(wait_signal(backend.ledger_changed, 15))
            backend.generate(backend.request([ChatMessage("user", text)], GenerationParams()))
            await done

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))
    target = tmp_path / "out" / "usage.csv"
    monkeypatch.setattr(dashboard_mod, "choose_csv_path", lambda parent: str(target))
    dock._export.click()
    with target.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert {r["model"] for r in rows} == {"echo"}
    assert "Exported 2 rows" in dock._notice.text()

    # cancelling the file dialog writes nothing
    monkeypatch.setattr(dashboard_mod, "choose_csv_path", lambda parent: None)
    target.unlink()
    dock._export.click()
    assert not target.exists()


def test_stop_mid_stream_is_recorded_and_the_chart_has_a_per_day_view(
    qtbot: Any, qloop: Any, services: Services
) -> None:
    backend = _backend(services, "mock:lorem?n=500&rate=100")
    dock = DashboardDock(backend)
    qtbot.addWidget(dock)

    async def scenario() -> None:
        first = asyncio.ensure_future(wait_run_event(backend, RunStats, timeout=15))
        backend.generate(backend.request([ChatMessage("user", "x")], GenerationParams()))
        await first
        assert dock._status.text().startswith("\u25cf Streaming")
        cancelled = asyncio.ensure_future(wait_run_event(backend, RunCancelled, timeout=15))
        ledger = asyncio.ensure_future(wait_signal(backend.ledger_changed, 15))
        backend.stop()
        await cancelled
        await ledger

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))
    assert dock._status.text() == "Stopped"
    assert dock.message_rows() == 1
    assert dock.message_cell(0, "Finish") == "cancelled"
    assert 0 < dock.live_figures().tokens < 500
    # the tiles show what was recorded, as the table does (they said 331 where it said ~340)
    assert dock.tile_value("tokens") == dock.message_cell(0, "Completion")
    assert dock.tile_value("tokens_per_s") == dock.message_cell(0, "Speed")
    dock.show_chart()
    assert dock.chart_points() == 1
    dock._chart_tab.mode.setCurrentIndex(dock._chart_tab.mode.findData("days"))
    assert dock.chart_points() == 30  # one point per day, today included


def test_tiny_costs_and_estimates_are_shown_precisely(qtbot: Any, services: Services) -> None:
    import time

    from app.core.types import GenerationRecord

    backend = _backend(services, "mock:echo")
    dock = DashboardDock(backend)
    qtbot.addWidget(dock)
    services.ledger.record(GenerationRecord(
        started_at=time.time(), provider="openai", model="gpt-4o-mini", endpoint="OpenAI", adapter=None,
        prompt_tokens=120, completion_tokens=175, cached_prompt_tokens=0, estimated=True, cost_usd="0.000123",
        ttft_s=0.31, duration_s=2.0, tokens_per_s=87.5, finish_reason="stop",
    ))
    services.ledger.record(GenerationRecord(
        started_at=time.time(), provider="openai", model="my-finetune", endpoint="OpenAI", adapter=None,
        prompt_tokens=10, completion_tokens=5, cached_prompt_tokens=0, estimated=False, cost_usd=None,
        ttft_s=None, duration_s=1.0, tokens_per_s=None, finish_reason="stop",
    ))
    backend.ledger_changed.emit()
    assert dock.message_rows() == 2
    rows = {dock.message_cell(r, "Model"): r for r in range(2)}
    mini = rows["openai:gpt-4o-mini"]
    assert dock.message_cell(mini, "Cost") == "$0.000123"
    assert dock.message_cell(mini, "Prompt") == "~120" and dock.message_cell(mini, "Completion") == "~175"
    assert dock.message_cell(mini, "Speed") == "87.5 tok/s"
    assert dock.message_cell(rows["openai:my-finetune"], "Cost") == "\u2014"  # unknown price, not a guess
    all_time = dock.totals_text()["all_time"]
    assert "$0.000123 + 1 unpriced" in all_time and "~310 tokens" in all_time


def test_long_live_values_never_widen_the_dock(qtbot: Any, services: Services) -> None:
    """Seen under Xvfb: '32.5 tok/s' in the big tile font pushed the window past the screen."""
    dock = DashboardDock(_backend(services, "mock:echo"))
    qtbot.addWidget(dock)
    dock.show()
    def widths() -> list[int]:
        return [w.minimumSizeHint().width() for w in (*dock._tiles.values(), dock.widget())]

    before = widths()
    for tile in dock._tiles.values():
        tile.set_value("123,456.7 tok/s (estimated)")
    dock._status.setText("\u25cf Streaming \u00b7 openai:a-very-long-model-name-from-a-custom-endpoint")
    assert widths() == before


def test_speed_tile_says_thinking_until_the_answer_starts(qtbot: Any, qloop: Any, services: Services) -> None:
    backend = _backend(services, "mock:fixed?text=four&think=3")
    dock = DashboardDock(backend)
    qtbot.addWidget(dock)
    speeds: list[str] = []
    backend.run_event.connect(lambda e: speeds.append(dock._tiles["tokens_per_s"].value())
                              if isinstance(e, RunStats) else None)

    async def scenario() -> None:
        finished = asyncio.ensure_future(wait_run_event(backend, RunFinished, timeout=15))
        backend.generate(backend.request([ChatMessage("user", "2+2?")], GenerationParams()))
        await finished

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))
    assert speeds[0] == "thinking\u2026"  # the first update comes with the first reasoning token
    assert dock._tiles["tokens_per_s"].value() != "thinking\u2026"  # the final figures replace it


def test_the_chart_reads_whole_in_a_narrow_dock(qtbot: Any, services: Services) -> None:
    """Seen at 1024x700: the cost axis read "$0.0..." everywhere and the x-axis title was cut."""
    import time

    from PySide6.QtCharts import QBarCategoryAxis, QLineSeries, QValueAxis
    from PySide6.QtGui import QFontMetrics
    from PySide6.QtWidgets import QApplication

    from app.core.types import GenerationRecord

    for i in range(20):  # a fraction of a cent each
        services.ledger.record(GenerationRecord(
            started_at=time.time() - i, provider="openai", model="gpt-4o-mini", endpoint="OpenAI", adapter=None,
            prompt_tokens=100 + i, completion_tokens=50, cached_prompt_tokens=0, estimated=False,
            cost_usd=str(0.000045 * (i + 1)), ttft_s=0.2, duration_s=1.0, tokens_per_s=40.0, finish_reason="stop"))
    dock = DashboardDock(_backend(services, "mock:echo"))
    qtbot.addWidget(dock)
    dock.show_all()
    dock.resize(248, 600)  # the dock's width at 1024 x 700
    dock.show()
    dock.show_chart()
    for _ in range(3):
        QApplication.processEvents()
    chart = dock._chart_tab.view.chart()  # type: ignore[union-attr]
    line = next(s for s in chart.series() if isinstance(s, QLineSeries))
    assert line.name() == "Cost (US cents)"
    assert max(p.y() for p in line.points()) == pytest.approx(0.09)  # $0.0009
    for axis in chart.axes():
        if isinstance(axis, QValueAxis):  # short labels: "0.09", "394"
            for value in (axis.max(), axis.max() / 3):
                assert len(axis.labelFormat() % value) <= 5, axis.labelFormat() % value
        elif isinstance(axis, QBarCategoryAxis):
            assert not axis.labelsVisible()  # 20 numbers would be elided to "..."
            title = QFontMetrics(axis.titleFont()).horizontalAdvance(axis.titleText())
            assert 0 < title <= chart.plotArea().width(), (axis.titleText(), chart.plotArea().width())


def test_the_totals_tab_is_made_and_read_when_first_shown(qtbot: Any, services: Services) -> None:
    import time

    from PySide6.QtWidgets import QTabWidget

    from app.core.types import GenerationRecord
    from app.ui.widgets.fitted_table import FittedTable

    def record(model: str) -> None:
        services.ledger.record(GenerationRecord(
            started_at=time.time(), provider="openai", model=model, endpoint="OpenAI", adapter=None,
            prompt_tokens=10, completion_tokens=5, cached_prompt_tokens=0, estimated=False, cost_usd="0.001",
            ttft_s=0.2, duration_s=1.0, tokens_per_s=5.0, finish_reason="stop",
        ))
        backend.ledger_changed.emit()

    backend = _backend(services, "mock:echo")
    dock = DashboardDock(backend)
    qtbot.addWidget(dock)
    tabs = dock.findChild(QTabWidget)
    assert len(dock.findChildren(FittedTable)) == 1  # only the Messages table at start
    record("gpt-4o-mini")
    assert len(dock.findChildren(FittedTable)) == 1  # a hidden Totals tab is not read on each change
    tabs.setCurrentIndex(tabs.indexOf(dock.findChild(dashboard_mod.TotalsTab)))
    assert len(dock.findChildren(FittedTable)) == 2
    table = dock.models_table()
    assert table.rowCount() == 1 and table.item(0, 0).text() == "openai:gpt-4o-mini"
    record("gpt-4o")  # shown: read again at once
    assert table.rowCount() == 2
    assert dock.totals_text()["all_time"].startswith("2 requests")


def test_a_broken_ledger_says_so_when_the_totals_are_shown(qtbot: Any, services: Services,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QTabWidget

    from app.core.errors import StorageError

    dock = DashboardDock(_backend(services, "mock:echo"))
    qtbot.addWidget(dock)

    def broken(**_kw: object) -> None:
        raise StorageError("The usage ledger cannot be read.")

    monkeypatch.setattr(services.ledger, "totals", broken)
    tabs = dock.findChild(QTabWidget)
    tabs.setCurrentIndex(tabs.indexOf(dock.findChild(dashboard_mod.TotalsTab)))
    notice = dock.findChild(MessageLabel)
    assert "Could not read the usage ledger" in notice.text() and "cannot be read" in notice.text()
    assert dock.message_rows() == 0  # the window goes on
