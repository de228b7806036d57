"""UI tests run like the app: cyclic garbage is collected on the GUI thread only. The one
``services`` fixture of the UI tests lives here."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.secrets import MemoryKeyring, SecretStore
from app.core.services import Services
from app.core.settings import LocalModelSettings


def make_services() -> Services:
    """The real services on the test's private home: an in-memory keyring (the environment's
    key ignored), local models on the CPU in float32 with one thread. (A test that restarts
    the app makes a second one; everything else uses the ``services`` fixture.)"""
    svc = Services.create(secrets=SecretStore(backend=MemoryKeyring(), environ={}))
    svc.settings.local = LocalModelSettings(device="cpu", dtype="float32", threads=1)
    return svc


@pytest.fixture
def services(qloop: Any) -> Iterator[Services]:
    """:func:`make_services`, closed after the test (runs stopped, providers and databases closed)."""
    svc = make_services()
    # Qt objects left as cyclic garbage by earlier tests are freed here, on the GUI thread
    # (the fixture below keeps automatic collection off the model worker thread).
    gc.collect()
    yield svc
    qloop.run_until_complete(asyncio.wait_for(svc.aclose(), 30))


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


@pytest.fixture(scope="module", autouse=True)
def no_qt_garbage_left() -> Iterator[None]:
    """Qt objects left as cyclic garbage by a module's last test are freed at its end, on the
    GUI thread. Left for later, the first automatic collection of a test that runs a loop or
    a model worker thread freed them there ("QObject::~QObject: Timers cannot be stopped from
    another thread"), and a timer of a freed object crashed the process a test later: this
    happened with tests/serve run after tests/ui."""
    yield
    gc.collect()

