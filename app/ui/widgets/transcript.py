"""The streaming transcript: one card (with its own QTextDocument) per message.

Streamed deltas are buffered and flushed on one ~30 ms timer; each flush appends to the
message's document through :class:`StreamRenderer` (finished Markdown blocks are rendered
once, only the tail is re-drawn), so long answers stay linear and the GUI stays smooth.
A thinking model's reasoning is coalesced the same way into a muted, collapsible
:class:`ThinkingSection` at the top of the card (plain text appended at the end, never
re-rendered); it collapses when the answer starts.

Each card of a message with siblings shows ``‹ k/n ›`` (:class:`BranchSwitcher`); its "⋯"
menu has Copy, Fork from here and Show probabilities. :meth:`TranscriptView.set_probabilities`
(View > Show probabilities) shows every answer that has its tokens shaded by probability,
streaming ones included (their tokens are appended incrementally, as the Markdown is).

Signals:
    regenerate_requested(): the user asked to regenerate the last answer.
    edit_requested(int message_id): the user wants to edit and resend a user message.
    branch_requested(int message_id, int step): show the sibling ``step`` (-1/+1) places on.
    fork_requested(int message_id): a new conversation holding the path up to this message.
    copied(str text): text was copied to the clipboard.
    stream_finished(str key): a streamed card has drawn all its text and ended.
    copy_code_requested(int message_id, str language): "Copy as code" of an answer
        (language: python, curl or transformers).
    token_branch_requested(int message_id, int index, str text): branch from token ``index``
        of an answer with the alternative ``text``.
    regenerate_message_requested(int message_id): "Regenerate instead" of an answer.
    tool_rerun_requested(int message_id, str content): re-run from the ``tool`` message
        ``message_id`` with ``content`` as its result (a new branch).

Tool calls show as :class:`~app.ui.widgets.tool_card.ToolCallCard` s under the answer that
made them (:meth:`TranscriptView.add_tool_call`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.events import TokenLogprob
from app.ui.theme import LIGHT_CODE, CodeStyle

if TYPE_CHECKING:
    from app.core.tools import ToolCall
    from app.ui.widgets.message_card import (
        MessageBody,
        MessageCard,
        Meta,
        ThinkingSection,
        format_figures,
    )
    from app.ui.widgets.tool_card import ToolCallCard

_CARD_NAMES = ("MessageBody", "MessageCard", "Meta", "ThinkingSection", "format_figures")


def __getattr__(name: str) -> object:
    """The card module's names, loaded with the first card (not at start-up, when the
    transcript is empty): ``from app.ui.widgets.transcript import MessageCard`` still works."""
    if name in _CARD_NAMES:
        from app.ui.widgets import message_card

        return getattr(message_card, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

FLUSH_MS = 30
FLUSH_CHUNK = 4000
_clock = time.perf_counter  # how long a flush took (a test's clock in tests)
CARD_MAX_WIDTH = 940
EMPTY_TEXT = "Start a conversation: pick a model, type a message and press Ctrl+Enter."

__all__ = ["FLUSH_CHUNK", "FLUSH_MS", "MessageBody", "MessageCard", "Meta", "ThinkingSection", "TranscriptView",
           "format_figures"]


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
    branch_requested = Signal(int, int)
    fork_requested = Signal(int)
    copied = Signal(str)
    stream_finished = Signal(str)
    copy_code_requested = Signal(int, str)
    token_branch_requested = Signal(int, int, str)
    regenerate_message_requested = Signal(int)
    tool_rerun_requested = Signal(int, str)

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
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self._layout.addWidget(self.empty_label)
        self._layout.addStretch(1)
        self.setWidget(inner)
        self._cards: dict[str, MessageCard] = {}
        self._order: list[str] = []
        self._tools: dict[str, ToolCallCard] = {}
        self._streaming: set[str] = set()
        self._finishing: dict[str, _Ending] = {}
        self._stick = True
        self.probabilities = False
        """View > Show probabilities: answers with tokens show them (new cards too)."""
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)

    # -- cards --------------------------------------------------------------------------------
    def clear(self, empty_text: str = EMPTY_TEXT) -> None:
        """Remove every message; the empty transcript says ``empty_text``."""
        self.empty_label.setText(empty_text)
        for key in list(self._order):
            self._dispose(self._cards.pop(key))
        for tool in self._tools.values():
            self._dispose(tool)
        self._tools.clear()
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
        card.branch_clicked.connect(self.branch_requested.emit)
        card.fork_clicked.connect(self.fork_requested.emit)
        card.copied.connect(self.copied.emit)
        card.code_requested.connect(self.copy_code_requested.emit)
        card.token_branch_clicked.connect(self.token_branch_requested.emit)
        card.regenerate_message_clicked.connect(self.regenerate_message_requested.emit)
        self._place(card)
        self._cards[key] = card
        self._order.append(key)
        self._update_regen()
        return card

    def _place(self, card: MessageCard | ToolCallCard) -> None:
        """Put ``card`` at the end (the view follows it: the user sees what just came)."""
        card.setMaximumWidth(CARD_MAX_WIDTH)
        self._layout.insertWidget(self._layout.count() - 1, card)
        self.empty_label.setVisible(False)
        self._stick = True

    def add_tool_call(self, key: str, call: ToolCall) -> ToolCallCard:
        """A card for one tool call at the end (its result comes with :meth:`tool_card`)."""
        old = self._tools.pop(key, None)
        if old is not None:
            self._dispose(old)
        from app.ui.widgets.tool_card import ToolCallCard

        card = ToolCallCard(call)
        card.rerun_requested.connect(self.tool_rerun_requested.emit)
        card.branch_clicked.connect(self.branch_requested.emit)
        self._place(card)
        self._tools[key] = card
        return card

    def tool_card(self, key: str) -> ToolCallCard | None:
        """The tool call card for ``key``."""
        return self._tools.get(key)

    def tool_cards(self) -> list[ToolCallCard]:
        """Every tool call card, top to bottom."""
        return sorted(self._tools.values(), key=self._layout.indexOf)

    def add_message(self, key: str, role: str, text: str, *, message_id: int | None = None,
                    meta: Meta | None = None, status: str = "complete",
                    error: str | None = None, branch: tuple[int, int] = (1, 1)) -> MessageCard:
        """Add a finished message (``branch``: it is the k-th of n siblings)."""
        from app.ui.widgets.message_card import MessageCard

        card = MessageCard(role, message_id=message_id, code_style=self.code_style, branch=branch)
        card.set_text(text)
        if meta:
            card.set_meta(meta)
        if status != "complete" or error:
            card.finish(status=status, error=error)
        else:
            card.explain_length(meta)
        card.status = status
        if self.probabilities:
            card.show_probabilities(True)
        return self._add_card(key, card)

    def start_stream(self, key: str, *, title: str = "", message_id: int | None = None,
                     branch: tuple[int, int] = (1, 1)) -> MessageCard:
        """Add an assistant card that will receive streamed text."""
        from app.ui.widgets.message_card import MessageCard

        card = MessageCard("assistant", title=title, message_id=message_id, code_style=self.code_style,
                           branch=branch)
        card.streaming = True
        card.status = "streaming"
        if self.probabilities:
            card.show_probabilities(True)
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

    def attach_tokens(self, key: str, tokens: Sequence[TokenLogprob]) -> None:
        """The tokens (with probabilities) of the delta appended last to a streaming card."""
        card = self._cards.get(key)
        if card is not None:
            card.attach_tokens(tokens)

    def show_note(self, key: str, message: str) -> None:
        """A note on a card that is not an error (e.g. the server gives no probabilities)."""
        card = self._cards.get(key)
        if card is not None:
            card.show_note(message)

    def set_probabilities(self, on: bool) -> None:
        """Show every answer's tokens shaded by probability (those that have them), or the
        Markdown; cards added later follow."""
        self.probabilities = on
        for card in self.cards():
            card.show_probabilities(on)

    def set_code_style(self, code_style: CodeStyle) -> None:
        """The theme changed: new cards and those on screen follow (code, token shading)."""
        self.code_style = code_style
        for card in self.cards():
            card.restyle(code_style)

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
        stream never stalls the event loop; with more pending the next tick comes after a pause
        as long as this one took (FLUSH_MS at most)."""
        start = _clock()
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
            # more pending: come back after as long as this tick drew, so the timers that fell
            # due meanwhile (and the paint of what was drawn) go first: draw half the time at most
            self._timer.setInterval(min(FLUSH_MS, int((_clock() - start) * 1000)) if more else FLUSH_MS)

    def flush_all(self) -> None:
        """Draw everything buffered now (tests, benchmarks)."""
        for key in list(self._streaming):
            card = self._cards.get(key)
            if card is not None:
                card.flush()
                card.lens.flush()

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

    def _dispose(self, card: MessageCard | ToolCallCard) -> None:
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
