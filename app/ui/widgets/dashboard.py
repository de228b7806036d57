"""The live usage dashboard dock: live tiles, per-message table, totals, chart, CSV export.

Live tiles tick from the backend's ``RunStats`` events (already throttled); everything else is
read from the usage ledger on ``ledger_changed`` (a few cheap queries per generation, never
per token). The QtCharts chart is built on first show, so QtCharts loads only when used.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.live_figures import LiveFigures

if TYPE_CHECKING:
    from app.core.run_events import RunCancelled, RunFailed, RunFinished, RunStarted, RunStats
    from app.ui.backend_manager import BackendManager
from app.ui.widgets.common import (
    DASH,
    TILE_STYLE,
    ElidedLabel,
    MessageLabel,
    Tile,
    error_text,
    format_cost,
    format_rate,
    format_seconds,
    format_tokens,
    to_decimal,
    tone,
)
from app.ui.widgets.dashboard_chart import CHART_REQUESTS, ChartTab  # noqa: F401  (re-exported)
from app.ui.widgets.dashboard_totals import TotalsTab
from app.ui.widgets.dashboard_totals import table_item as _item
from app.ui.widgets.fitted_table import FittedTable
from app.ui.wiring import RunEventSlots, connect_slots

MESSAGE_COLUMNS = ("Time", "Model", "Prompt", "Completion", "Cost", "Speed", "TTFT", "Adapter", "Finish")
MESSAGE_PRIORITY = ("Prompt", "Completion", "Cost", "Speed", "Time", "TTFT", "Finish", "Adapter")
"""The order in which columns stay as the dock narrows (Model always stays, elided)."""
RECENT_LIMIT = 200


def choose_csv_path(parent: QWidget | None) -> str | None:
    """Ask where to save the CSV export (tests monkeypatch this)."""
    from PySide6.QtWidgets import QFileDialog  # made on first use, not at start-up

    name = f"llm-usage-{dt.date.today().isoformat()}.csv"
    path, _ = QFileDialog.getSaveFileName(parent, "Export usage as CSV", name, "CSV files (*.csv)")
    return path or None


MIN_WIDTH = 240


class DashboardDock(QDockWidget, RunEventSlots):
    """Live figures while streaming, plus ledger-backed tables, totals and a chart."""

    def __init__(self, backend: BackendManager, parent: QWidget | None = None) -> None:
        super().__init__("Usage", parent)
        self.setObjectName("dashboardDock")
        self._backend = backend
        self._ledger = backend.services.ledger
        self._conversation_id: str | None = None
        self._live_gen: str | None = None
        self._live = LiveFigures()
        self._live_provider: str | None = None
        self._all = True
        """No conversation opened yet: the tables list every recent request."""
        self._warned = len(getattr(self._ledger, "warnings", []) or [])
        """Ledger warnings already shown (those of the start are shown by the window)."""

        body = QWidget()
        body.setStyleSheet(TILE_STYLE)
        root = QVBoxLayout(body)
        root.setContentsMargins(8, 8, 8, 8)
        root.setSpacing(8)
        self._status = ElidedLabel("Idle")  # "Last answer · <a long local: path>" elides
        self._status.setObjectName("dashStatus")
        self._status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        root.addWidget(self._status)

        grid = QGridLayout()
        grid.setSpacing(6)
        self._tiles = {
            "tokens": Tile("Tokens"),
            "tokens_per_s": Tile("Speed"),
            "ttft_s": Tile("First token"),
            "cost_usd": Tile("Cost"),
        }
        for i, tile in enumerate(self._tiles.values()):
            grid.addWidget(tile, i // 2, i % 2)
        root.addLayout(grid)

        self._tabs = QTabWidget()
        self._tabs.setDocumentMode(True)
        self._messages = FittedTable(MESSAGE_COLUMNS, stretch="Model", priority=MESSAGE_PRIORITY)
        self._tabs.addTab(self._messages, "Messages")
        self._totals_tab = TotalsTab(self._ledger)  # made and read when first shown
        self._tabs.addTab(self._totals_tab, "Totals")
        self._chart_tab = ChartTab(self._ledger)
        self._tabs.addTab(self._chart_tab, "Chart")
        self._tabs.currentChanged.connect(self._on_tab_changed)
        root.addWidget(self._tabs, 1)

        bottom = QHBoxLayout()
        self._notice = MessageLabel()
        bottom.addWidget(self._notice, 1)
        self._export = QPushButton("Export CSV\u2026")
        self._export.setToolTip("Save every recorded generation (all conversations) as a CSV file")
        self._export.clicked.connect(self.export_csv)
        bottom.addWidget(self._export, 0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        root.addLayout(bottom)
        body.setMinimumWidth(MIN_WIDTH)  # room for the tiles' values; never grows with them
        self.setWidget(body)

        connect_slots(backend, self, "_on_backend_")
        backend.ledger_changed.connect(self.refresh)
        self.refresh()

    # public API
    def set_conversation(self, conversation_id: str | None) -> None:
        """Show the conversation opened in the window: its messages, its totals, and in the
        tiles its last answer (or the one streaming in it); None is a new, empty conversation."""
        self._all = False
        self._conversation_id = conversation_id
        if self._live_gen is None:
            self._show_last_answer()
        self.refresh()

    def show_all(self) -> None:
        """List every recent request, of any conversation (the dock's state before one is opened)."""
        self._all = True
        self._conversation_id = None
        self.refresh()

    def conversation_id(self) -> str | None:
        """The conversation shown (None: a new one, or every request)."""
        return self._conversation_id

    def tile_value(self, key: str) -> str:
        """What a tile shows (tokens, tokens_per_s, ttft_s, cost_usd)."""
        return self._tiles[key].value()

    def tiles(self) -> dict[str, Tile]:
        """The live tiles by key."""
        return dict(self._tiles)

    def messages_table(self) -> FittedTable:
        """The per-message table."""
        return self._messages

    def models_table(self) -> FittedTable:
        """The per-model totals table."""
        self._totals_up_to_date()
        return self._totals_tab.table()

    def status_text(self) -> str:
        """The line above the tiles (Idle, Streaming, Done in ...)."""
        return self._status.text()

    def live_figures(self) -> LiveFigures:
        """The live figures shown (raw values)."""
        return self._live

    def message_rows(self) -> int:
        """Rows in the per-message table."""
        return self._messages.rowCount()

    def message_cell(self, row: int, column: str) -> str:
        """The text of one cell of the per-message table (``column`` as in MESSAGE_COLUMNS)."""
        item = self._messages.item(row, MESSAGE_COLUMNS.index(column))
        return "" if item is None else item.text()

    def totals_text(self) -> dict[str, str]:
        """The totals lines shown: keys conversation, today, all_time."""
        self._totals_up_to_date()
        return self._totals_tab.totals()

    def model_rows(self) -> int:
        """Rows in the per-model totals table."""
        return self.models_table().rowCount()

    def chart_points(self) -> int:
        """Data points in the chart (0 until the chart tab was shown)."""
        return self._chart_tab.points()

    def show_chart(self) -> None:
        """Switch to the chart tab (builds the chart on first use)."""
        self._tabs.setCurrentWidget(self._chart_tab)

    def refresh(self) -> None:
        """Re-read the table, totals and (if visible) the chart from the ledger."""
        try:
            self._refresh_messages()
            self._totals_tab.conversation_id = self._conversation_id
            self._totals_tab.dirty = True
            if self._tabs.currentWidget() is self._totals_tab:
                self._totals_tab.refresh()
            self._show_ledger_warnings()
            self._chart_tab.dirty = True
            if self._tabs.currentWidget() is self._chart_tab:
                self._chart_tab.refresh()
        except Exception as exc:  # a broken ledger must not break the window
            self._notice.show_message(f"Could not read the usage ledger: {error_text(exc)}")

    def _show_ledger_warnings(self) -> None:
        """A ledger problem found since the last refresh (a busy or damaged file) is said here."""
        warnings = list(getattr(self._ledger, "warnings", []) or [])
        if len(warnings) > self._warned:
            self._notice.show_message(warnings[-1], "warning")
        self._warned = len(warnings)

    def export_csv(self) -> None:
        """Ask for a file name and write the whole ledger as CSV."""
        path = choose_csv_path(self)
        if not path:
            return
        try:
            rows = self._ledger.export_csv(Path(path))
        except Exception as exc:
            self._notice.show_message(f"Export failed: {error_text(exc)} Choose another folder.")
            return
        self._notice.show_message(f"Exported {rows:,} rows to {path}", "ok")

    # live figures
    def _set_live(self, live: LiveFigures, *, estimated: bool = False) -> None:
        self._live = live
        self._tiles["tokens"].set_value(format_tokens(live.tokens, estimated=estimated))
        self._tiles["tokens_per_s"].set_value(format_rate(live.tokens_per_s))
        self._tiles["ttft_s"].set_value(format_seconds(live.ttft_s))
        self._tiles["cost_usd"].set_value(format_cost(live.cost_usd, provider=self._live_provider))

    def _follows(self, conversation_id: str | None) -> bool:
        """True when a run of ``conversation_id`` belongs in the tiles (the one shown)."""
        return self._all or (conversation_id is not None and conversation_id == self._conversation_id)

    def _show_last_answer(self) -> None:
        """The tiles show the shown conversation's last recorded answer (dashes when none)."""
        self._tiles["ttft_s"].setToolTip("")
        records = self._ledger.recent(1, conversation_id=self._conversation_id) if self._conversation_id else []
        if not records:
            self._live_provider = None
            self._live = LiveFigures()
            for tile in self._tiles.values():
                tile.set_value(DASH)
            self._end_live("Idle" if self._conversation_id is None else "No answers yet in this conversation", "")
            return
        rec = records[0]
        self._live_provider = rec.provider
        self._set_live(LiveFigures(rec.completion_tokens, rec.tokens_per_s, rec.ttft_s, to_decimal(rec.cost_usd),
                                   final=True), estimated=rec.estimated)  # fmt: skip
        self._end_live(f"Last answer \u00b7 {rec.provider}:{rec.model.partition('?')[0]}", "")

    def _on_run_started(self, event: RunStarted) -> None:
        gen_id, info = event.run_id, event.info
        if not self._follows(info.conversation_id):
            return  # another conversation's answer (or a comparison): the tiles keep this one's
        self._live_gen = gen_id
        self._tiles["ttft_s"].setToolTip("")
        model = info.model
        self._live_provider = info.request.model.provider
        self._set_live(LiveFigures())
        self._status.setText(f"\u25cf Streaming \u00b7 {model}" if model else "\u25cf Streaming")
        self._status.setStyleSheet(f"color: {tone('ok', self)}; font-weight: 600;")
        self._notice.clear_message()

    def _on_run_stats(self, event: RunStats) -> None:
        live = event.figures
        if event.run_id != self._live_gen:
            return
        self._set_live(live)
        if live.thinking:  # a thinking model before its answer: not stuck, thinking
            self._tiles["tokens_per_s"].set_value("thinking\u2026")
            self._tiles["tokens_per_s"].setToolTip(
                f"{live.reasoning_tokens:,} reasoning tokens so far; the answer has not started")
        else:
            self._tiles["tokens_per_s"].setToolTip("")

    def _on_run_finished(self, event: RunFinished) -> None:
        result = event.result
        if event.run_id != self._live_gen:
            return
        rec = result.record
        self._set_live(LiveFigures(rec.completion_tokens, rec.tokens_per_s, rec.ttft_s, result.cost_usd,
                                   final=True), estimated=rec.estimated)
        loaded = f" \u00b7 loaded in {format_seconds(result.load_s)}" if result.load_s is not None else ""
        if result.load_s is not None:  # the load is not in the first token's time
            self._tiles["ttft_s"].setToolTip(f"After the model loaded (that took {format_seconds(result.load_s)})")
        self._end_live(f"Done in {format_seconds(rec.duration_s)}{loaded} \u00b7 {rec.provider}:{rec.model}", "")

    def _on_run_failed(self, event: RunFailed) -> None:
        if event.run_id == self._live_gen:
            self._show_recorded(event.run_id)
            self._end_live("Failed", f"color: {tone('error', self)}; font-weight: 600;")

    def _on_run_cancelled(self, event: RunCancelled) -> None:
        if event.run_id == self._live_gen:
            self._show_recorded(event.run_id)
            self._end_live("Stopped", f"color: {tone('warning', self)}; font-weight: 600;")

    def _show_recorded(self, gen_id: str) -> None:
        """A stopped or failed answer: the tiles show what the ledger recorded (as the table
        does), not the last live count."""
        f = self._backend.ended_figures(gen_id)
        if f is not None:
            self._set_live(LiveFigures(f.completion_tokens or 0, f.tokens_per_s, f.ttft_s, f.cost, final=True),
                           estimated=f.estimated)  # fmt: skip

    def _end_live(self, text: str, style: str) -> None:
        self._live_gen = None
        self._status.setText(text)
        self._status.setStyleSheet(style)

    # ledger views
    def _refresh_messages(self) -> None:
        if self._all or self._conversation_id is not None:
            records = self._ledger.recent(RECENT_LIMIT, conversation_id=self._conversation_id)  # newest first
        else:
            records = []  # a new conversation: nothing yet
        table = self._messages
        table.setUpdatesEnabled(False)
        table.setRowCount(len(records))
        for row, rec in enumerate(records):
            when = dt.datetime.fromtimestamp(rec.started_at)
            cost = format_cost(rec.cost_usd, provider=rec.provider)
            finish = rec.finish_reason + (" \u26a0" if rec.error else "")
            cells = {
                "Time": _item(when.strftime("%H:%M:%S"), tooltip=when.strftime("%Y-%m-%d %H:%M:%S")),
                "Model": _item(f"{rec.provider}:{rec.model.partition('?')[0]}",
                               tooltip=f"{rec.provider}:{rec.model}" + (f" @ {rec.endpoint}" if rec.endpoint else "")),
                "Prompt": _item(format_tokens(rec.prompt_tokens, estimated=rec.estimated), align_right=True,
                                tooltip="~ = counted locally (estimate)" if rec.estimated else "exact (reported)"),
                "Completion": _item(format_tokens(rec.completion_tokens, estimated=rec.estimated), align_right=True),
                "Cost": _item(cost, align_right=True),
                "Speed": _item(format_rate(rec.tokens_per_s), align_right=True),
                "TTFT": _item(format_seconds(rec.ttft_s), align_right=True),
                "Adapter": _item(rec.adapter or DASH),
                "Finish": _item(finish, tooltip=rec.error or ""),
            }
            if rec.error:
                cells["Finish"].setForeground(QColor(tone("error", self)))
            table.set_row(row, cells)
        table.fit()
        table.setUpdatesEnabled(True)

    # chart
    def _totals_up_to_date(self) -> None:
        """Read the totals now if the ledger changed since (the tab is read when shown)."""
        if self._totals_tab.dirty:
            try:
                self._totals_tab.refresh()
            except Exception as exc:  # a broken ledger must not break the window
                self._notice.show_message(f"Could not read the usage ledger: {error_text(exc)}")

    def _on_tab_changed(self, index: int) -> None:
        if self._tabs.widget(index) is self._totals_tab:
            self._totals_up_to_date()
        if self._tabs.widget(index) is self._chart_tab and self._chart_tab.dirty:
            self._chart_tab.refresh()
