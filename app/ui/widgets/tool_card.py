"""A tool call in the transcript: a compact card with the function, its arguments
pretty-printed (arguments that are not JSON shown as written, with the reason), then its
result with where it came from (a stub, an MCP server, an error), the time it took, the
approval it needed, and errors in red. A result can be edited and the turn re-run from
there as a new branch (``‹ k/n ›`` on the card switches between the versions).

Also :func:`schema_verdict`: the "valid" / "invalid: path, reason" badge of an answer that
had to follow a response schema.

Signals of :class:`ToolCallCard`:
    rerun_requested(int message_id, str content): re-run the turn with this result instead.
    branch_clicked(int message_id, int step): show another version of the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.tools import ToolCall
from app.ui.widgets.branch_switcher import BranchSwitcher
from app.ui.widgets.card_parts import card_button
from app.ui.widgets.common import ElidedLabel, laid_out, selectable_label

ERROR_STYLE = "color: #c62828;"
OK_STYLE = "color: #2e7d32;"
RESULT_LINES = 6


def pretty_arguments(call: ToolCall) -> tuple[str, str | None]:
    """The call's arguments pretty-printed, and why they are not usable (None: they are a
    JSON object); arguments that do not parse come back as written."""
    text = call.arguments or "{}"
    try:
        value = json.loads(text)
    except ValueError as exc:
        return call.arguments, f"arguments are not valid JSON: {exc}"
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    return pretty, None if isinstance(value, dict) else f"arguments are not a JSON object ({type(value).__name__})"


def schema_verdict(meta: Mapping[str, object]) -> tuple[str, bool] | None:
    """The badge of an answer made with a response schema: ("valid", True) or ("invalid:
    path, reason", False); None when the answer had no schema."""
    loop = meta.get("loop")
    if not isinstance(loop, Mapping) or loop.get("valid") is None:
        return None
    if loop.get("valid"):
        return "\u2713 valid", True
    return f"\u2717 invalid: {loop.get('invalid_reason') or 'does not follow the schema'}", False


def badge_label(parent: QWidget) -> QLabel:
    """The label a card shows :func:`schema_verdict` in (hidden until set)."""
    label = QLabel(parent)
    label.setObjectName("schemaBadge")
    label.setWordWrap(True)
    label.setVisible(False)
    return label


def show_verdict(label: QLabel, meta: Mapping[str, object]) -> None:
    """Show ``meta``'s schema verdict on ``label`` (hidden when there is none)."""
    verdict = schema_verdict(meta)
    label.setVisible(verdict is not None)
    if verdict is not None:
        label.setText(verdict[0])
        label.setToolTip("Checked against the response schema with jsonschema")
        label.setStyleSheet("font-weight: bold; " + (OK_STYLE if verdict[1] else ERROR_STYLE))


class ToolCallCard(QFrame):
    """One call and (once it came) its result; see the module doc."""

    rerun_requested = Signal(int, str)
    branch_clicked = Signal(int, int)

    def __init__(self, call: ToolCall, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.call = call
        self.message_id: int | None = None
        """The ``tool`` message holding the result (None: none stored yet)."""
        self.setObjectName("card_tool")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        lay = laid_out(self, QVBoxLayout, (12, 6, 12, 6), 3)
        head = QHBoxLayout()
        head.setSpacing(8)
        self.title = QLabel(f"\u2699 <b>{call.name or '?'}</b>")
        self.title.setObjectName("toolName")
        head.addWidget(self.title)
        self.branch = BranchSwitcher(self)
        self.branch.step_requested.connect(self._on_branch_step)
        head.addWidget(self.branch)
        self.info = ElidedLabel("waiting for the result\u2026", min_width=24)
        self.info.setObjectName("toolInfo")
        head.addWidget(self.info, 1)
        self.edit_button = card_button(self, "Edit result", self.start_edit)
        self.edit_button.setToolTip("Change this result and run the turn again from it, as a new branch")
        self.edit_button.setVisible(False)
        head.addWidget(self.edit_button)
        self.rerun_button = card_button(self, "Re-run", self._on_rerun)
        self.rerun_button.setToolTip("Send the edited result to the model: a new branch (the old one stays)")
        self.rerun_button.setVisible(False)
        head.addWidget(self.rerun_button)
        self.cancel_button = card_button(self, "Cancel", self.cancel_edit)
        self.cancel_button.setVisible(False)
        head.addWidget(self.cancel_button)
        lay.addLayout(head)
        pretty, why = pretty_arguments(call)
        self.arguments = selectable_label(pretty, name="toolArguments", text_format=Qt.TextFormat.PlainText, font=mono)
        lay.addWidget(self.arguments)
        self.arguments_error = QLabel(why or "")
        self.arguments_error.setObjectName("toolArgumentsError")
        self.arguments_error.setWordWrap(True)
        self.arguments_error.setStyleSheet(ERROR_STYLE)
        self.arguments_error.setVisible(why is not None)
        lay.addWidget(self.arguments_error)
        self.result = QPlainTextEdit(self)
        self.result.setObjectName("toolResult")
        self.result.setReadOnly(True)
        self.result.setFont(mono)
        self.result.setVisible(False)
        lay.addWidget(self.result)
        self.is_error = False
        self._shown = ""

    @property
    def result_text(self) -> str:
        """The result shown (or being edited)."""
        return self.result.toPlainText()

    def set_result(self, content: str, *, is_error: bool = False, source: str | None = None,
                   elapsed_s: float | None = None, server: str | None = None, approval: str | None = None,
                   message_id: int | None = None, branch: tuple[int, int] = (1, 1), edited: bool = False) -> None:  # fmt: skip
        """Show the call's result and where it came from."""
        self.is_error = is_error
        self._shown = content
        self.result.setPlainText(content)
        self.result.setVisible(True)
        self.result.setStyleSheet(ERROR_STYLE if is_error else "")
        lines = max(1, min(RESULT_LINES, content.count("\n") + 1 + len(content) // 90))
        self.result.setFixedHeight(self.result.fontMetrics().lineSpacing() * lines + 12)
        parts = ["error" if is_error else "result"]
        if edited:
            parts.append("edited by you")
        elif source == "stub":
            parts.append("stub")
        elif server:
            parts.append(f"MCP server {server}")
        if approval:
            parts.append(approval)
        if elapsed_s is not None:
            parts.append(f"{elapsed_s:.2f} s")
        self.info.setText(" \u00b7 ".join(parts))
        self.info.setStyleSheet(ERROR_STYLE if is_error else "")
        self.message_id = message_id
        self.branch.set_position(*branch)
        self.edit_button.setVisible(message_id is not None)

    def set_pending(self, why: str) -> None:
        """No result came (nobody answers the call, or the run stopped): say why."""
        self.info.setText(why)

    def start_edit(self) -> None:
        """Make the result editable (Re-run sends it as a new branch, Cancel goes back)."""
        self.result.setReadOnly(False)
        self.result.setStyleSheet("")
        self.result.setFixedHeight(self.result.fontMetrics().lineSpacing() * RESULT_LINES + 12)
        self.result.setFocus()
        self.edit_button.setVisible(False)
        self.rerun_button.setVisible(True)
        self.cancel_button.setVisible(True)

    def cancel_edit(self) -> None:
        """Leave editing; the result shown is the stored one again."""
        self._end_edit()
        self.result.setPlainText(self._shown)
        self.result.setStyleSheet(ERROR_STYLE if self.is_error else "")

    def _end_edit(self) -> None:
        self.result.setReadOnly(True)
        self.edit_button.setVisible(self.message_id is not None)
        self.rerun_button.setVisible(False)
        self.cancel_button.setVisible(False)

    def _on_rerun(self) -> None:
        if self.message_id is not None:
            text = self.result.toPlainText()
            self._end_edit()
            self.rerun_requested.emit(self.message_id, text)

    def _on_branch_step(self, step: int) -> None:
        if self.message_id is not None:
            self.branch_clicked.emit(self.message_id, step)
