"""The Workbench: one prompt to many models side by side, test grids with assertions, get
code (View > Workbench, Ctrl+Shift+W). The grid logic is Qt-free in :mod:`app.core.grid`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.ui.workbench.host import WorkbenchHost
    from app.ui.workbench.window import WorkbenchWindow


def open_workbench(host: WorkbenchHost, parent: QWidget | None = None) -> WorkbenchWindow:
    """Show ``host``'s Workbench (made on first use, as a window of ``parent``; it keeps its
    grid when closed)."""
    from app.ui.workbench.window import WorkbenchWindow

    bench = host.dialogs.get("workbench")
    if bench is None:
        bench = WorkbenchWindow(host.services, host, parent)
        host.dialogs["workbench"] = bench
        host.closed.connect(lambda: bench.runner.stop())
    bench.show()
    bench.raise_()
    bench.activateWindow()
    return bench


def asks_before_quitting(host: WorkbenchHost) -> bool:
    """Quitting with an edited, unsaved grid: show the Workbench and ask (Save / Discard /
    Cancel); True when the quit must wait (the window is closed again once the grid is saved
    or discarded)."""
    bench = host.dialogs.get("workbench")
    if bench is None:
        return False
    bench.commit_edits()
    if not bench.dirty:
        return False
    bench.show()
    bench.raise_()
    if bench.save_box is None:
        bench.ask_to_save(host.close)
    return True
