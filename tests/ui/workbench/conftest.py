"""The Workbench opened from a real main window (mock provider, real history, ledger, store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.core.secrets import MemoryKeyring, SecretStore
from app.core.services import Services


@pytest.fixture
def window(qloop: Any, qapp: Any) -> Iterator[Any]:
    """The main window on mock:echo."""
    from app.ui.backend_manager import BackendManager
    from app.ui.main_window import MainWindow

    services = Services.create(secrets=SecretStore(backend=MemoryKeyring()))
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend, restore=False)
    win.show()
    yield win
    bench = win.dialogs.get("workbench")
    if bench is not None:
        bench.commit_edits()  # text typed but not applied yet would count as an edit at quit
        bench.dirty = False  # a test's edited grid: quitting would ask about it
    if bench is not None:  # its runs and store close on the loop before the window goes
        qloop.run_until_complete(asyncio.wait_for(bench.aclose(), 10))
    win.close()
    qloop.run_until_complete(backend.aclose())
    qloop.run_until_complete(services.aclose())


@pytest.fixture
def bench(window: Any) -> Any:
    """The Workbench of ``window`` (View > Workbench)."""
    window.workbench_action.trigger()
    return window.dialogs["workbench"]


@pytest.fixture
def drive(qloop: Any) -> Callable[..., Any]:
    """Run a scenario coroutine on the qasync loop, with a timeout."""

    def _drive(coro: Any, timeout: float = 30) -> Any:
        return qloop.run_until_complete(asyncio.wait_for(coro, timeout))

    return _drive


async def until_flushed(bench: Any, test: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for the grid's repaints until ``test()`` holds."""
    from tests.conftest import wait_signal

    async def loop() -> None:
        while not test():
            await wait_signal(bench.model.cells_flushed, timeout)

    await asyncio.wait_for(loop(), timeout)
