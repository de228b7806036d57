"""Which conversation the main window shows: a new one, a saved one (with what its branch was
made with), a fork, the sidebar's renames and deletes, and exporting it as Markdown or JSON."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal

from app.core.errors import AppError
from app.ui.controllers.base import SessionController

if TYPE_CHECKING:
    from collections.abc import Callable

    from PySide6.QtWidgets import QWidget

    from app.core.exchange import ConversationState
    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession
    from app.ui.widgets.prompt_editor import PromptEditor

log = logging.getLogger(__name__)
APP_TITLE = "LLM Playground"
HISTORY_PENDING = ("Saving to history is pending (the history is busy in another program)... The answer is kept "
                   "and written as soon as it is free, or at the next start.")


class ConversationController(SessionController):
    """Opens conversations in the session and restores the editor and the model for them.

    Signals:
        status(str message, bool error), hint(str message): see :class:`Controller`.
        title_changed(str title): the window's title (the open conversation's).
    """

    title_changed = Signal(str)

    def __init__(self, services: Services, backend: BackendManager, session: ChatSession, editor: PromptEditor,
                 parent: QWidget) -> None:
        super().__init__(services, backend, session, parent)
        self.editor = editor

    def new_conversation(self) -> None:
        """Start an empty conversation (a running comparison goes on in its own window)."""
        if self.session.is_streaming():
            self.backend.stop()
        self.session.open(None)
        self.editor.set_message(self.session.new_draft)
        self.editor.message_edit.setFocus()

    def open_conversation(self, conversation_id: str) -> None:
        """Show a saved conversation with its draft, and bring back what its shown branch was
        made with: system prompt, parameters, model, endpoint and adapters."""
        if self.session.is_streaming():
            self.backend.stop()
        conv = self.session.open(conversation_id)
        if conv is None:
            return
        self.editor.set_message(conv.draft)
        self.apply_state(self.session.state())

    def apply_state(self, state: ConversationState | None) -> None:
        """Show ``state``'s system prompt and parameters and restore its model and adapters
        (the backend says when an adapter is missing or changed)."""
        if state is None:
            return
        if state.system_prompt is not None:
            self.editor.set_system_prompt(state.system_prompt)
        if state.params:
            try:
                from app.core.types import GenerationParams

                self.editor.set_params(GenerationParams.from_dict(state.params))
            except (TypeError, ValueError):
                log.debug("stored params not usable", exc_info=True)
        if state.model:
            self.backend.restore(state.model, state.endpoint, state.adapters)

    def fork_from(self, message_id: int) -> None:
        """Open a new conversation holding the path up to ``message_id``."""
        try:
            new_id = self.session.fork(message_id)
        except AppError as exc:  # e.g. the history is busy in another program
            self.say(f"Could not fork: {exc.user_message()}", error=True)
            return
        if new_id is not None:
            self._on_sidebar_conversation_forked(new_id)

    # -- export ---------------------------------------------------------------------------------
    def export_markdown(self) -> None:
        """Save the open conversation as Markdown."""
        self._export("Markdown (*.md)", ".md", lambda cid: self.services.history.export_markdown(cid))

    def export_json(self) -> None:
        """Save the open conversation as JSON."""
        import json

        self._export("JSON (*.json)", ".json",
                     lambda cid: json.dumps(self.services.history.export_json(cid), indent=2, ensure_ascii=False))

    def _export(self, filt: str, suffix: str, render: Callable[[str], str]) -> None:
        cid = self.session.conversation_id
        if cid is None:
            self.say("Nothing to export yet: send a message first.", error=True)
            return
        self.session.save_partials()
        from PySide6.QtWidgets import QFileDialog  # made on first use, not at start-up

        path, _ = QFileDialog.getSaveFileName(self.widget, "Export conversation", f"conversation{suffix}", filt)
        if not path:
            return
        if not path.endswith(suffix):
            path += suffix
        try:
            Path(path).write_text(render(cid), encoding="utf-8")
        except OSError as exc:
            self.say(f"Could not write {path}: {exc.strerror}. Pick another folder.", error=True)
            return
        self.say(f"Exported to {path}.")

    # -- slots ----------------------------------------------------------------------------------
    def _on_session_conversation_changed(self, conversation_id: str | None) -> None:
        self.services.settings.last_conversation_id = conversation_id
        self.save_settings()
        title = APP_TITLE
        if conversation_id:
            conv = self.services.history.get_conversation(conversation_id)
            if conv is not None:
                title = f"{conv.title} — {APP_TITLE}"
        self.title_changed.emit(title)

    def _on_session_history_pending(self, pending: bool) -> None:
        self.say(HISTORY_PENDING if pending else "Saved to history: the other program released it.")

    def _on_sidebar_conversation_forked(self, conversation_id: str) -> None:
        self.open_conversation(conversation_id)
        conv = self.services.history.get_conversation(conversation_id)
        if conv is not None:
            self.hint.emit(f"Forked: \u201c{conv.title}\u201d holds the messages up to the one you chose.")

    def _on_sidebar_conversation_renamed(self, conversation_id: str, title: str) -> None:
        if conversation_id == self.session.conversation_id:
            self.title_changed.emit(f"{title} — {APP_TITLE}")

    def _on_sidebar_conversation_deleted(self, conversation_id: str) -> None:
        if self.session.is_streaming(conversation_id):  # no answer keeps running (and costing) for nothing
            self.backend.stop()
        if conversation_id == self.session.conversation_id:
            self.session.open(None)
