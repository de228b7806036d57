"""The Usage dock's Chart tab: tokens (bars) and cost (line) of the last requests or per day.

QtCharts loads only when the tab is first shown. The chart takes the width the dock has and
never asks for more (its axes and legend would otherwise widen the dock)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QMargins, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QComboBox, QSizePolicy, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from PySide6.QtCharts import QChartView

    from app.core.usage import UsageLedger

CHART_REQUESTS = 50


class ChartTab(QWidget):
    """The chart and its mode (last requests / per day)."""

    def __init__(self, ledger: UsageLedger, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ledger = ledger
        self.view: QChartView | None = None
        self.dirty = True
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 4, 0, 0)
        self.mode = QComboBox()
        self.mode.addItem(f"Last {CHART_REQUESTS} requests", "requests")
        self.mode.addItem("Per day (30 days)", "days")
        self.mode.setMinimumContentsLength(8)
        self.mode.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.mode.currentIndexChanged.connect(lambda _i: self.refresh())
        self._layout.addWidget(self.mode)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Never wider than the dock already is."""
        return QSize(0, super().minimumSizeHint().height())

    def points(self) -> int:
        """Data points in the chart (0 until it was shown)."""
        if self.view is None:
            return 0
        from PySide6.QtCharts import QLineSeries

        lines = [s for s in self.view.chart().series() if isinstance(s, QLineSeries)]
        return lines[0].count() if lines else 0

    def _data(self) -> tuple[list[str], list[int], list[float]]:
        labels: list[str] = []
        tokens: list[int] = []
        costs: list[float] = []
        if self.mode.currentData() == "days":
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

    def refresh(self) -> None:
        """Redraw from the ledger."""
        from PySide6.QtCharts import (
            QBarCategoryAxis,
            QBarSeries,
            QBarSet,
            QChart,
            QChartView,
            QLineSeries,
            QValueAxis,
        )

        self.dirty = False
        labels, tokens, costs = self._data()
        if self.view is None:
            self.view = QChartView()
            self.view.setRenderHint(QPainter.RenderHint.Antialiasing)
            self.view.setMinimumHeight(180)
            self.view.setMinimumWidth(0)
            self.view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
            self._layout.addWidget(self.view, 1)
        chart = QChart()
        chart.setMinimumSize(0, 0)
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
        x_axis.setTitleText("request (oldest to newest)" if self.mode.currentData() != "days" else "day")
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
        old = self.view.chart()
        self.view.setChart(chart)
        if old is not None:
            old.deleteLater()
