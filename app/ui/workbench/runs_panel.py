"""The list of past Workbench runs (from the window and from ``python -m app grid``), with
Reopen, Rerun, Export and Delete.

Signals:
    reopen_requested(str run_id), rerun_requested(str run_id), export_requested(str run_id),
    delete_requested(str run_id)
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.grid.store import RunHeader, RunStore


class RunsPanel(QWidget):
    """See the module doc."""

    reopen_requested = Signal(str)
    rerun_requested = Signal(str)
    export_requested = Signal(str)
    delete_requested = Signal(str)

    def __init__(self, store: RunStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        head = QLabel("Past runs")
        head.setStyleSheet("font-weight: 600;")
        self.list = QListWidget(self)
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.itemDoubleClicked.connect(lambda _item: self._emit("reopen"))
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        buttons = QGridLayout()
        self.reopen_button = QPushButton("Reopen")
        self.rerun_button = QPushButton("Rerun")
        self.export_button = QPushButton("Export…")
        self.delete_button = QPushButton("Delete")
        self.reopen_button.clicked.connect(lambda: self._emit("reopen"))
        self.rerun_button.clicked.connect(lambda: self._emit("rerun"))
        self.export_button.clicked.connect(lambda: self._emit("export"))
        self.delete_button.clicked.connect(lambda: self._emit("delete"))
        for i, b in enumerate((self.reopen_button, self.rerun_button, self.export_button, self.delete_button)):
            buttons.addWidget(b, i // 2, i % 2)
        lay.addWidget(head)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)
        self.headers: list[RunHeader] = []
        self.refresh()

    def refresh(self) -> None:
        """Read the list again (keeps the selection)."""
        current = self.selected()
        self.headers = self.store.list_runs()
        self.list.clear()
        for h in self.headers:
            item = QListWidgetItem(h.line())
            item.setData(Qt.ItemDataRole.UserRole, h.id)
            item.setToolTip(f"{h.title}\nrun {h.id}\n{h.source or ''}\n{h.summary.get('cells', '?')} cells, "
                            f"status {h.status}, from the {'command line' if h.origin == 'cli' else 'window'}")  # fmt: skip
            self.list.addItem(item)
            if h.id == current:
                self.list.setCurrentItem(item)
        self._update_buttons()

    def selected(self) -> str | None:
        """The selected run's id."""
        item = self.list.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def select(self, run_id: str) -> bool:
        """Select a run by id."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == run_id:
                self.list.setCurrentItem(item)
                return True
        return False

    def _update_buttons(self) -> None:
        has = self.selected() is not None
        for b in (self.reopen_button, self.rerun_button, self.export_button, self.delete_button):
            b.setEnabled(has)

    def _emit(self, what: str) -> None:
        run_id = self.selected()
        if run_id is not None:
            getattr(self, f"{what}_requested").emit(run_id)
