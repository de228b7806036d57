"""The live usage dashboard dock: live tiles, per-message table, totals, chart, CSV export.

Live tiles tick from the backend's ``stats_updated`` (already throttled); everything else is
read from the usage ledger on ``ledger_changed`` (a few cheap queries per generation, never
per token). The QtCharts chart is built on first show, so QtCharts loads only when used.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMargins, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import GenerationResult
from app.core.figures import plural
from app.core.run_events import LiveFigures, RunInfo
from app.core.usage import UsageTotals

if TYPE_CHECKING:
    from PySide6.QtCharts import QChartView

    from app.ui.backend_manager import BackendManager
from app.ui.widgets.common import (
    DASH,
    TILE_STYLE,
    MessageLabel,
    Tile,
    error_text,
    format_cost,
    format_rate,
    format_seconds,
    format_tokens,
    tone,
)

MESSAGE_COLUMNS = ("Time", "Model", "Prompt", "Completion", "Cost", "Speed", "TTFT", "Adapter", "Finish")
MODEL_COLUMNS = ("Model", "Requests", "Prompt", "Completion", "Cost", "Avg speed")
RECENT_LIMIT = 200
CHART_REQUESTS = 50


def choose_csv_path(parent: QWidget | None) -> str | None:
    """Ask where to save the CSV export (tests monkeypatch this)."""
    name = f"llm-usage-{dt.date.today().isoformat()}.csv"
    path, _ = QFileDialog.getSaveFileName(parent, "Export usage as CSV", name, "CSV files (*.csv)")
    return path or None


def _today_start() -> float:
    now = dt.datetime.now()
    return dt.datetime(now.year, now.month, now.day).timestamp()


def _summary(totals: UsageTotals) -> str:
    """'3 requests · 1,234 tokens · $0.0012' for a UsageTotals."""
    n = int(totals.requests)
    if n == 0:
        return "No requests yet"
    tokens = int(totals.prompt_tokens) + int(totals.completion_tokens)
    approx = totals.estimated_requests > 0
    cost = format_cost(totals.cost_usd)
    unpriced = totals.unknown_cost_requests
    if unpriced:
        cost = f"{cost} + {unpriced} unpriced" if totals.cost_usd else f"{unpriced} unpriced"
    parts = [
        f"{n:,} request{'s' if n != 1 else ''}",
        f"{format_tokens(tokens, estimated=approx)} {plural(tokens, 'token', with_count=False)}",
        cost,
    ]
    if totals.avg_tokens_per_s:
        parts.append(f"avg {format_rate(totals.avg_tokens_per_s)}")
    return " \u00b7 ".join(parts)


def _item(text: str, *, align_right: bool = False, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tooltip:
        item.setToolTip(tooltip)
    return item


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setDefaultSectionSize(22)
    return table


MIN_WIDTH = 280


class DashboardDock(QDockWidget):
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
        self._totals: dict[str, str] = {"conversation": DASH, "today": DASH, "all_time": DASH}
        self._chart_view: QChartView | None = None
        self._chart_dirty = True

        body = QWidget()
        body.setStyleSheet(TILE_STYLE)
        root = QVBoxLayout(body)
        root.setContentsMargins(8, 8, 8, 8)
        root.setSpacing(8)
        self._status = QLabel("Idle")
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
        self._messages = _table(MESSAGE_COLUMNS)
        self._tabs.addTab(self._messages, "Messages")
        self._tabs.addTab(self._build_totals_tab(), "Totals")
        self._chart_tab = QWidget()
        self._chart_layout = chart_layout = QVBoxLayout(self._chart_tab)
        chart_layout.setContentsMargins(0, 4, 0, 0)
        self._chart_mode = QComboBox()
        self._chart_mode.addItem(f"Last {CHART_REQUESTS} requests", "requests")
        self._chart_mode.addItem("Per day (30 days)", "days")
        self._chart_mode.currentIndexChanged.connect(self._on_chart_mode_changed)
        chart_layout.addWidget(self._chart_mode)
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

        backend.generation_started.connect(self._on_backend_generation_started)
        backend.stats_updated.connect(self._on_backend_stats_updated)
        backend.generation_finished.connect(self._on_backend_generation_finished)
        backend.generation_failed.connect(self._on_backend_generation_failed)
        backend.generation_cancelled.connect(self._on_backend_generation_cancelled)
        backend.ledger_changed.connect(self.refresh)
        self.refresh()

    def _build_totals_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 6, 0, 0)
        form = QGridLayout()
        form.setHorizontalSpacing(12)
        self._totals_labels: dict[str, QLabel] = {}
        for row, (key, caption) in enumerate(
            (("conversation", "This conversation"), ("today", "Today"), ("all_time", "All time"))
        ):
            head = QLabel(caption)
            head.setStyleSheet("font-weight: 600;")
            value = QLabel(DASH)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            form.addWidget(head, row, 0, Qt.AlignmentFlag.AlignTop)
            form.addWidget(value, row, 1)
            self._totals_labels[key] = value
        form.setColumnStretch(1, 1)
        layout.addLayout(form)
        per_model = QLabel("Per model (all time)")
        per_model.setStyleSheet("font-weight: 600; margin-top: 6px;")
        layout.addWidget(per_model)
        self._models = _table(MODEL_COLUMNS)
        layout.addWidget(self._models, 1)
        return tab

    # public API
    def set_conversation(self, conversation_id: str | None) -> None:
        """Show the per-message table and totals of ``conversation_id`` (None: all recent)."""
        self._conversation_id = conversation_id
        self.refresh()

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
        return dict(self._totals)

    def model_rows(self) -> int:
        """Rows in the per-model totals table."""
        return self._models.rowCount()

    def chart_points(self) -> int:
        """Data points in the chart (0 until the chart tab was shown)."""
        if self._chart_view is None:
            return 0
        from PySide6.QtCharts import QLineSeries

        lines = [s for s in self._chart_view.chart().series() if isinstance(s, QLineSeries)]
        return lines[0].count() if lines else 0

    def show_chart(self) -> None:
        """Switch to the chart tab (builds the chart on first use)."""
        self._tabs.setCurrentWidget(self._chart_tab)

    def refresh(self) -> None:
        """Re-read the table, totals and (if visible) the chart from the ledger."""
        try:
            self._refresh_messages()
            self._refresh_totals()
            self._chart_dirty = True
            if self._tabs.currentWidget() is self._chart_tab:
                self._refresh_chart()
        except Exception as exc:  # a broken ledger must not break the window
            self._notice.show_message(f"Could not read the usage ledger: {error_text(exc)}")

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

    def _on_backend_generation_started(self, gen_id: str, info: RunInfo) -> None:
        self._live_gen = gen_id
        model = info.model
        self._live_provider = info.request.model.provider
        self._set_live(LiveFigures())
        self._status.setText(f"\u25cf Streaming \u00b7 {model}" if model else "\u25cf Streaming")
        self._status.setStyleSheet(f"color: {tone('ok', self)}; font-weight: 600;")
        self._notice.clear_message()

    def _on_backend_stats_updated(self, gen_id: str, live: LiveFigures) -> None:
        if gen_id != self._live_gen:
            return
        self._set_live(live)
        if live.thinking:  # a thinking model before its answer: not stuck, thinking
            self._tiles["tokens_per_s"].set_value("thinking\u2026")
            self._tiles["tokens_per_s"].setToolTip(
                f"{live.reasoning_tokens:,} reasoning tokens so far; the answer has not started")
        else:
            self._tiles["tokens_per_s"].setToolTip("")

    def _on_backend_generation_finished(self, gen_id: str, result: GenerationResult) -> None:
        rec = result.record
        self._set_live(LiveFigures(rec.completion_tokens, rec.tokens_per_s, rec.ttft_s, result.cost_usd,
                                   final=True), estimated=rec.estimated)
        self._end_live(f"Done in {format_seconds(rec.duration_s)} \u00b7 {rec.provider}:{rec.model}", "")

    def _on_backend_generation_failed(self, gen_id: str, message: str, partial_text: str) -> None:
        self._end_live("Failed", f"color: {tone('error', self)}; font-weight: 600;")

    def _on_backend_generation_cancelled(self, gen_id: str, partial_text: str) -> None:
        self._end_live("Stopped", f"color: {tone('warning', self)}; font-weight: 600;")

    def _end_live(self, text: str, style: str) -> None:
        self._live_gen = None
        self._status.setText(text)
        self._status.setStyleSheet(style)

    # ledger views
    def _refresh_messages(self) -> None:
        records = self._ledger.recent(RECENT_LIMIT, conversation_id=self._conversation_id)  # newest first
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
            for col, name in enumerate(MESSAGE_COLUMNS):
                table.setItem(row, col, cells[name])
        table.setUpdatesEnabled(True)

    def _refresh_totals(self) -> None:
        ledger = self._ledger
        conv = ledger.totals(conversation_id=self._conversation_id) if self._conversation_id else None
        self._totals = {
            "conversation": _summary(conv) if conv is not None else "No conversation selected",
            "today": _summary(ledger.totals(since=_today_start())),
            "all_time": _summary(ledger.totals()),
        }
        for key, label in self._totals_labels.items():
            label.setText(self._totals[key])
        by_model = list(ledger.totals_by_model().items())  # most expensive first
        table = self._models
        table.setRowCount(len(by_model))
        for row, (model, tot) in enumerate(by_model):
            approx = tot.estimated_requests > 0
            cells = [
                _item(model),
                _item(f"{tot.requests:,}", align_right=True),
                _item(format_tokens(tot.prompt_tokens, estimated=approx), align_right=True),
                _item(format_tokens(tot.completion_tokens, estimated=approx), align_right=True),
                _item(format_cost(tot.cost_usd) if not tot.unknown_cost_requests else DASH, align_right=True),
                _item(format_rate(tot.avg_tokens_per_s), align_right=True),
            ]
            for col, cell in enumerate(cells):
                table.setItem(row, col, cell)

    # chart
    def _on_tab_changed(self, index: int) -> None:
        if self._tabs.widget(index) is self._chart_tab and self._chart_dirty:
            self._refresh_chart()

    def _on_chart_mode_changed(self, index: int) -> None:
        self._refresh_chart()

    def _chart_data(self) -> tuple[list[str], list[int], list[float]]:
        labels: list[str] = []
        tokens: list[int] = []
        costs: list[float] = []
        if self._chart_mode.currentData() == "days":
            for day, tot in self._ledger.totals_by_day(days=30):
                labels.append(str(day)[5:])
                tokens.append(int(tot.prompt_tokens) + int(tot.completion_tokens))
                costs.append(float(tot.cost_usd or 0))
        else:
            records = list(reversed(self._ledger.recent(CHART_REQUESTS)))  # oldest first
            for i, rec in enumerate(records, 1):
                labels.append(str(i))  # categories must be unique; times repeat
                tokens.append(rec.prompt_tokens + rec.completion_tokens)
                costs.append(float(rec.cost_usd or 0))
        return labels, tokens, costs

    def _refresh_chart(self) -> None:
        from PySide6.QtCharts import (
            QBarCategoryAxis,
            QBarSeries,
            QBarSet,
            QChart,
            QChartView,
            QLineSeries,
            QValueAxis,
        )

        self._chart_dirty = False
        labels, tokens, costs = self._chart_data()
        if self._chart_view is None:
            self._chart_view = QChartView()
            self._chart_view.setRenderHint(QPainter.RenderHint.Antialiasing)
            self._chart_view.setMinimumHeight(180)
            self._chart_layout.addWidget(self._chart_view, 1)
        chart = QChart()
        dark = self.palette().color(QPalette.ColorRole.Window).lightness() < 128
        chart.setTheme(QChart.ChartTheme.ChartThemeDark if dark else QChart.ChartTheme.ChartThemeLight)
        chart.setBackgroundVisible(False)
        chart.setMargins(QMargins(2, 2, 2, 2))
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        bars = QBarSet("Tokens")
        bars.setColor(QColor("#5c8df6"))
        bars.append([float(t) for t in tokens])
        bar_series = QBarSeries()
        bar_series.append(bars)
        chart.addSeries(bar_series)
        line = QLineSeries()
        line.setName("Cost (USD)")
        line.setColor(QColor("#f29d38"))
        for i, c in enumerate(costs):
            line.append(float(i), c)
        chart.addSeries(line)
        x_axis = QBarCategoryAxis()
        x_axis.append(labels or [""])
        x_axis.setLabelsAngle(-60 if len(labels) > 12 else 0)
        x_axis.setTitleText("request (oldest to newest)" if self._chart_mode.currentData() != "days" else "day")
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        bar_series.attachAxis(x_axis)
        line.attachAxis(x_axis)
        y_tokens = QValueAxis()
        y_tokens.setRange(0, max(tokens, default=0) * 1.1 or 1)
        y_tokens.setLabelFormat("%d")
        y_tokens.setTitleText("tokens")
        chart.addAxis(y_tokens, Qt.AlignmentFlag.AlignLeft)
        bar_series.attachAxis(y_tokens)
        y_cost = QValueAxis()
        y_cost.setRange(0, max(costs, default=0) * 1.1 or 0.001)
        y_cost.setLabelFormat("$%.4f")
        chart.addAxis(y_cost, Qt.AlignmentFlag.AlignRight)
        line.attachAxis(y_cost)
        old = self._chart_view.chart()
        self._chart_view.setChart(chart)
        if old is not None:
            old.deleteLater()
