"""Main window actions that open dialogs or files: model files, keys/settings dialogs, the
adapter comparison, exports, presets and the live request counter (a mixin of MainWindow)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtWidgets import QFileDialog, QWidget

from app.core.errors import AppError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from app.core.services import Services
    from app.core.types import ChatMessage
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession
    from app.ui.widgets.prompt_editor import PromptEditor


class WindowActions:
    """Dialog, file and counting actions; mixed into :class:`app.ui.main_window.MainWindow`."""

    services: Services
    backend: BackendManager
    session: ChatSession
    editor: PromptEditor
    _dialogs: dict[str, Any]

    def show_status(self, message: str, *, error: bool = False) -> None:
        """Provided by the window."""
        raise NotImplementedError

    def _as_widget(self) -> QWidget:
        """The window as a dialog parent."""
        return cast(QWidget, self)

    def open_model_file(self) -> None:
        """Pick a .gguf file or a model folder (a file inside it) and switch to it."""
        path, _ = QFileDialog.getOpenFileName(self._as_widget(), "Open model file or folder", str(Path.home()),
                                              "Models (*.gguf *.safetensors config.json);;All files (*)")
        if not path:
            return
        p = Path(path)
        target = p if p.suffix == ".gguf" else p.parent
        model_id = f"local:{target}"
        recent = self.services.settings.recent_local_models
        if str(target) not in recent:
            recent.insert(0, str(target))
            del recent[10:]
            self._save_settings()
        self.backend.set_model(model_id)

    # -- dialogs --------------------------------------------------------------------------------
    def _dialog(self, name: str) -> Any:
        dlg = self._dialogs.get(name)
        if dlg is None:
            if name == "keys":
                from app.ui.widgets.keys_dialog import KeysDialog

                dlg = KeysDialog(self.backend, self._as_widget())
                dlg.finished.connect(lambda _r: self.backend.refresh_models())  # "needs key" goes away
            else:
                from app.ui.widgets.settings_dialog import SettingsDialog

                dlg = SettingsDialog(self.backend, self._as_widget())
                dlg.settings_changed.connect(self._on_settings_changed)
            dlg.finished.connect(lambda _r, n=name: self._dialogs.pop(n, None))
            self._dialogs[name] = dlg
        return dlg

    def show_keys(self) -> None:
        """Open the API keys dialog (non-modal-blocking: open(), never exec())."""
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

    def _on_settings_changed(self) -> None:
        self.backend.refresh_models()
        self.show_status("Settings saved.")

    def show_compare(self) -> None:
        """Answer the draft (or the last user message) with the base model and with the active
        adapters, side by side in the comparison window."""
        try:
            from app.ui.widgets.compare_view import CompareView
        except ImportError:
            self.show_status("The comparison view is not available in this build.", error=True)
            return
        try:
            params = self.editor.params()
        except AppError as exc:
            self.show_status(exc.user_message(), error=True)
            return
        view = self._dialogs.get("compare")
        if view is None:
            view = CompareView(self.backend, self._as_widget())
            self._dialogs["compare"] = view
        view.show()
        view.raise_()
        view.start(self.compare_messages(), params)

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
            self.show_status("Nothing to export yet: send a message first.", error=True)
            return
        self.session.save_partials()
        path, _ = QFileDialog.getSaveFileName(self._as_widget(), "Export conversation", f"conversation{suffix}", filt)
        if not path:
            return
        if not path.endswith(suffix):
            path += suffix
        try:
            Path(path).write_text(render(cid), encoding="utf-8")
        except OSError as exc:
            self.show_status(f"Could not write {path}: {exc.strerror}. Pick another folder.", error=True)
            return
        self.show_status(f"Exported to {path}.")

    # -- misc -----------------------------------------------------------------------------------
    def _count_request(self, system_prompt: str, draft: str, max_out: int) -> str:
        """Token count and cost estimate of the whole next request (runs on a worker thread)."""
        from app.core.provider import as_endpoints
        from app.core.types import ChatMessage, ModelRef

        model = self.backend.current_model()
        ref = ModelRef.parse(model)
        msgs = self.session.request_messages(system_prompt)
        if draft.strip():
            msgs.append(ChatMessage("user", draft))
        from app.core.figures import plural

        count = None
        try:
            provider = self.services.registry.get(ref.provider)
            server = as_endpoints(provider) if ref.caps.server_token_count else None
            if server is not None:  # a server that can count with its own tokenizer and template
                count = server.count_request(self.backend.current_endpoint(), ref.name, msgs)
            if count is None:
                count = provider.count_tokens(ref.name, msgs)
        except Exception:  # e.g. a provider that cannot count now: estimate
            from app.core.tokens import count_chat

            count = count_chat(ref.name, msgs)
        text = f"{'' if count.exact else '~'}{plural(count.tokens, 'token')}"
        endpoint, engine = self.backend.current_endpoint(), self.services.engine
        cost_in = engine.estimate_cost(ref, endpoint, count.tokens, 0)
        if cost_in is None:  # unknown price: tokens only
            return text
        cost_out = engine.estimate_cost(ref, endpoint, 0, max_out) if max_out else None
        if not cost_in and not cost_out:
            return text + "  ·  free"
        text += f"  ·  ≈ ${cost_in:.5f} in"
        if cost_out is not None:
            text += f" + ≤ ${cost_out:.5f} out"
        return text

    def _on_preset_saved(self, name: str, params: Mapping[str, object], system_prompt: str) -> None:
        from app.core.settings import Preset

        presets = [p for p in self.services.settings.presets if p.name != name]
        presets.append(Preset(name=name, params=dict(params), system_prompt=system_prompt))
        self.services.settings.presets = presets
        self._save_settings()

    def _on_preset_deleted(self, name: str) -> None:
        self.services.settings.presets = [p for p in self.services.settings.presets if p.name != name]
        self._save_settings()

    def _save_settings(self) -> None:
        try:
            self.services.save_settings()
        except OSError as exc:
            self.show_status(f"Settings could not be saved: {exc}", error=True)
