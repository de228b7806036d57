"""One message's card in the transcript: header (role, ``‹ k/n ›``, model, actions and the
"⋯" menu with Fork from here), the body (its own QTextDocument, fed by
:class:`StreamRenderer`), a thinking model's collapsible reasoning, the figures line and the
error line.

Signals of :class:`MessageCard`:
    regenerate_clicked(), edit_clicked(int message_id), branch_clicked(int message_id, int step),
    fork_clicked(int message_id), copied(str text)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import QSize, QSizeF, Qt, QUrl, Signal
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
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.figures import MessageFigures
from app.core.run_events import LiveFigures
from app.ui.widgets.branch_switcher import BranchSwitcher
from app.ui.widgets.transcript_render import LIGHT_CODE, CodeStyle, StreamRenderer

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

    def __init__(self, role: str, *, title: str = "", message_id: int | None = None,
                 code_style: CodeStyle = LIGHT_CODE, branch: tuple[int, int] = (1, 1),
                 parent: QWidget | None = None) -> None:
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
        self.branch = BranchSwitcher(self)
        self.branch.set_position(*branch)
        self.branch.step_requested.connect(self._on_branch_step)
        head.addWidget(self.role_label)
        head.addWidget(self.branch)
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
        self.menu = QMenu(self)
        self.fork_action = self.menu.addAction("Fork from here", self._on_fork)
        self.fork_action.setToolTip("A new conversation with the messages up to this one")
        self.menu.addAction("Copy", self.copy_text)
        self.code_menu: QMenu | None = None
        if role == "assistant":  # "Copy as code": the request of this answer as a program
            self.code_menu = self.menu.addMenu("Copy as code")
            self.code_menu.setToolTip("The request of this answer as a program (the key is read from an "
                                      "environment variable)")
            for label, language in CODE_LANGUAGES:
                self.code_menu.addAction(label).triggered.connect(lambda _c=False, lang=language: self._on_code(lang))
        self.menu_button = self._action("\u22ef", lambda: None)
        self.menu_button.setToolTip("More: Fork from here, Copy" + (", Copy as code" if role == "assistant" else ""))
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

    def _on_branch_step(self, step: int) -> None:
        if self.message_id is not None:
            self.branch_clicked.emit(self.message_id, step)

    def _on_fork(self) -> None:
        if self.message_id is not None:
            self.fork_clicked.emit(self.message_id)
