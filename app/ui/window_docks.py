"""The main window's docks: the history sidebar (left), the usage dashboard and the LoRA
adapters panel and the local server's panel (right, tabbed). Each is optional at import time (a build without it still
starts). A new panel (e.g. Tools) gets its dock here and its controller in the window's
``_wire``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QWidget

if TYPE_CHECKING:
    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.controllers.server import ServerController
    from app.ui.widgets.dashboard import DashboardDock
    from app.ui.widgets.history_sidebar import HistorySidebar
    from app.ui.widgets.lora_panel import LoraPanel
    from app.ui.widgets.server_panel import ServerPanel
    from app.ui.widgets.tools_panel import ToolsPanel

log = logging.getLogger(__name__)
SIDEBAR_MIN_WIDTH = 170


@dataclass
class Docks:
    """The panels made (None: not available in this build)."""

    sidebar: HistorySidebar | None = None
    dashboard: DashboardDock | None = None
    lora_panel: LoraPanel | None = None
    tools_panel: ToolsPanel | None = None
    server_panel: ServerPanel | None = None


def add_dock(window: QMainWindow, view_menu: QMenu, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    """``widget`` in a movable, closable dock of ``window``, shown or hidden from View."""
    dock = QDockWidget(title, window)
    dock.setObjectName(title.replace(" ", "") + "Dock")
    dock.setWidget(widget)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    window.addDockWidget(area, dock)
    view_menu.addAction(dock.toggleViewAction())
    return dock


def build_docks(window: QMainWindow, view_menu: QMenu, services: Services, backend: BackendManager,
                server: ServerController | None = None) -> Docks:
    """Make the docks of ``window`` (each listed in ``view_menu``; the Server panel with ``server``)."""
    docks = Docks()
    try:
        from app.ui.widgets.history_sidebar import HistorySidebar

        docks.sidebar = HistorySidebar(services.history, window)
        docks.sidebar.setMinimumWidth(SIDEBAR_MIN_WIDTH)  # room for the editor and the Usage dock at 1024 px
        add_dock(window, view_menu, "History", docks.sidebar, Qt.DockWidgetArea.LeftDockWidgetArea)
    except ImportError as exc:
        log.warning("history sidebar unavailable: %s", exc)
    try:
        from app.ui.widgets.dashboard import DashboardDock

        docks.dashboard = DashboardDock(backend, window)
        docks.dashboard.setObjectName("dashboardDock")
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, docks.dashboard)
        view_menu.addAction(docks.dashboard.toggleViewAction())
    except ImportError as exc:
        log.warning("dashboard unavailable: %s", exc)
    try:
        from app.ui.widgets.lora_panel import LoraPanel

        docks.lora_panel = LoraPanel(backend, window)
        dock = add_dock(window, view_menu, "LoRA adapters", docks.lora_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        if docks.dashboard is not None:
            window.tabifyDockWidget(dock, docks.dashboard)
            docks.dashboard.raise_()
    except ImportError as exc:
        log.warning("LoRA panel unavailable: %s", exc)
    try:
        from app.ui.widgets.tools_panel import ToolsPanel

        docks.tools_panel = ToolsPanel(window)
        tools_dock = add_dock(window, view_menu, "Tools", docks.tools_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        if docks.dashboard is not None:  # a tab beside Usage and LoRA adapters
            window.tabifyDockWidget(docks.dashboard, tools_dock)
            docks.dashboard.raise_()
    except ImportError as exc:
        log.warning("Tools panel unavailable: %s", exc)
    if server is not None:  # the local server's panel, a tab beside Usage (behind it)
        from app.ui.widgets.server_panel import ServerPanel

        docks.server_panel = ServerPanel(server, window)
        dock = add_dock(window, view_menu, "Server", docks.server_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        if docks.dashboard is not None:
            window.tabifyDockWidget(docks.dashboard, dock)
            docks.dashboard.raise_()
    return docks
