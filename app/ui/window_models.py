"""Main window slots for the model's life: chosen, loading (with its progress and ETA),
loaded, failed, busy, and the backend's notices and errors in the status bar (a mixin of
MainWindow, connected by name: see app/ui/wiring.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.eta import format_eta
from app.providers.bundled import default_temperature

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QProgressBar

    from app.core.events import Progress
    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession
    from app.ui.widgets.model_picker import ModelPicker
    from app.ui.widgets.prompt_editor import PromptEditor


class WindowModels:
    """The model and status slots of :class:`app.ui.main_window.MainWindow`."""

    services: Services
    backend: BackendManager
    session: ChatSession
    editor: PromptEditor
    picker: ModelPicker
    progress: QProgressBar
    stop_action: QAction
    regen_action: QAction
    _loading: tuple[str, Progress] | None

    def show_status(self, message: str, *, error: bool = False) -> None:
        """Provided by the window."""
        raise NotImplementedError

    def _on_model_selected(self, model_id: str, endpoint: str | None) -> None:
        self.backend.set_model(model_id, endpoint=endpoint)

    def _on_backend_model_changed(self, model_id: str) -> None:
        settings = self.services.settings  # the next start reopens on it (saved with the settings)
        settings.last_model, settings.last_endpoint = model_id, self.backend.current_endpoint()
        self.picker.set_current(model_id, self.backend.current_endpoint())
        self.editor.suggest_temperature(default_temperature(model_id))
        self.show_status(f"Model: {model_id}. The next answer uses it.")
        self.editor.schedule_count()

    def _on_backend_model_loading(self, model_id: str, progress: Progress) -> None:
        self._loading = (model_id, progress)
        self.picker.set_loading(model_id, progress)
        self.progress.setVisible(True)
        phase, fraction = progress.phase, progress.fraction
        left = progress.eta_s
        eta = f" · {format_eta(left)}" if left is not None and (fraction or 0.0) < 1.0 else ""
        if fraction is None:
            self.progress.setRange(0, 0)
            self.progress.setFormat(phase)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(min(1.0, max(0.0, fraction)) * 1000))
            self.progress.setFormat(f"{phase} {fraction * 100:.0f}%")
        if self._waiting_for_load(model_id):
            self.show_status(self._waiting_text(model_id) + eta)
            return
        pct = f" {fraction * 100:.0f}%" if fraction is not None else ""
        detail = f" ({progress.message})" if progress.message else ""
        self.show_status(f"Loading {model_id}: {phase}{pct}{eta}{detail}…")

    def _waiting_for_load(self, model_id: str) -> bool:
        """True while a sent message waits for ``model_id`` (the current model) to load."""
        return self.session.is_streaming() and model_id == self.backend.current_model()

    def _waiting_text(self, model_id: str) -> str:
        progress = self._loading[1] if self._loading and self._loading[0] == model_id else None
        pct = f" ({progress.fraction * 100:.0f}%)" if progress is not None and progress.fraction is not None else ""
        return f"Waiting for {model_id} to load{pct}… The message is sent to it as soon as it is ready."

    def _on_backend_model_loaded(self, model_id: str) -> None:
        self._loading = None
        self.progress.setVisible(False)
        self.picker.mark_loaded(model_id)
        self.show_status(f"{model_id} is ready.")

    def _on_backend_generation_retrying(self, _run_id: str, _attempt: int, _delay_s: float, message: str) -> None:
        """A failed request is tried again: the countdown ticks about once a second."""
        self.show_status(message + "…")

    def _on_backend_model_load_failed(self, model_id: str, message: str) -> None:
        self._loading = None
        self.progress.setVisible(False)
        self.picker.set_state(model_id, None)
        self.picker.set_current(self.backend.current_model(), self.backend.current_endpoint())
        current = self.backend.current_model()
        still = f" The previous model ({current}) is still active." if current != model_id else ""
        self.show_status(f"Could not load {model_id}: {message}{still}", error=True)

    def _on_backend_notice_received(self, _run_id: str, message: str) -> None:
        self.show_status(message)

    def _on_backend_generation_failed(self, _run_id: str, message: str, _partial: str) -> None:
        self.show_status(message, error=True)

    def _on_backend_adapter_failed(self, message: str) -> None:
        self.show_status(message, error=True)

    def _on_backend_error_occurred(self, message: str) -> None:
        self.show_status(message, error=True)

    def _on_backend_busy_changed(self, busy: bool) -> None:
        self.editor.set_busy(busy)
        self.stop_action.setEnabled(busy)
        self.regen_action.setEnabled(not busy)
        self.picker.setEnabled(True)
        if not busy:
            self.editor.schedule_count()
