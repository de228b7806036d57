"""The main window's dialogs and side windows: API keys, settings (and a new endpoint), and the
adapter comparison. Each is made on first use and kept by name while it is open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal

from app.core.errors import AppError
from app.ui.controllers.base import SessionController

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.core.services import Services
    from app.core.types import ChatMessage
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession
    from app.ui.widgets.prompt_editor import PromptEditor


class DialogController(SessionController):
    """Opens the dialogs (never modal-blocking: ``open()``, not ``exec()``).

    ``dialogs`` is the window's registry of open dialogs and side windows by name ("keys",
    "settings", "compare", and others' such as "workbench"), shared with whoever opens them.

    Signals:
        status(str message, bool error), hint(str message): see :class:`Controller`.
        settings_changed(): the settings dialog saved new settings (the models were listed
            again; the window applies the appearance).
    """

    settings_changed = Signal()

    def __init__(self, services: Services, backend: BackendManager, session: ChatSession, editor: PromptEditor,
                 dialogs: dict[str, Any], parent: QWidget) -> None:
        super().__init__(services, backend, session, parent)
        self.editor = editor
        self.dialogs = dialogs

    def _dialog(self, name: str) -> Any:
        dlg = self.dialogs.get(name)
        if dlg is None:
            if name == "keys":
                from app.ui.widgets.keys_dialog import KeysDialog

                dlg = KeysDialog(self.backend, self.widget)
                dlg.finished.connect(lambda _r: self.backend.refresh_models())  # "needs key" goes away
            else:
                from app.ui.widgets.settings_dialog import SettingsDialog

                dlg = SettingsDialog(self.backend, self.widget)
                dlg.settings_changed.connect(self._on_settings_dialog_changed)
            dlg.finished.connect(lambda _r, n=name: self.dialogs.pop(n, None))
            self.dialogs[name] = dlg
        return dlg

    def show_keys(self) -> None:
        """Open the API keys dialog."""
        self._dialog("keys").open()

    def show_settings(self) -> None:
        """Open the settings dialog."""
        self._dialog("settings").open()

    def add_endpoint(self) -> None:
        """Open the settings dialog with a new endpoint row."""
        dlg = self._dialog("settings")
        dlg.open()
        if hasattr(dlg, "add_endpoint"):
            dlg.add_endpoint()

    def _on_settings_dialog_changed(self) -> None:
        self.backend.refresh_models()
        self.say("Settings saved.")
        self.settings_changed.emit()

    def show_compare(self) -> None:
        """Answer the draft (or the last user message) with the base model and with the active
        adapters, side by side in the comparison window."""
        try:
            from app.ui.widgets.compare_view import CompareView
        except ImportError:
            self.say("The comparison view is not available in this build.", error=True)
            return
        try:
            params = self.editor.params()
        except AppError as exc:
            self.say(exc.user_message(), error=True)
            return
        view = self.dialogs.get("compare")
        if view is None:
            view = CompareView(self.backend, self.widget)
            self.dialogs["compare"] = view
        view.show()
        view.raise_()
        try:
            tools = self.session.tool_config()
        except AppError as exc:
            self.say(f"Not compared: {exc.user_message()}", error=True)
            return
        view.start(self.compare_messages(), params, tools.apply)

    def compare_messages(self) -> list[ChatMessage]:
        """The conversation plus the draft; without a draft, up to the last user message."""
        from app.core.types import ChatMessage

        msgs = self.session.request_messages(self.editor.system_prompt())
        draft = self.editor.message()
        if draft.strip():
            return [*msgs, ChatMessage("user", draft)]
        while msgs and msgs[-1].role == "assistant":
            msgs.pop()
        return msgs
