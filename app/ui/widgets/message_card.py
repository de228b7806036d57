"""One message's card in the transcript: header (role, ``‹ k/n ›``, model, actions and the
"⋯" menu with Fork from here, Copy as code and Show probabilities), the body (its own
QTextDocument, fed by :class:`StreamRenderer`), the probabilities view (:class:`AnswerLens`:
each token shaded by its probability, alternatives on hover and click), a thinking model's
collapsible reasoning, the figures line (with the mean logprob and perplexity when the answer
has its tokens), a note line and the error line (with "Regenerate instead" where a branch
could not be continued).

While the probabilities view is shown, streamed text goes to it only; the Markdown body gets
the text it missed when it is shown again (never parsed twice).

Signals of :class:`MessageCard`:
    regenerate_clicked(), edit_clicked(int message_id), branch_clicked(int message_id, int step),
    fork_clicked(int message_id), copied(str text), code_requested(int message_id, str language),
    token_branch_clicked(int message_id, int index, str text): an alternative of token ``index``,
    regenerate_message_clicked(int message_id): "Regenerate instead" of this answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.events import TokenLogprob
from app.core.figures import MessageFigures
from app.core.lens import tokens_from_meta
from app.core.live_figures import LiveFigures
from app.ui.widgets.branch_switcher import BranchSwitcher
from app.ui.widgets.card_lens import AnswerLens
from app.ui.widgets.card_parts import MessageBody, ThinkingSection, card_button
from app.ui.widgets.common import ElidedLabel, laid_out, selectable_label
from app.ui.widgets.tool_card import badge_label, show_verdict
from app.ui.widgets.transcript_render import LIGHT_CODE, CodeStyle, StreamRenderer

__all__ = ["CODE_LANGUAGES", "MessageBody", "MessageCard", "Meta", "ThinkingSection", "format_figures"]

Meta = Mapping[str, object]
"""A message's stored meta: model, endpoint, adapter, params, reasoning, its figures and (when
probabilities were asked for) its tokens."""


def format_figures(meta: Meta) -> str:
    """One line of per-message figures: tokens, cost, time to first token, tokens/s."""
    return MessageFigures.from_meta(meta).sentence()


LENS_SHARE = 2
"""The shaded token view draws this fraction of a flush's characters per tick: each of its
characters costs about twice a Markdown body's to insert and to paint (a format per token),
and a draw plus the paint after it is the longest the window stays busy while a fast stream
catches up (bench_streaming --logprobs: p99 6.0 vs 6.6 ms, five alternating runs)."""

CODE_LANGUAGES = (("Python (openai SDK)", "python"), ("curl", "curl"),
                  ("Python (transformers + peft)", "transformers"))


class MessageCard(QFrame):
    """One message: header (role, model, actions), body, figures and error line."""

    regenerate_clicked = Signal()
    edit_clicked = Signal(int)
    branch_clicked = Signal(int, int)
    fork_clicked = Signal(int)
    copied = Signal(str)
    code_requested = Signal(int, str)
    token_branch_clicked = Signal(int, int, str)
    regenerate_message_clicked = Signal(int)

    def __init__(self, role: str, *, title: str = "", message_id: int | None = None,
                 code_style: CodeStyle = LIGHT_CODE, branch: tuple[int, int] = (1, 1),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.setObjectName("card_user" if role == "user" else "card_assistant")
        lay = laid_out(self, QVBoxLayout, (14, 10, 14, 10), 4)
        head = QHBoxLayout()
        head.setSpacing(8)
        self.role_label = QLabel("You" if role == "user" else ("System" if role == "system" else "Assistant"))
        self.role_label.setObjectName("cardRole")
        # a long model, path or adapter name is elided (whole in the tooltip): it never widens the card
        self.model_label = ElidedLabel(title, min_width=24)
        self.model_label.setObjectName("cardModel")
        self.branch = BranchSwitcher(self)
        self.branch.set_position(*branch)
        self.branch.step_requested.connect(self._on_branch_step)
        head.addWidget(self.role_label)
        head.addWidget(self.branch)
        head.addWidget(self.model_label, 1)
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
        self.menu = QMenu(self)
        self.fork_action = self.menu.addAction("Fork from here", self._on_fork)
        self.fork_action.setToolTip("A new conversation with the messages up to this one")
        self.menu.addAction("Copy", self.copy_text)
        self.code_menu: QMenu | None = None
        self.lens_action = None
        if role == "assistant":  # "Copy as code": the request of this answer as a program
            self.code_menu = self.menu.addMenu("Copy as code")
            self.code_menu.setToolTip("The request of this answer as a program (the key is read from an "
                                      "environment variable)")
            for label, language in CODE_LANGUAGES:
                self.code_menu.addAction(label).triggered.connect(lambda _c=False, lang=language: self._on_code(lang))
            self.lens_action = self.menu.addAction("Show probabilities")
            self.lens_action.setCheckable(True)
            self.lens_action.setEnabled(False)
            self.lens_action.setToolTip("Each token shaded by its probability; hover or click a token for "
                                        "its alternatives (answers asked with probabilities)")
            self.lens_action.toggled.connect(self._on_lens_toggled)
        self.menu_button = self._action("\u22ef", lambda: None)
        self.menu_button.setToolTip("More: Fork from here, Copy"
                                    + (", Copy as code, Show probabilities" if role == "assistant" else ""))
        self.menu_button.setMenu(self.menu)
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu_button.setVisible(message_id is not None)
        head.addWidget(self.menu_button)
        lay.addLayout(head)
        self._lay = lay
        self.thinking: ThinkingSection | None = None
        """The reasoning of a thinking model (created when the first reasoning arrives)."""
        self._pending_reasoning: list[str] = []
        self.body = MessageBody(self)
        self.renderer = StreamRenderer(self.body.document(), code_style)
        self.body.copy_code.connect(self._copy_code)
        lay.addWidget(self.body)
        self.lens = AnswerLens(self, lambda: MessageBody(self), self._place_lens)
        """The probabilities view (its widget is made when first shown)."""
        self.lens.branch_requested.connect(self._on_token_branch)
        # word-wrapped: a long figures line (the lens adds to it) never widens the card
        self.figures = selectable_label(name="cardFigures")
        self.figures.setVisible(False)
        lay.addWidget(self.figures)
        self.badge = badge_label(self)
        """The response schema's verdict ("valid" / "invalid: path, reason")."""
        lay.addWidget(self.badge)
        self.note_label = QLabel("")
        self.note_label.setObjectName("cardNote")
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet("color: palette(placeholder-text); font-style: italic;")
        self.note_label.setVisible(False)
        lay.addWidget(self.note_label)
        err = QHBoxLayout()
        err.setSpacing(8)
        self.error_label = QLabel("")
        self.error_label.setObjectName("cardError")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        err.addWidget(self.error_label, 1)
        self.regen_instead_button = self._action("Regenerate instead", self._on_regenerate_instead)
        self.regen_instead_button.setVisible(False)
        err.addWidget(self.regen_instead_button, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(err)
        self._pending: list[str] = []
        self._md_backlog: list[str] = []
        """Text the Markdown body has not been given while the probabilities view was shown."""
        self._md_unfinished = False
        self._figures_line = ""
        self._lens_mean: float | None = None
        self.streaming = False
        self.status = "complete"

    def _action(self, text: str, slot: Callable[[], object]) -> QToolButton:
        return card_button(self, text, slot)

    @property
    def text(self) -> str:
        """The message text so far (including text not yet flushed)."""
        return self.renderer.text + "".join(self._md_backlog) + "".join(self._pending)

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
        if self.role == "assistant":
            self.lens.queue(delta)

    def attach_tokens(self, tokens: Sequence[TokenLogprob]) -> None:
        """The tokens (with probabilities) of the delta queued last."""
        if self.lens.attach(tokens) and self.lens_action is not None:  # the first: the view can show
            self.lens_action.setEnabled(True)

    def queue_reasoning(self, delta: str) -> None:
        """Buffer a streamed reasoning delta (one token; drawn on the next flush)."""
        self._pending_reasoning.append(delta)

    def pending_chars(self) -> int:
        """Characters buffered but not drawn yet."""
        return (sum(len(p) for p in self._pending) + sum(len(p) for p in self._pending_reasoning)
                + self.lens.pending_chars())  # fmt: skip

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
        if self.lens.shown:  # the Markdown body catches up when it is shown again
            if self._pending:
                if self.thinking is not None:
                    self.thinking.end_thinking()
                self._md_backlog.extend(self._pending)
                self._pending.clear()
            return self.lens.flush(None if max_chars is None else max_chars // LENS_SHARE)
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
        self.lens.flush()
        if self._md_backlog or self.lens.shown:
            self._md_unfinished = True  # finished when the Markdown body is shown again
        else:
            self.renderer.finish()
        if self.thinking is not None:
            self.thinking.end_thinking()
        self.streaming = False
        self.status = status
        if meta:
            self.set_meta(meta)
        if self.lens.shown and not self.lens.has_tokens:  # none came: the Markdown is better
            self.show_probabilities(False)
        if error:
            self.error_label.setText(("Stopped. " if status == "cancelled" else "Error: ") + error)
            self.error_label.setVisible(True)
        elif status == "cancelled":
            self.error_label.setText("Stopped by you.")
            self.error_label.setVisible(True)
        else:
            self.explain_length(meta)
        self._show_figures(self._figures_line)

    def explain_length(self, meta: Meta | None) -> None:
        """Say why a thinking model's answer is empty when its token budget ran out."""
        if meta and meta.get("finish_reason") == "length" and self.thinking is not None and not self.text.strip():
            self.error_label.setText("The model spent all its tokens thinking and gave no answer: "
                                     "raise Max tokens and regenerate.")
            self.error_label.setVisible(True)

    def set_meta(self, meta: Meta) -> None:
        """Show model/adapter in the header, the figures line, the provider's notes and (when
        the answer came with them) its tokens for the probabilities view."""
        model = meta.get("model")
        if model:
            adapter = meta.get("adapter")
            self.model_label.setText(f"{model}" + (f"  +  LoRA {adapter}" if adapter else ""))
        reasoning = meta.get("reasoning")
        if reasoning and isinstance(reasoning, str) and self.thinking is None and not self._pending_reasoning:
            tokens = meta.get("reasoning_tokens")
            self.set_reasoning(reasoning, tokens if isinstance(tokens, int) else None)
        notes = meta.get("notes")
        if isinstance(notes, list) and notes:
            self.show_note(" ".join(str(n) for n in notes))
        mean = meta.get("logprob_mean")
        self._lens_mean = float(mean) if isinstance(mean, int | float) else None
        if isinstance(meta.get("tokens"), list) and not self.lens.has_tokens and not self.streaming:
            self.lens.set_tokens(self.text, tokens_from_meta(meta))  # a reopened answer (streamed ones have theirs)
        if self.lens_action is not None:
            self.lens_action.setEnabled(self.lens.has_tokens)
        self._show_figures(format_figures(meta))
        show_verdict(self.badge, meta)

    def _show_figures(self, line: str) -> None:
        self._figures_line = line
        extra = self.lens.sentence(self._lens_mean) if self.role == "assistant" and not self.streaming else ""
        full = " \u00b7 ".join(p for p in (line, extra) if p)
        self.figures.setText(full)
        self.figures.setVisible(bool(full))

    def set_live(self, live: LiveFigures) -> None:
        """Figures that tick while streaming."""
        self._show_figures(live.sentence())

    def show_note(self, message: str) -> None:
        """A note about this answer that is not an error (e.g. no probabilities from the server)."""
        if message and message not in self.note_label.text():
            self.note_label.setText(" ".join(p for p in (self.note_label.text(), message) if p))
            self.note_label.setVisible(True)

    def offer_regenerate(self, message: str) -> None:
        """Show ``message`` as the error with a "Regenerate instead" action (a branch from a
        token the server could not continue)."""
        self.error_label.setText(message)
        self.error_label.setVisible(True)
        self.regen_instead_button.setVisible(self.message_id is not None)

    def restyle(self, code_style: CodeStyle) -> None:
        """The theme changed: shade the tokens in the new palette's colours and, on a finished
        answer, draw the code blocks in ``code_style`` (a streaming one keeps its style)."""
        self.lens.restyle()
        if self.streaming or self._md_backlog or self._md_unfinished or self.renderer.style == code_style:
            return
        text = self.renderer.text
        self.body.document().clear()
        self.renderer = StreamRenderer(self.body.document(), code_style)
        self.renderer.set_text(text)

    # -- probabilities ----------------------------------------------------------------------------
    @property
    def showing_probabilities(self) -> bool:
        """True while the probabilities view is shown instead of the Markdown."""
        return self.lens.shown

    def show_probabilities(self, on: bool) -> None:
        """Show the tokens shaded by probability (on) or the Markdown (off). A finished answer
        without tokens keeps its Markdown; a streaming one shows what arrives."""
        if self.role != "assistant" or (on and not self.lens.has_tokens and not self.streaming):
            on = False
        if on == self.lens.shown:
            self._sync_action(on)
            return
        self.lens.show(on)
        self.body.setVisible(not on)
        if not on:
            if self._md_backlog:
                backlog = "".join(self._md_backlog)
                self._md_backlog.clear()
                self.renderer.feed(backlog)
            if self._md_unfinished and not self.streaming:
                self._md_unfinished = False
                self.renderer.finish()
        self._sync_action(on)

    def _sync_action(self, on: bool) -> None:
        if self.lens_action is not None and self.lens_action.isChecked() != on:
            self.lens_action.blockSignals(True)
            self.lens_action.setChecked(on)
            self.lens_action.blockSignals(False)

    def _on_lens_toggled(self, on: bool) -> None:
        self.show_probabilities(on)

    def _place_lens(self, view: QTextBrowser) -> None:
        self._lay.insertWidget(self._lay.indexOf(self.body) + 1, view)

    def _on_token_branch(self, index: int, text: str) -> None:
        if self.message_id is not None:
            self.token_branch_clicked.emit(self.message_id, index, text)

    def _on_regenerate_instead(self) -> None:
        if self.message_id is not None:
            self.regenerate_message_clicked.emit(self.message_id)

    # -- actions ----------------------------------------------------------------------------------
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

    def _on_branch_step(self, step: int) -> None:
        if self.message_id is not None:
            self.branch_clicked.emit(self.message_id, step)

    def _on_fork(self) -> None:
        if self.message_id is not None:
            self.fork_clicked.emit(self.message_id)
