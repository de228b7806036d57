"""``‹ k/n ›`` on a message card: which of its n siblings (other versions of a user message,
other answers to the same message) is shown, with buttons to switch.

Signals:
    step_requested(int step): -1 (previous) or +1 (next), wrapping round.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from app.ui.widgets.common import laid_out


class BranchSwitcher(QWidget):
    """Hidden while a message has no siblings."""

    step_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("branchSwitcher")
        lay = laid_out(self, QHBoxLayout, (0, 0, 0, 0), 0)
        self.prev_button = self._button("\u2039", "Previous version (the old branch stays)", -1)
        self.label = QLabel("1/1", self)
        self.label.setObjectName("cardModel")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.next_button = self._button("\u203a", "Next version", 1)
        lay.addWidget(self.prev_button)
        lay.addWidget(self.label)
        lay.addWidget(self.next_button)
        self.index, self.count = 1, 1
        self.setVisible(False)

    def _button(self, text: str, tip: str, step: int) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setObjectName("cardAction")
        b.setToolTip(tip)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        b.setAutoRaise(True)
        b.clicked.connect(lambda: self.step_requested.emit(step))
        return b

    def set_position(self, index: int, count: int) -> None:
        """Show ``index`` of ``count`` (1-based); hidden when ``count`` is 1."""
        self.index, self.count = index, count
        self.label.setText(f"{index}/{count}")
        self.setToolTip(f"Version {index} of {count}: \u2039 \u203a switch to the others (nothing is lost)")
        self.setVisible(count > 1)

    def text(self) -> str:
        """``‹ k/n ›`` as shown."""
        return f"\u2039 {self.index}/{self.count} \u203a"
