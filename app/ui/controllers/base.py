"""What every main-window controller shares: the status line it talks through and saving the
settings; :class:`SessionController` adds the backend and the chat session most of them drive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession


class Controller(QObject):
    """The base of the window's controllers (see :mod:`app.ui.controllers`).

    Signals:
        status(str message, bool error): a message for the status bar (errors in the error
            colour).
        hint(str message): a message about what was just done; it goes at the next action.
    """

    status = Signal(str, bool)
    hint = Signal(str)

    def __init__(self, services: Services, parent: QWidget) -> None:
        super().__init__(parent)
        self.services = services
        self.widget = parent
        """The parent of the dialogs this controller opens (the window)."""

    def say(self, message: str, *, error: bool = False) -> None:
        """Emit ``message`` as :attr:`status`."""
        self.status.emit(message, error)

    def save_settings(self) -> None:
        """Write the settings; a failure is said in the status bar (nothing else is lost)."""
        try:
            self.services.save_settings()
        except OSError as exc:
            self.say(f"Settings could not be saved: {exc}", error=True)


class SessionController(Controller):
    """A controller of the chat: it drives the window's ``backend`` and its ``session``."""

    def __init__(self, services: Services, backend: BackendManager, session: ChatSession, parent: QWidget) -> None:
        super().__init__(services, parent)
        self.backend = backend
        self.session = session
