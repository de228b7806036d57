"""app/ui/window_docks.py: the main window's panels as docks, each listed in View."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QWidget

from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.window_docks import SIDEBAR_MIN_WIDTH, add_dock, add_lazy_dock, build_docks


def test_the_docks_are_made_placed_and_listed_in_view(qloop: Any, services: Services) -> None:
    window = QMainWindow()
    backend = BackendManager(services, window, model_id="mock:echo")
    view = window.menuBar().addMenu("&View")
    try:
        docks = build_docks(window, view, services, backend)
        assert docks.sidebar is not None and docks.dashboard is not None and docks.lora_dock is not None
        assert docks.sidebar.minimumWidth() == SIDEBAR_MIN_WIDTH
        history = docks.sidebar.parentWidget()
        assert window.dockWidgetArea(history) == Qt.DockWidgetArea.LeftDockWidgetArea
        lora = docks.lora_dock
        assert not lora.built  # a tab behind Usage: made when first shown
        tools = docks.tools_dock
        assert tools is not None and docks.server_dock is None  # no Server panel without its controller
        assert set(window.tabifiedDockWidgets(lora)) == {docks.dashboard, tools}  # one tab group at the right
        assert [a.text() for a in view.actions()] == ["History", "Usage", "LoRA adapters", "Tools"]
        assert tools.objectName() == "ToolsDock" and not tools.built  # made when first shown
    finally:
        qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 10))
        window.deleteLater()


def test_a_lazy_dock_makes_its_widget_when_its_tab_is_raised_once(qapp: Any) -> None:
    window = QMainWindow()
    view = window.menuBar().addMenu("&View")
    made: list[QWidget] = []
    seen: list[QWidget] = []

    def make() -> QWidget:
        made.append(QLabel("panel"))
        return made[-1]

    front = add_dock(window, view, "Front", QLabel("front"), Qt.DockWidgetArea.RightDockWidgetArea)
    lazy = add_lazy_dock(window, view, "Lazy", make)
    lazy.on_built.append(seen.append)
    window.tabifyDockWidget(front, lazy)
    front.raise_()
    window.show()
    qapp.processEvents()
    assert made == [] and not lazy.built and lazy.widget() is None
    lazy.raise_()  # the user picks its tab
    qapp.processEvents()
    assert lazy.built and made == seen == [lazy.widget()] and lazy.widget().isVisible()
    front.raise_()
    lazy.raise_()
    assert lazy.content() is made[0] and len(made) == 1  # made once
    state = window.saveState()
    assert window.restoreState(state) and lazy.widget() is made[0]  # a saved layout still restores
    window.close()
    window.deleteLater()


def test_a_closed_lazy_dock_is_made_when_view_shows_it(qapp: Any) -> None:
    window = QMainWindow()
    view = window.menuBar().addMenu("&View")
    lazy = add_lazy_dock(window, view, "Lazy", lambda: QLabel("panel"))
    lazy.close()
    window.show()
    qapp.processEvents()
    assert not lazy.built
    (action,) = view.actions()
    action.trigger()  # View > Lazy
    qapp.processEvents()
    assert lazy.built and isinstance(lazy.widget(), QLabel) and lazy.isVisible()
    window.close()
    window.deleteLater()


def test_a_lazy_dock_whose_widget_failed_tries_again(qapp: Any) -> None:
    window = QMainWindow()
    view = window.menuBar().addMenu("&View")
    tries: list[int] = []

    def make() -> QWidget:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("not this time")
        return QLabel("panel")

    lazy = add_lazy_dock(window, view, "Lazy", make)
    with pytest.raises(RuntimeError):
        lazy.content()
    assert not lazy.built and lazy.widget() is None
    assert isinstance(lazy.content(), QLabel) and lazy.built and len(tries) == 2
    window.deleteLater()


def test_the_lora_panel_made_late_shows_what_it_would_have(qloop: Any, qapp: Any, services: Services) -> None:
    from app.ui.main_window import MainWindow

    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend, restore=False)
    win.show()
    try:
        dock = win.lora_dock
        assert dock is not None and not dock.built
        backend.adapter_failed.emit("the adapter 'x' did not load")  # e.g. restoring the last session's
        assert dock.built and win.lora_panel is dock.widget()  # made for it: the message is not lost
        assert win.lora_panel.error_text() == "the adapter 'x' did not load"
        backend.adapter_failed.emit("again")  # from now on the panel hears it itself, once
        assert win.lora_panel.error_text() == "again"
    finally:
        win.close()
        qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 10))
