"""The Usage dock's Totals tab: this conversation, today and all time, and the per-model table.

Hidden behind the Messages tab at start, it is made and read from the ledger when first shown
(or asked for its figures), and read again when shown after the ledger changed."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QTableWidgetItem, QVBoxLayout, QWidget

from app.core.figures import plural
from app.ui.widgets.common import DASH, format_cost, format_rate, format_tokens, selectable_label
from app.ui.widgets.fitted_table import FittedTable

if TYPE_CHECKING:
    from app.core.usage import UsageLedger, UsageTotals

MODEL_COLUMNS = ("Model", "Requests", "Prompt", "Completion", "Cost", "Avg speed")
MODEL_PRIORITY = ("Cost", "Requests", "Prompt", "Completion", "Avg speed")
ROWS = (("conversation", "This conversation"), ("today", "Today"), ("all_time", "All time"))


def _today_start() -> float:
    now = dt.datetime.now()
    return dt.datetime(now.year, now.month, now.day).timestamp()


def summary(totals: UsageTotals) -> str:
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


def table_item(text: str, *, align_right: bool = False, tooltip: str = "") -> QTableWidgetItem:
    """A read-only cell (selectable, right-aligned for figures)."""
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tooltip:
        item.setToolTip(tooltip)
    return item


class TotalsTab(QWidget):
    """The totals lines and the per-model table (see the module doc)."""

    def __init__(self, ledger: UsageLedger, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ledger = ledger
        self.conversation_id: str | None = None
        """The conversation of the first line (None: none selected)."""
        self.dirty = True
        """The ledger changed since the figures were read."""
        self._totals: dict[str, str] = {key: DASH for key, _ in ROWS}
        self._labels: dict[str, QLabel] = {}
        self._table: FittedTable | None = None

    def table(self) -> FittedTable:
        """The per-model table (made now if the tab was never shown)."""
        if self._table is None:
            self._table = self._build()
        return self._table

    def totals(self) -> dict[str, str]:
        """The totals lines shown: keys conversation, today, all_time."""
        return dict(self._totals)

    def _build(self) -> FittedTable:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        form = QGridLayout()
        form.setHorizontalSpacing(12)
        for row, (key, caption) in enumerate(ROWS):
            head = QLabel(caption)
            head.setStyleSheet("font-weight: 600;")
            value = selectable_label(self._totals[key])
            form.addWidget(head, row, 0, Qt.AlignmentFlag.AlignTop)
            form.addWidget(value, row, 1)
            self._labels[key] = value
        form.setColumnStretch(1, 1)
        layout.addLayout(form)
        per_model = QLabel("Per model (all time)")
        per_model.setStyleSheet("font-weight: 600; margin-top: 6px;")
        layout.addWidget(per_model)
        table = FittedTable(MODEL_COLUMNS, stretch="Model", priority=MODEL_PRIORITY)
        layout.addWidget(table, 1)
        return table

    def refresh(self) -> None:
        """Make the tab if needed and read its figures from the ledger (raises what the ledger raises)."""
        table = self.table()
        ledger = self._ledger
        conv = ledger.totals(conversation_id=self.conversation_id) if self.conversation_id else None
        self._totals = {
            "conversation": summary(conv) if conv is not None else "No conversation selected",
            "today": summary(ledger.totals(since=_today_start())),
            "all_time": summary(ledger.totals()),
        }
        for key, label in self._labels.items():
            label.setText(self._totals[key])
        by_model = list(ledger.totals_by_model().items())  # most expensive first
        table.setRowCount(len(by_model))
        for row, (model, tot) in enumerate(by_model):
            approx = tot.estimated_requests > 0
            cells = [
                table_item(model),
                table_item(f"{tot.requests:,}", align_right=True),
                table_item(format_tokens(tot.prompt_tokens, estimated=approx), align_right=True),
                table_item(format_tokens(tot.completion_tokens, estimated=approx), align_right=True),
                table_item(format_cost(tot.cost_usd) if not tot.unknown_cost_requests else DASH, align_right=True),
                table_item(format_rate(tot.avg_tokens_per_s), align_right=True),
            ]
            table.set_row(row, dict(zip(MODEL_COLUMNS, cells, strict=True)))
        table.fit()
        self.dirty = False
