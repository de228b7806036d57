"""A read-only table that never scrolls sideways: it shows the columns that fit its width,
most important first, gives the rest of the width to one stretching column (its text
elided), and hides the others (their values stay in each row's tooltip). Used by the Usage
dock, which may be 240 px wide in a 1024 px window."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPalette, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

MIN_STRETCH = 56
"""The narrowest the stretching column gets before another column is hidden."""
PADDING = 14


class FittedTable(QTableWidget):
    """``columns`` in display order; ``priority`` the order in which they are kept as the
    table narrows (``stretch`` is always kept and takes the width left)."""

    def __init__(self, columns: Sequence[str], *, stretch: str, priority: Sequence[str],
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(0, len(columns), parent)
        # A viewport made in Python, set up as Qt's own: at the first viewport() (fit()),
        # PySide6 searched every QWidget type for the class of Qt's (~8 ms of start-up).
        viewport = QWidget()
        viewport.setObjectName("qt_scrollarea_viewport")
        viewport.setBackgroundRole(QPalette.ColorRole.Base)
        viewport.setAutoFillBackground(True)
        self.setViewport(viewport)
        self.columns = tuple(columns)
        self.stretch = stretch
        self.priority = tuple(c for c in priority if c != stretch and c in self.columns)
        self.setHorizontalHeaderLabels(list(columns))
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        self.verticalHeader().setDefaultSectionSize(22)
        self._fitting = False

    def column_index(self, name: str) -> int:
        """The index of column ``name``."""
        return self.columns.index(name)

    def visible_columns(self) -> list[str]:
        """The columns shown now, in display order."""
        return [c for i, c in enumerate(self.columns) if not self.isColumnHidden(i)]

    def _natural(self, index: int) -> int:
        """The width column ``index`` needs for its title and its longest cell (measured from
        the text: Qt's own hints are 0 for a hidden column)."""
        header = self.horizontalHeader()
        title = self.horizontalHeaderItem(index)
        width = header.fontMetrics().horizontalAdvance(title.text() if title is not None else "") + PADDING + 4
        metrics = self.fontMetrics()
        for row in range(min(self.rowCount(), 500)):
            item = self.item(row, index)
            if item is not None and item.text():
                width = max(width, metrics.horizontalAdvance(item.text()) + PADDING)
        return width

    def fit(self) -> None:
        """Choose the columns that fit the width and size them (no horizontal scrolling)."""
        if self._fitting:
            return
        self._fitting = True
        try:
            available = self.viewport().width()
            natural = {name: self._natural(self.column_index(name)) for name in self.columns}
            used = MIN_STRETCH
            keep = {self.stretch}
            for name in self.priority:
                if used + natural[name] <= available:
                    keep.add(name)
                    used += natural[name]
            rest = available - sum(natural[n] for n in keep if n != self.stretch)
            for i, name in enumerate(self.columns):
                self.setColumnHidden(i, name not in keep)
                if name in keep:
                    self.setColumnWidth(i, max(MIN_STRETCH, rest) if name == self.stretch else natural[name])
            self.horizontalScrollBar().setValue(0)  # never left scrolled sideways
        finally:
            self._fitting = False

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        """Refit when the viewport's width changes (the table's, or a vertical scroll bar's coming)."""
        if event.type() == QEvent.Type.Resize and isinstance(event, QResizeEvent) \
                and event.size().width() != event.oldSize().width():  # fmt: skip
            handled = super().viewportEvent(event)
            self.fit()
            return handled
        return super().viewportEvent(event)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        """A tab shown for the first time has its real width only now."""
        super().showEvent(event)
        self.fit()

    def set_row(self, row: int, cells: dict[str, QTableWidgetItem]) -> None:
        """Fill one row; its tooltip lists every column (so hidden ones can still be read)."""
        summary = "\n".join(f"{name}: {cells[name].text()}" for name in self.columns if name in cells)
        for i, name in enumerate(self.columns):
            item = cells.get(name) or QTableWidgetItem("")
            if not item.toolTip():
                item.setToolTip(summary)
            else:
                item.setToolTip(item.toolTip() + "\n\n" + summary)
            self.setItem(row, i, item)
