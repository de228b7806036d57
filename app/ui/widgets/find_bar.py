"""Find in the conversation (Ctrl+F): a bar over the prompt editor that searches every
message's text, highlights all matches, steps through them (Enter / Shift+Enter, F3) and
scrolls the current one into view; Esc closes it.

Signals:
    closed(): the bar was closed (the window puts the focus back in the message box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTextEdit,
    QToolButton,
    QWidget,
)

from app.ui.widgets.common import laid_out

if TYPE_CHECKING:
    from app.ui.widgets.transcript import MessageCard, TranscriptView

MAX_MATCHES = 5000


@dataclass(frozen=True)
class Match:
    """One match: the card and where in its text."""

    card: MessageCard
    start: int
    end: int


class _FindEdit(QLineEdit):
    escaped = Signal()
    back = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        """Esc closes, Shift+Enter goes back, Enter forward (returnPressed)."""
        if event.key() == Qt.Key.Key_Escape:
            self.escaped.emit()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.back.emit()
            return
        super().keyPressEvent(event)


class FindBar(QFrame):
    """Search the transcript's messages (see the module doc)."""

    closed = Signal()

    def __init__(self, transcript: TranscriptView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findBar")
        self._transcript = transcript
        self._matches: list[Match] = []
        self._index = -1
        lay = laid_out(self, QHBoxLayout, (24, 4, 24, 4), 6)
        lay.addWidget(QLabel("Find"))
        self.edit = _FindEdit(self)
        self.edit.setPlaceholderText("Find in the conversation")
        self.edit.setClearButtonEnabled(True)
        self.edit.setMinimumWidth(80)
        lay.addWidget(self.edit, 1)
        self.count_label = QLabel("")
        self.count_label.setMinimumWidth(70)
        lay.addWidget(self.count_label)
        self._prev = self._button("\u25b2", "Previous match (Shift+Enter)", lambda: self.step(-1))
        self._next = self._button("\u25bc", "Next match (Enter, F3)", lambda: self.step(1))
        close = self._button("\u2715", "Close (Esc)", self.close_bar)
        for b in (self._prev, self._next, close):
            lay.addWidget(b)
        self.edit.textChanged.connect(self._on_text_changed)
        self.edit.returnPressed.connect(lambda: self.step(1))
        self.edit.back.connect(lambda: self.step(-1))
        self.edit.escaped.connect(self.close_bar)
        self.setVisible(False)

    def _button(self, text: str, tip: str, slot: object) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.clicked.connect(slot)
        return b

    # -- public ---------------------------------------------------------------------------------
    def open_bar(self) -> None:
        """Show the bar with its text selected (and search again: the conversation may have grown)."""
        self.setVisible(True)
        self.edit.setFocus()
        self.edit.selectAll()
        self.search(self.edit.text())

    def close_bar(self) -> None:
        """Hide the bar and its highlights."""
        self._clear_highlights()
        self._matches, self._index = [], -1
        self.setVisible(False)
        self.closed.emit()

    def search(self, text: str) -> int:
        """Find every match of ``text`` (case-insensitive) and go to the first; the count."""
        self._clear_highlights()
        self._matches, self._index = [], -1
        if text:
            for card in self._transcript.cards():
                doc = card.body.document()
                cursor = doc.find(text, 0)
                while not cursor.isNull() and len(self._matches) < MAX_MATCHES:
                    self._matches.append(Match(card, cursor.selectionStart(), cursor.selectionEnd()))
                    cursor = doc.find(text, cursor.selectionEnd())
        if self._matches:
            self._index = 0
            self._show()
        self._update_count(text)
        return len(self._matches)

    def step(self, direction: int) -> None:
        """Go to the next (1) or previous (-1) match, wrapping around."""
        if not self._matches:
            self.search(self.edit.text())
            return
        self._index = (self._index + direction) % len(self._matches)
        self._show()
        self._update_count(self.edit.text())

    def match_count(self) -> int:
        """Matches of the text searched."""
        return len(self._matches)

    def current(self) -> Match | None:
        """The match shown now."""
        return self._matches[self._index] if 0 <= self._index < len(self._matches) else None

    # -- showing --------------------------------------------------------------------------------
    def _on_text_changed(self, text: str) -> None:
        self.search(text)

    def _update_count(self, text: str) -> None:
        if not text:
            self.count_label.setText("")
        elif not self._matches:
            self.count_label.setText("no match")
        else:
            self.count_label.setText(f"{self._index + 1} of {len(self._matches)}")
        for b in (self._prev, self._next):
            b.setEnabled(len(self._matches) > 1)

    def _selection(self, match: Match, colour: QColor) -> QTextEdit.ExtraSelection:
        sel = QTextEdit.ExtraSelection()
        cursor = QTextCursor(match.card.body.document())
        cursor.setPosition(match.start)
        cursor.setPosition(match.end, QTextCursor.MoveMode.KeepAnchor)
        fmt = QTextCharFormat()
        fmt.setBackground(colour)
        fmt.setForeground(QColor("#000000"))
        sel.cursor = cursor
        sel.format = fmt
        return sel

    def _show(self) -> None:
        current = self.current()
        if current is None:
            return
        by_card: dict[int, list[QTextEdit.ExtraSelection]] = {}
        for m in self._matches:
            colour = QColor("#ff9632") if m is current else QColor("#ffe066")
            by_card.setdefault(id(m.card), []).append(self._selection(m, colour))
        for m in {id(x.card): x for x in self._matches}.values():
            m.card.body.setExtraSelections(by_card.get(id(m.card), []))
        body = current.card.body
        cursor = QTextCursor(body.document())
        cursor.setPosition(current.start)
        rect = body.cursorRect(cursor)
        inner = self._transcript.widget()
        if inner is not None:
            point = body.mapTo(inner, rect.center())
            self._transcript.ensureVisible(point.x(), point.y(), 40, 80)

    def _clear_highlights(self) -> None:
        for card in {id(m.card): m.card for m in self._matches}.values():
            try:
                card.body.setExtraSelections([])
            except RuntimeError:  # the card was deleted (another conversation opened)
                pass
