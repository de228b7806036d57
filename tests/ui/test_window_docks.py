"""app/ui/window_docks.py: the main window's panels as docks, each listed in View."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow

from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.window_docks import SIDEBAR_MIN_WIDTH, build_docks


def test_the_docks_are_made_placed_and_listed_in_view(qloop: Any, services: Services) -> None:
    window = QMainWindow()
    backend = BackendManager(services, window, model_id="mock:echo")
    view = window.menuBar().addMenu("&View")
    try:
        docks = build_docks(window, view, services, backend)
        assert docks.sidebar is not None and docks.dashboard is not None and docks.lora_panel is not None
        assert docks.sidebar.minimumWidth() == SIDEBAR_MIN_WIDTH
        history = docks.sidebar.parentWidget()
        assert window.dockWidgetArea(history) == Qt.DockWidgetArea.LeftDockWidgetArea
        lora = docks.lora_panel.parentWidget()
        assert docks.tools_panel is not None
        tools = docks.tools_panel.parentWidget()
        assert set(window.tabifiedDockWidgets(lora)) == {docks.dashboard, tools}  # one tab group at the right
        assert [a.text() for a in view.actions()] == ["History", "Usage", "LoRA adapters", "Tools"]
    finally:
        qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 10))
        window.deleteLater()
