"""What the Workbench needs of the window it was opened from (the main window), declared, so
that it never reaches into the window's insides and the two modules do not import each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from app.core.services import Services
    from app.ui.backend_manager import BackendManager


class WorkbenchHost(Protocol):
    """The main window as the Workbench sees it."""

    @property
    def services(self) -> Services:
        """The app's services."""
        ...

    @property
    def backend(self) -> BackendManager:
        """The chat's backend (its model is the Workbench's first column)."""
        ...

    @property
    def dialogs(self) -> dict[str, Any]:
        """The window's open dialogs and side windows by name (the Workbench keeps itself
        there as "workbench")."""
        ...

    @property
    def closed(self) -> SignalInstance:
        """Emitted when the window closed."""
        ...

    def open_conversation(self, conversation_id: str) -> None:
        """Show a saved conversation in the chat."""
        ...

    def refresh_sidebar(self, select: str | None = None) -> None:
        """List the conversations again (and select ``select``)."""
        ...

    def show_status(self, message: str, *, error: bool = False) -> None:
        """A message in the window's status bar."""
        ...

    def bring_to_front(self) -> None:
        """Raise and activate the window."""
        ...

    def close(self) -> bool:
        """Close the window (it may ask first)."""
        ...
