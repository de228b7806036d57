"""The streaming transcript: one card (with its own QTextDocument) per message.

Streamed deltas are buffered and flushed on one ~30 ms timer; each flush appends to the
message's document through :class:`StreamRenderer` (finished Markdown blocks are rendered
once, only the tail is re-drawn), so long answers stay linear and the GUI stays smooth.
A thinking model's reasoning is coalesced the same way into a muted, collapsible
:class:`ThinkingSection` at the top of the card (plain text appended at the end, never
re-rendered); it collapses when the answer starts.

Signals:
    regenerate_requested(): the user asked to regenerate the last answer.
    edit_requested(int message_id): the user wants to edit and resend a user message.
    copied(str text): text was copied to the clipboard.
    stream_finished(str key): a streamed card has drawn all its text and ended.
    copy_code_requested(int message_id, str language): "Copy as code" of an answer
        (language: python, curl or transformers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PySide6.QtCore import QSize, QSizeF, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.figures import MessageFigures
from app.core.run_events import LiveFigures
from app.ui.widgets.transcript_render import LIGHT_CODE, CodeStyle, StreamRenderer

FLUSH_MS = 30
FLUSH_CHUNK = 4000
CODE_LANGUAGES = (("Copy as Python (openai SDK)", "python"), ("Copy as curl", "curl"),
                  ("Copy as Python (transformers + peft)", "transformers"))
CARD_MAX_WIDTH = 940


Meta = Mapping[str, object]
"""A message's stored meta: model, endpoint, adapter, params, reasoning and its figures."""


def format_figures(meta: Meta) -> str:
    """One line of per-message figures: tokens, cost, time to first token, tokens/s."""
    return MessageFigures.from_meta(meta).sentence()


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
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 4)
        lay.setSpacing(2)
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


class MessageCard(QFrame):
    """One message: header (role, model, actions), body, figures and error line."""

    regenerate_clicked = Signal()
    edit_clicked = Signal(int)
    copied = Signal(str)
    code_requested = Signal(int, str)

    def __init__(self, role: str, *, title: str = "", message_id: int | None = None,
                 code_style: CodeStyle = LIGHT_CODE, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.setObjectName("card_user" if role == "user" else "card_assistant")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 10, 14, 10)
        lay.setSpacing(4)
        head = QHBoxLayout()
        head.setSpacing(8)
        self.role_label = QLabel("You" if role == "user" else ("System" if role == "system" else "Assistant"))
        self.role_label.setObjectName("cardRole")
        self.model_label = QLabel(title)
        self.model_label.setObjectName("cardModel")
        head.addWidget(self.role_label)
        head.addWidget(self.model_label)
        head.addStretch(1)
        self.copy_button = self._action("Copy", self.copy_text)
        head.addWidget(self.copy_button)
        if role == "user":
            self.edit_button: QToolButton | None = self._action("Edit", self._on_edit)
            head.addWidget(self.edit_button)
        else:
            self.edit_button = None
        self.regen_button = self._action("Regenerate", self.regenerate_clicked.emit)
        self.regen_button.setVisible(False)
        head.addWidget(self.regen_button)
        self.code_button: QToolButton | None = None
        if role == "assistant":  # "Copy as code": the request of this answer as a program
            self.code_button = self._action("Code", lambda: None)
            self.code_button.setToolTip("Copy the request of this answer as a program (the key is read from an "
                                        "environment variable)")
            menu = QMenu(self.code_button)
            for label, language in CODE_LANGUAGES:
                menu.addAction(label).triggered.connect(lambda _c=False, lang=language: self._on_code(lang))
            self.code_button.setMenu(menu)
            self.code_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            head.addWidget(self.code_button)
        lay.addLayout(head)
        self._lay = lay
        self.thinking: ThinkingSection | None = None
        """The reasoning of a thinking model (created when the first reasoning arrives)."""
        self._pending_reasoning: list[str] = []
        self.body = MessageBody(self)
        self.renderer = StreamRenderer(self.body.document(), code_style)
        self.body.copy_code.connect(self._copy_code)
        lay.addWidget(self.body)
        self.figures = QLabel("")
        self.figures.setObjectName("cardFigures")
        self.figures.setVisible(False)
        self.figures.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.figures)
        self.error_label = QLabel("")
        self.error_label.setObjectName("cardError")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        lay.addWidget(self.error_label)
        self._pending: list[str] = []
        self.streaming = False
        self.status = "complete"

    def _action(self, text: str, slot: Callable[[], object]) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setObjectName("cardAction")
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        b.clicked.connect(slot)
        return b

    @property
    def text(self) -> str:
        """The message text so far (including text not yet flushed)."""
        return self.renderer.text + "".join(self._pending)

    def set_text(self, text: str) -> None:
        """Show a complete message."""
        self.renderer.set_text(text)

    @property
    def reasoning(self) -> str:
        """The reasoning so far (including reasoning not yet flushed)."""
        return (self.thinking.text if self.thinking is not None else "") + "".join(self._pending_reasoning)

    def queue(self, delta: str) -> None:
        """Buffer a streamed delta (drawn on the next flush)."""
        self._pending.append(delta)

    def queue_reasoning(self, delta: str) -> None:
        """Buffer a streamed reasoning delta (one token; drawn on the next flush)."""
        self._pending_reasoning.append(delta)

    def pending_chars(self) -> int:
        """Characters buffered but not drawn yet."""
        return sum(len(p) for p in self._pending) + sum(len(p) for p in self._pending_reasoning)

    def _thinking_section(self) -> ThinkingSection:
        if self.thinking is None:
            self.thinking = ThinkingSection(self)
            self._lay.insertWidget(1, self.thinking)  # under the header, above the answer
        return self.thinking

    def set_reasoning(self, text: str, tokens: int | None = None) -> None:
        """Show the reasoning of a finished message (collapsed)."""
        section = self._thinking_section()
        section.append(text, tokens if tokens is not None else len(text.split()))
        section.end_thinking()

    def flush(self, max_chars: int | None = None) -> bool:
        """Draw buffered deltas (at most ``max_chars`` of them); True when text is still pending."""
        if self._pending_reasoning:
            thought = "".join(self._pending_reasoning)
            self._thinking_section().append(thought, len(self._pending_reasoning))
            self._pending_reasoning.clear()
        if not self._pending:
            return False
        if self.thinking is not None:
            self.thinking.end_thinking()  # the answer starts: fold the reasoning away
        text = "".join(self._pending)
        self._pending.clear()
        if max_chars is not None and len(text) > max_chars:
            self._pending.append(text[max_chars:])
            text = text[:max_chars]
        self.renderer.feed(text)
        return bool(self._pending)

    def finish(self, *, status: str = "complete", error: str | None = None, meta: Meta | None = None) -> None:
        """End streaming: render the tail, show figures and any error."""
        self.flush()
        self.renderer.finish()
        if self.thinking is not None:
            self.thinking.end_thinking()
        self.streaming = False
        self.status = status
        if meta:
            self.set_meta(meta)
        if error:
            self.error_label.setText(("Stopped. " if status == "cancelled" else "Error: ") + error)
            self.error_label.setVisible(True)
        elif status == "cancelled":
            self.error_label.setText("Stopped by you.")
            self.error_label.setVisible(True)
        else:
            self.explain_length(meta)

    def explain_length(self, meta: Meta | None) -> None:
        """Say why a thinking model's answer is empty when its token budget ran out."""
        if meta and meta.get("finish_reason") == "length" and self.thinking is not None and not self.text.strip():
            self.error_label.setText("The model spent all its tokens thinking and gave no answer: "
                                     "raise Max tokens and regenerate.")
            self.error_label.setVisible(True)

    def set_meta(self, meta: Meta) -> None:
        """Show model/adapter in the header and the figures line."""
        model = meta.get("model")
        if model:
            adapter = meta.get("adapter")
            self.model_label.setText(f"{model}" + (f"  +  LoRA {adapter}" if adapter else ""))
        reasoning = meta.get("reasoning")
        if reasoning and isinstance(reasoning, str) and self.thinking is None and not self._pending_reasoning:
            tokens = meta.get("reasoning_tokens")
            self.set_reasoning(reasoning, tokens if isinstance(tokens, int) else None)
        self._show_figures(format_figures(meta))

    def _show_figures(self, line: str) -> None:
        self.figures.setText(line)
        self.figures.setVisible(bool(line))

    def set_live(self, live: LiveFigures) -> None:
        """Figures that tick while streaming."""
        self._show_figures(live.sentence())

    def copy_text(self) -> None:
        """Copy the whole message as Markdown."""
        QGuiApplication.clipboard().setText(self.text)
        self.copied.emit(self.text)

    def _copy_code(self, index: int) -> None:
        blocks = self.renderer.code_blocks
        if 0 <= index < len(blocks):
            QGuiApplication.clipboard().setText(blocks[index])
            self.copied.emit(blocks[index])

    def _on_edit(self) -> None:
        if self.message_id is not None:
            self.edit_clicked.emit(self.message_id)

    def _on_code(self, language: str) -> None:
        if self.message_id is not None:
            self.code_requested.emit(self.message_id, language)


@dataclass(frozen=True, slots=True)
class _Ending:
    """How a card ends once its buffered text is drawn."""

    status: str
    error: str | None
    meta: Meta | None


class TranscriptView(QScrollArea):
    """A scrolling list of :class:`MessageCard`s with coalesced streaming."""

    regenerate_requested = Signal()
    edit_requested = Signal(int)
    copied = Signal(str)
    stream_finished = Signal(str)
    copy_code_requested = Signal(int, str)

    def __init__(self, parent: QWidget | None = None, code_style: CodeStyle = LIGHT_CODE) -> None:
        super().__init__(parent)
        self.setObjectName("transcript")
        self.code_style = code_style
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QWidget()
        inner.setObjectName("transcriptInner")
        outer = QHBoxLayout(inner)  # cards in a centred column of readable width
        outer.setContentsMargins(24, 16, 24, 16)
        column = QWidget(inner)
        column.setObjectName("transcriptInner")
        column.setMaximumWidth(CARD_MAX_WIDTH)
        outer.addWidget(column)
        self._layout = QVBoxLayout(column)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(12)
        self.empty_label = QLabel("Start a conversation: pick a model, type a message and press Ctrl+Enter.")
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self._layout.addWidget(self.empty_label)
        self._layout.addStretch(1)
        self.setWidget(inner)
        self._cards: dict[str, MessageCard] = {}
        self._order: list[str] = []
        self._streaming: set[str] = set()
        self._finishing: dict[str, _Ending] = {}
        self._stick = True
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)

    # -- cards --------------------------------------------------------------------------------
    def clear(self) -> None:
        """Remove every message."""
        for key in list(self._order):
            self._dispose(self._cards.pop(key))
        self._order.clear()
        self._streaming.clear()
        self._finishing.clear()
        self._timer.stop()
        self.empty_label.setVisible(True)

    def _add_card(self, key: str, card: MessageCard) -> MessageCard:
        if key in self._cards:
            self.remove(key)
        card.regenerate_clicked.connect(self.regenerate_requested.emit)
        card.edit_clicked.connect(self.edit_requested.emit)
        card.copied.connect(self.copied.emit)
        card.code_requested.connect(self.copy_code_requested.emit)
        card.setMaximumWidth(CARD_MAX_WIDTH)
        self._layout.insertWidget(self._layout.count() - 1, card)
        self._cards[key] = card
        self._order.append(key)
        self.empty_label.setVisible(False)
        self._stick = True
        self._update_regen()
        return card

    def add_message(self, key: str, role: str, text: str, *, message_id: int | None = None,
                    meta: Meta | None = None, status: str = "complete",
                    error: str | None = None) -> MessageCard:
        """Add a finished message."""
        card = MessageCard(role, message_id=message_id, code_style=self.code_style)
        card.set_text(text)
        if meta:
            card.set_meta(meta)
        if status != "complete" or error:
            card.finish(status=status, error=error)
        else:
            card.explain_length(meta)
        card.status = status
        return self._add_card(key, card)

    def start_stream(self, key: str, *, title: str = "", message_id: int | None = None) -> MessageCard:
        """Add an assistant card that will receive streamed text."""
        card = MessageCard("assistant", title=title, message_id=message_id, code_style=self.code_style)
        card.streaming = True
        card.status = "streaming"
        self._add_card(key, card)
        self._streaming.add(key)
        self._update_regen()
        return card

    def append(self, key: str, delta: str) -> None:
        """Buffer a delta for a streaming card; the timer draws it."""
        card = self._cards.get(key)
        if card is None:
            return
        card.queue(delta)
        if not self._timer.isActive():
            self._timer.start()

    def append_reasoning(self, key: str, delta: str) -> None:
        """Buffer a reasoning delta for a streaming card; the timer draws it."""
        card = self._cards.get(key)
        if card is None or not delta:
            return
        card.queue_reasoning(delta)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Draw buffered deltas: at most FLUSH_CHUNK characters per card per tick, so a very fast
        stream never stalls the event loop; with more pending the next tick comes at once."""
        more = False
        for key in list(self._streaming):
            card = self._cards.get(key)
            if card is not None:
                more = card.flush(FLUSH_CHUNK) or more
        for key, ending in list(self._finishing.items()):
            card = self._cards.get(key)
            if card is None or not card.pending_chars():
                del self._finishing[key]
                self._end_card(key, status=ending.status, error=ending.error, meta=ending.meta)
        if not self._streaming:
            self._timer.stop()
        else:
            self._timer.setInterval(0 if more else FLUSH_MS)

    def flush_all(self) -> None:
        """Draw everything buffered now (tests, benchmarks)."""
        for key in list(self._streaming):
            card = self._cards.get(key)
            if card is not None:
                card.flush()

    def finish_stream(self, key: str, *, status: str = "complete", error: str | None = None,
                      meta: Meta | None = None) -> None:
        """End a streaming card."""
        card = self._cards.get(key)
        if card is not None and card.pending_chars() > FLUSH_CHUNK and key in self._streaming:
            self._finishing[key] = _Ending(status, error, meta)  # drain first
            card.status = status
            return
        self._end_card(key, status=status, error=error, meta=meta)

    def _end_card(self, key: str, *, status: str, error: str | None, meta: Meta | None) -> None:
        card = self._cards.get(key)
        self._streaming.discard(key)
        self._finishing.pop(key, None)
        if card is not None:
            card.finish(status=status, error=error, meta=meta)
        self._update_regen()
        self.stream_finished.emit(key)

    def remove(self, key: str) -> None:
        """Remove one card."""
        card = self._cards.pop(key, None)
        if card is None:
            return
        self._order.remove(key)
        self._streaming.discard(key)
        self._finishing.pop(key, None)
        self._dispose(card)
        self.empty_label.setVisible(not self._order)
        self._update_regen()

    def _dispose(self, card: MessageCard) -> None:
        """Delete a card on the GUI thread (it keeps its Qt parent until deleteLater runs)."""
        self._layout.removeWidget(card)
        card.hide()
        card.deleteLater()

    def card(self, key: str) -> MessageCard | None:
        """The card for ``key``."""
        return self._cards.get(key)

    def cards(self) -> list[MessageCard]:
        """All cards, top to bottom."""
        return [self._cards[k] for k in self._order]

    def streaming_keys(self) -> list[str]:
        """Keys of the cards still streaming."""
        return list(self._streaming)

    def is_streaming(self) -> bool:
        """True while some card is streaming."""
        return bool(self._streaming)

    def _update_regen(self) -> None:
        last_assistant = next((k for k in reversed(self._order) if self._cards[k].role == "assistant"), None)
        for key in self._order:
            card = self._cards[key]
            card.regen_button.setVisible(key == last_assistant and not card.streaming)

    # -- scrolling ----------------------------------------------------------------------------
    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick = value >= bar.maximum() - 4

    def _on_range_changed(self, _lo: int, hi: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(hi)
