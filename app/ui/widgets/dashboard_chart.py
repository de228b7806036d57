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
AXIS_LABELS = 12
"""At most this many categories show their labels (the dock is narrow)."""


def cost_unit(largest: float) -> tuple[float, str]:
    """The multiplier and unit that keep the cost axis's labels short: dollars from $1,
    cents below (a typical request costs a fraction of a cent)."""
    return (1.0, "USD") if largest >= 1 else (100.0, "US cents")


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
        scale, unit = cost_unit(max(costs, default=0))
        line = QLineSeries()
        line.setName(f"Cost ({unit})")
        line.setColor(QColor("#f29d38"))
        for i, c in enumerate(costs):
            line.append(float(i), c * scale)
        chart.addSeries(line)
        days = self.mode.currentData() == "days"
        x_axis = QBarCategoryAxis()
        x_axis.append(labels or [""])
        x_axis.setLabelsVisible(len(labels) <= AXIS_LABELS)  # more would be elided to "..."
        x_axis.setTitleText(("days, " if days else "") + "oldest \u2192 newest")  # a short title: never cut
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        bar_series.attachAxis(x_axis)
        line.attachAxis(x_axis)
        y_tokens = QValueAxis()  # the legend names the axes: no titles, the plot keeps the width
        y_tokens.setRange(0, max(tokens, default=0) * 1.1 or 1)
        y_tokens.setLabelFormat("%d")
        chart.addAxis(y_tokens, Qt.AlignmentFlag.AlignLeft)
        bar_series.attachAxis(y_tokens)
        y_cost = QValueAxis()
        y_cost.setRange(0, max(costs, default=0) * scale * 1.1 or 1)
        y_cost.setLabelFormat("%.2g")  # short labels ("0.09"), the unit in the legend
        chart.addAxis(y_cost, Qt.AlignmentFlag.AlignRight)
        line.attachAxis(y_cost)
        old = self.view.chart()
        self.view.setChart(chart)
        if old is not None:
            old.deleteLater()
