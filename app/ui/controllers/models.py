"""The model's life in the main window: chosen (picker, Open model file), loading (with its
progress and ETA), loaded or failed, and the backend's notices and errors in the status bar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal

from app.core.eta import format_eta
from app.ui.controllers.base import SessionController

if TYPE_CHECKING:
    from PySide6.QtWidgets import QProgressBar, QWidget

    from app.core.events import Progress
    from app.core.run_events import RunEvent
    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession
    from app.ui.widgets.model_picker import ModelPicker


class ModelController(SessionController):
    """Keeps the picker and the load progress bar in step with the backend's model.

    Signals:
        status(str message, bool error), hint(str message): see :class:`Controller`.
        model_switched(str model_id): the next answer uses ``model_id`` (the window suggests
            its temperature and counts the request again).
    """

    model_switched = Signal(str)

    def __init__(self, services: Services, backend: BackendManager, session: ChatSession, picker: ModelPicker,
                 progress: QProgressBar, parent: QWidget) -> None:
        super().__init__(services, backend, session, parent)
        self.picker = picker
        self.progress = progress
        self.loading: tuple[str, Progress] | None = None
        """The model being loaded and its last progress (None: no load running)."""

    def open_model_file(self) -> None:
        """Pick a .gguf file or a model folder (a file inside it) and switch to it."""
        from PySide6.QtWidgets import QFileDialog  # made on first use, not at start-up

        path, _ = QFileDialog.getOpenFileName(self.widget, "Open model file or folder", str(Path.home()),
                                              "Models (*.gguf *.safetensors config.json);;All files (*)")
        if path:
            self.open_model_path(Path(path))

    def open_model_path(self, path: Path) -> None:
        """Switch to the model at ``path`` (a .gguf file, or a file in a model folder) and
        remember it among the recent local models."""
        target = path if path.suffix == ".gguf" else path.parent
        recent = self.services.settings.recent_local_models
        if str(target) not in recent:
            recent.insert(0, str(target))
            del recent[10:]
            self.save_settings()
        self.backend.set_model(f"local:{target}")

    def waiting_text(self, model_id: str) -> str:
        """The status while a sent message waits for ``model_id`` to load."""
        progress = self.loading[1] if self.loading and self.loading[0] == model_id else None
        pct = f" ({progress.fraction * 100:.0f}%)" if progress is not None and progress.fraction is not None else ""
        return f"Waiting for {model_id} to load{pct}… The message is sent to it as soon as it is ready."

    def reset(self) -> None:
        """After an unexpected error: no progress bar stays up."""
        self.progress.setVisible(False)

    # -- slots ----------------------------------------------------------------------------------
    def _on_picker_model_selected(self, model_id: str, endpoint: str | None) -> None:
        self.backend.set_model(model_id, endpoint=endpoint)

    def _on_chat_sent(self, _gen_id: str) -> None:
        model = self.backend.current_model()
        if self.backend.selection.loading == model:  # the answer waits for the load
            self.say(self.waiting_text(model))

    def _on_backend_model_changed(self, model_id: str) -> None:
        settings = self.services.settings  # the next start reopens on it (saved with the settings)
        settings.last_model, settings.last_endpoint = model_id, self.backend.current_endpoint()
        self.picker.set_current(model_id, self.backend.current_endpoint())
        self.say(f"Model: {model_id}. The next answer uses it.")
        self.model_switched.emit(model_id)

    def _on_backend_model_loading(self, model_id: str, progress: Progress) -> None:
        self.loading = (model_id, progress)
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
        if self.session.is_streaming() and model_id == self.backend.current_model():  # a message waits for it
            self.say(self.waiting_text(model_id) + eta)
            return
        pct = f" {fraction * 100:.0f}%" if fraction is not None else ""
        detail = f" ({progress.message})" if progress.message else ""
        self.say(f"Loading {model_id}: {phase}{pct}{eta}{detail}…")

    def _on_backend_model_loaded(self, model_id: str) -> None:
        self.loading = None
        self.progress.setVisible(False)
        self.picker.mark_loaded(model_id)
        self.say(f"{model_id} is ready.")

    def _on_backend_model_load_failed(self, model_id: str, message: str) -> None:
        self.loading = None
        self.progress.setVisible(False)
        self.picker.set_state(model_id, None)
        self.picker.set_current(self.backend.current_model(), self.backend.current_endpoint())
        current = self.backend.current_model()
        still = f" The previous model ({current}) is still active." if current != model_id else ""
        self.say(f"Could not load {model_id}: {message}{still}", error=True)

    def _on_backend_run_event(self, event: RunEvent) -> None:
        """A run's retry countdown (about once a second), notice or failure, in the status bar."""
        from app.core.run_events import RunFailed, RunNotice, RunRetrying

        if isinstance(event, RunRetrying):  # a failed request is tried again
            self.say(event.message + "…")
        elif isinstance(event, RunNotice):
            self.say(event.message)
        elif isinstance(event, RunFailed):
            self.say(event.message, error=True)

    def _on_backend_state_restored(self, notes: list[str]) -> None:
        if notes:
            self.say(" ".join(notes), error=True)

    def _on_backend_adapter_failed(self, message: str) -> None:
        self.say(message, error=True)

    def _on_backend_error_occurred(self, message: str) -> None:
        self.say(message, error=True)
