"""The status bar's local-server indicator ("Serving on 127.0.0.1:8080 · 2 active"), there from
the start; the Server panel (:mod:`app.ui.widgets.server_panel`) is made when first shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLabel, QStatusBar

if TYPE_CHECKING:
    from app.ui.widgets.server_panel import ServerControl


class ServerIndicator(QLabel):
    """The status bar's "Serving on 127.0.0.1:8080 · 2 active" (hidden while stopped)."""

    def __init__(self, control: ServerControl, bar: QStatusBar) -> None:
        super().__init__(bar)
        self.control = control
        self.setToolTip("The local OpenAI-compatible server (View > Server)")
        bar.addPermanentWidget(self)
        control.state_changed.connect(self.refresh)
        control.request_seen.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args: object) -> None:
        """Show the address and the requests in flight now."""
        text = self.control.indicator()
        self.setText(text)
        self.setVisible(bool(text))
