"""UI tests run like the app: cyclic garbage is collected on the GUI thread only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def gui_thread_gc(qapp: Any) -> Iterator[None]:
    """The app installs GuiThreadCollector at start; without it an automatic collection on the
    model worker thread could finalise a test's leftover widget there and crash the process."""
    from app.ui.gc_guard import GuiThreadCollector

    collector = GuiThreadCollector(interval_ms=50, parent=qapp)
    try:
        yield
    finally:
        collector.stop()
        collector.deleteLater()
