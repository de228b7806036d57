"""The main window's docks: the history sidebar (left), the usage dashboard, the LoRA
adapters panel, the Tools panel and the local server's panel (right, tabbed). Each is optional
at import time (a build without it still starts). A new panel gets its dock here and its
controller in the window's ``_wire``.

The LoRA adapters, Tools and Server panels are tabs behind Usage at start: their docks are
:class:`LazyDock` s, whose panel is imported and made the first time the dock is shown (its
tab raised, View ticked, a saved layout restored) or :meth:`LazyDock.content` is asked."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QWidget

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.controllers.server import ServerController
    from app.ui.widgets.dashboard import DashboardDock
    from app.ui.widgets.history_sidebar import HistorySidebar

log = logging.getLogger(__name__)
SIDEBAR_MIN_WIDTH = 170
D = TypeVar("D", bound=QDockWidget)


class LazyDock(QDockWidget):
    """A dock whose widget ``make()`` makes the first time the dock is shown, or when
    :meth:`content` is asked; each of :attr:`on_built` is then called with it."""

    def __init__(self, title: str, parent: QWidget, make: Callable[[], QWidget]) -> None:
        super().__init__(title, parent)
        self._make: Callable[[], QWidget] | None = make
        self.on_built: list[Callable[[QWidget], object]] = []
        self.visibilityChanged.connect(self._on_visibility_changed)

    @property
    def built(self) -> bool:
        """True once the widget is made."""
        return self._make is None

    def content(self) -> QWidget:
        """The dock's widget, made now if it was not yet (a ``make()`` that raised is tried
        again next time)."""
        make, self._make = self._make, None
        if make is not None:
            try:
                widget = make()
            except BaseException:
                self._make = make
                raise
            self.setWidget(widget)
            for call in self.on_built:
                call(widget)
        return self.widget()

    def _on_visibility_changed(self, visible: bool) -> None:
        if visible:
            self.content()


@dataclass
class Docks:
    """The panels made (None: not available in this build); the LoRA adapters, Tools and
    Server docks make their panels when first shown."""

    sidebar: HistorySidebar | None = None
    dashboard: DashboardDock | None = None
    lora_dock: LazyDock | None = None
    tools_dock: LazyDock | None = None
    server_dock: LazyDock | None = None


def add_dock(window: QMainWindow, view_menu: QMenu, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    """``widget`` in a movable, closable dock of ``window``, shown or hidden from View."""
    dock = QDockWidget(title, window)
    dock.setWidget(widget)
    return _place(window, view_menu, dock, area)


def add_lazy_dock(window: QMainWindow, view_menu: QMenu, title: str, make: Callable[[], QWidget],
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> LazyDock:  # fmt: skip
    """Like :func:`add_dock`, the widget made by ``make()`` when the dock is first shown."""
    return _place(window, view_menu, LazyDock(title, window, make), area)


def _place(window: QMainWindow, view_menu: QMenu, dock: D, area: Qt.DockWidgetArea) -> D:
    dock.setObjectName(dock.windowTitle().replace(" ", "") + "Dock")
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    window.addDockWidget(area, dock)
    view_menu.addAction(dock.toggleViewAction())
    return dock


def _behind(window: QMainWindow, dashboard: QDockWidget | None, dock: QDockWidget) -> None:
    """``dock`` a tab beside Usage, which stays in front."""
    if dashboard is not None:
        window.tabifyDockWidget(dashboard, dock)
        dashboard.raise_()


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
    if find_spec("app.ui.widgets.lora_panel") is None:
        log.warning("LoRA panel unavailable")
    else:
        def make_lora_panel() -> QWidget:
            from app.ui.widgets.lora_panel import LoraPanel

            return LoraPanel(backend, window)

        docks.lora_dock = add_lazy_dock(window, view_menu, "LoRA adapters", make_lora_panel)
        if docks.dashboard is not None:
            window.tabifyDockWidget(docks.lora_dock, docks.dashboard)
            docks.dashboard.raise_()
    if find_spec("app.ui.widgets.tools_panel") is None:
        log.warning("Tools panel unavailable")
    else:
        def make_tools_panel() -> QWidget:
            from app.ui.widgets.tools_panel import ToolsPanel

            return ToolsPanel(window)

        docks.tools_dock = add_lazy_dock(window, view_menu, "Tools", make_tools_panel)
        _behind(window, docks.dashboard, docks.tools_dock)
    if server is not None:  # the local server's panel, a tab beside Usage (behind it)
        def make_server_panel() -> QWidget:
            from app.ui.widgets.server_panel import ServerPanel

            return ServerPanel(server, window)

        docks.server_dock = add_lazy_dock(window, view_menu, "Server", make_server_panel)
        _behind(window, docks.dashboard, docks.server_dock)
    if docks.dashboard is not None:
        _fit_tab_titles(docks.dashboard, [d for d in (docks.lora_dock, docks.tools_dock, docks.server_dock) if d])
    return docks


TAB_PADDING = 26
"""A dock tab's width beyond its title's text (margins and frame, Fusion style)."""


def _fit_tab_titles(front: QDockWidget, behind: list[LazyDock]) -> None:
    """Make the dock area wide enough for every tab's title in full ("LoRA adapters", "Usage",
    "Tools", "Server"): the panels behind Usage are made only when shown, so their own minimum
    widths do not widen the area at start; measured in the font, not fixed pixels."""
    metrics = front.fontMetrics()
    need = sum(metrics.horizontalAdvance(d.windowTitle()) + TAB_PADDING for d in (front, *behind))
    widget = front.widget()
    if widget is not None and widget.minimumWidth() < need:
        widget.setMinimumWidth(need)
