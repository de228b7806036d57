"""Parts of a message card: the body that grows to fit its document, and a thinking model's
collapsible reasoning section."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, QSizeF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser, QToolButton, QVBoxLayout, QWidget

from app.ui.widgets.common import laid_out


def card_button(parent: QWidget, text: str, slot: Callable[[], object]) -> QToolButton:
    """A flat action of a card's header ("Copy", "Edit result", ...)."""
    b = QToolButton(parent)
    b.setText(text)
    b.setObjectName("cardAction")
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    b.clicked.connect(slot)
    return b


class MessageBody(QTextBrowser):
    """A read-only rich-text view that grows to fit its document (no inner scrollbar)."""

    copy_code = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.anchorClicked.connect(self._on_anchor)
        self.setFixedHeight(24)

    def _fit(self, size: QSizeF) -> None:
        h = int(size.height()) + 4
        if h != self.height():
            self.setFixedHeight(max(24, h))

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Width follows the card; height follows the document."""
        return QSize(400, self.height())

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            try:
                self.copy_code.emit(int(url.path() or url.toString().split(":", 1)[1]))
            except ValueError:
                pass
        elif url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)


class ThinkingSection(QFrame):
    """A thinking model's reasoning: a toggle ("Thinking… · N tokens") over muted plain text,
    expanded while the model thinks, collapsed once the answer starts (unless the user opened
    or closed it), at most :attr:`MAX_HEIGHT` pixels tall (it scrolls beyond)."""

    MAX_HEIGHT = 220

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cardThinking")
        lay = laid_out(self, QVBoxLayout, (0, 0, 0, 4), 2)
        self.toggle = QToolButton(self)
        self.toggle.setObjectName("cardAction")
        self.toggle.setCheckable(True)
        self.toggle.setChecked(True)
        self.toggle.setCursor(Qt.CursorShape.PointingHandCursor)
        self.toggle.clicked.connect(self._on_clicked)
        self.toggle.toggled.connect(self._on_toggled)
        lay.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignLeft)
        self.view = QTextBrowser(self)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.view.document().setDocumentMargin(2)
        self.view.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.view.setFixedHeight(24)
        lay.addWidget(self.view)
        pal = self.palette()
        text, base = pal.color(QPalette.ColorRole.Text), pal.color(QPalette.ColorRole.Base)
        muted = QColor((text.red() + base.red() * 2) // 3, (text.green() + base.green() * 2) // 3,
                       (text.blue() + base.blue() * 2) // 3)  # fmt: skip
        self._format = QTextCharFormat()
        self._format.setForeground(muted)
        self._format.setFontItalic(True)
        self.tokens = 0
        self.thinking = True
        self._user_chose = False
        self._chars = 0
        self._update_label()

    @property
    def text(self) -> str:
        """The reasoning shown."""
        return self.view.document().toPlainText()

    def append(self, text: str, tokens: int) -> None:
        """Add reasoning at the end (linear: no re-render of what is there)."""
        if not text and not tokens:
            return
        cursor = QTextCursor(self.view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, self._format)
        self.tokens += tokens
        self._chars += len(text)
        self._update_label()
        if self.thinking:  # follow the newest reasoning
            bar = self.view.verticalScrollBar()
            bar.setValue(bar.maximum())

    def end_thinking(self) -> None:
        """The answer started (or the message ended): collapse unless the user chose."""
        if not self.thinking:
            return
        self.thinking = False
        if not self._user_chose:
            self.toggle.setChecked(False)
        self._update_label()

    def is_expanded(self) -> bool:
        """True when the reasoning text is shown."""
        return self.toggle.isChecked()

    def _on_clicked(self) -> None:
        self._user_chose = True

    def _on_toggled(self, on: bool) -> None:
        self.view.setVisible(on)
        self._update_label()

    def _update_label(self) -> None:
        arrow = "\u25be" if self.toggle.isChecked() else "\u25b8"
        word = "Thinking\u2026" if self.thinking else "Thinking"
        count = f" \u00b7 {self.tokens:,} token{'s' if self.tokens != 1 else ''}" if self.tokens else ""
        self.toggle.setText(f"{arrow} {word}{count}")

    def _fit(self, size: QSizeF) -> None:
        h = min(self.MAX_HEIGHT, int(size.height()) + 4)
        if h != self.view.height():
            self.view.setFixedHeight(max(24, h))
        self.view.setVerticalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAsNeeded if h >= self.MAX_HEIGHT else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )
