"""Talking in the open conversation: send, stop, regenerate, edit a message into a new branch,
switch branches, branch from a token, show token probabilities, and the editor's presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal

from app.core.errors import AppError
from app.ui.controllers.base import SessionController

if TYPE_CHECKING:
    from collections.abc import Mapping

    from PySide6.QtWidgets import QWidget

    from app.core.services import Services
    from app.core.types import GenerationParams
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession
    from app.ui.widgets.prompt_editor import PromptEditor
    from app.ui.widgets.transcript import TranscriptView

BUSY = "Stop the answer first (Esc or Stop), then {}."


class ChatController(SessionController):
    """Between the prompt editor, the transcript and the session.

    Signals:
        status(str message, bool error), hint(str message): see :class:`Controller`.
        sent(str gen_id): a message was sent; its answer is ``gen_id`` (it may wait for the
            model to load).
    """

    sent = Signal(str)

    def __init__(self, services: Services, backend: BackendManager, session: ChatSession, editor: PromptEditor,
                 transcript: TranscriptView, parent: QWidget) -> None:
        super().__init__(services, backend, session, parent)
        self.editor = editor
        self.transcript = transcript

    def _params(self) -> GenerationParams | None:
        """The editor's parameters, or None after saying what is wrong with them."""
        try:
            return self.editor.params()
        except AppError as exc:
            self.say(exc.user_message(), error=True)
            return None

    def send(self) -> str | None:
        """Send the editor's message; return the generation id (None when nothing was sent)."""
        text = self.editor.message()
        if not text.strip() or self.backend.is_busy():
            return None
        params = self._params()
        if params is None or not self._tools_ok():
            return None
        gen_id = self.session.send(text, params, self.editor.system_prompt())
        self.editor.set_message("")  # only now: when saving the message fails, the text stays
        if gen_id is not None:
            self.sent.emit(gen_id)
        return gen_id

    def _tools_ok(self) -> bool:
        """True when the Tools panel's functions and schema are valid (else it says why:
        nothing is sent, the typed text stays)."""
        try:
            self.session.tool_config()
        except AppError as exc:
            self.say(f"Not sent: {exc.user_message()}", error=True)
            return False
        return True

    def rerun_tool_result(self, message_id: int, content: str) -> str | None:
        """Run the turn again from the tool result ``message_id`` with ``content`` instead: a
        new branch (the old one stays)."""
        if self.backend.is_busy():
            self.say(BUSY.format("re-run from a tool result"), error=True)
            return None
        params = self._params()
        if params is None or not self._tools_ok():
            return None
        gen_id = self.session.rerun_tool_result(message_id, content, params, self.editor.system_prompt())
        if gen_id is not None:
            self.say("Re-running from the edited result: a new branch (‹ › on the result switches back).")
        return gen_id

    def stop(self) -> None:
        """Stop the running answer (the partial text is kept)."""
        self.backend.stop()

    def regenerate(self) -> str | None:
        """Answer the last user message again."""
        return self.regenerate_message(None)

    def regenerate_message(self, message_id: int | None) -> str | None:
        """A new answer beside the answer ``message_id`` (None: the last one)."""
        params = self._params()
        if params is None:
            return None
        return self.session.regenerate(params, self.editor.system_prompt(), message_id=message_id)

    def branch_from_token(self, message_id: int, index: int, text: str) -> str | None:
        """A sibling answer that says ``text`` instead of token ``index`` and goes on from there."""
        if self.backend.is_busy():
            self.say(BUSY.format("branch from a token"), error=True)
            return None
        try:
            gen_id = self.session.branch_from_token(message_id, index, text)
        except AppError as exc:
            self.say(exc.user_message(), error=True)
            return None
        if gen_id is not None:
            self.say("Branching: a new answer continues from the token you chose (‹ › switches back).")
        return gen_id

    def edit_message(self, message_id: int) -> None:
        """Put a user message in the editor; sending it makes a new branch beside the old one."""
        if self.backend.is_busy():  # the Edit buttons stay clickable while an answer streams
            self.say(BUSY.format("edit the message"), error=True)
            return
        typed = self.editor.message()
        text = self.session.edit(message_id)
        if text is None:
            return
        note = ""
        if typed.strip() and typed != text:  # replaced undoably: what was typed is never lost
            cursor = self.editor.message_edit.textCursor()
            cursor.select(cursor.SelectionType.Document)
            cursor.insertText(text)
            self.editor.message_edit.setTextCursor(cursor)
            self.editor.message_edit.setFocus()
            note = " Ctrl+Z brings back what you had typed."
        else:
            self.editor.set_message(text)
        self.hint.emit("Edit the message and send it: a new branch is made, the old one stays "
                       "(\u2039 \u203a on the message switches back)." + note)

    def switch_branch(self, message_id: int, step: int) -> None:
        """Show another version of a message (``‹ k/n ›``) and the branch below it."""
        if not self.session.switch_branch(message_id, step):
            self.say(BUSY.format("switch branches"), error=True)

    def set_probabilities(self, on: bool, *, save: bool = True) -> None:
        """View > Show probabilities: answers ask for their tokens' probabilities (K alternatives,
        a setting) and show them; off: Markdown, and requests do not ask."""
        settings = self.services.settings
        self.session.lens_k = settings.probabilities_top_k if on else None
        self.transcript.set_probabilities(on)
        if save and settings.show_probabilities != on:
            settings.show_probabilities = on
            self.save_settings()

    def _on_editor_preset_saved(self, name: str, params: Mapping[str, object], system_prompt: str) -> None:
        from app.core.settings import Preset

        presets = [p for p in self.services.settings.presets if p.name != name]
        presets.append(Preset(name=name, params=dict(params), system_prompt=system_prompt))
        self.services.settings.presets = presets
        self.save_settings()

    def _on_editor_preset_deleted(self, name: str) -> None:
        self.services.settings.presets = [p for p in self.services.settings.presets if p.name != name]
        self.save_settings()

    def _on_editor_draft_changed(self) -> None:
        self.session.note_draft(self.editor.message())
