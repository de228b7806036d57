"""app/ui/widgets/server_indicator.py: the status bar's local-server indicator, there from the
start, before the Server panel is made (its dock is a tab behind Usage until first shown)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.main_window import MainWindow
from tests.conftest import expect_signal


def test_the_indicator_follows_a_server_started_before_its_panel_is_made(
    qloop: Any, qapp: Any, services: Services
) -> None:
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend, restore=False)
    win.show()
    control, dock, indicator = win.server_control, win.server_dock, win.server_indicator
    try:
        assert dock is not None and not dock.built and indicator.isHidden()

        async def scenario() -> None:
            listed = expect_signal(control.models_changed)
            await control.astart(port=0, require_key=False)
            (ids,), = await listed.wait(15)
            port = control.port
            assert indicator.isVisible() and indicator.text() == f"Serving on 127.0.0.1:{port} · 0 active"
            assert dock.built  # made as the server started, so it has seen all of it
            panel = win.server_panel
            assert panel is not None and panel.address_label.text() == f"http://127.0.0.1:{port}/v1"
            assert panel.models() == list(ids) and "mock:echo" in panel.models()
            assert panel.start_button.text() == "Stop"
            await control.astop()
            assert indicator.isHidden() and panel.start_button.text() == "Start"

        qloop.run_until_complete(asyncio.wait_for(scenario(), 40))
    finally:
        win.close()
        qloop.run_until_complete(asyncio.wait_for(control.aclose(), 20))
        qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 20))
