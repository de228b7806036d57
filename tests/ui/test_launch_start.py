"""The window's start when another program holds the history database (busy, never damage):
the message is shown and the start is tried again when the user says so; start warnings
(the usage ledger's too) reach the status bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.core.secrets import MemoryKeyring, SecretStore
from app.core.services import Services
from app.ui.launch import show_start_warnings, start_services
from app.ui.main_window import MainWindow
from tests.support.sqlite_lock import LockHolder


def _create() -> Services:
    return Services.create(secrets=SecretStore(backend=MemoryKeyring(), environ={}))


def _first_run() -> Path:
    svc = _create()
    path = svc.paths.history_db
    svc.ledger.close()
    svc.history.close()
    return path


def test_a_busy_history_is_explained_and_retried(qapp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PLAYGROUND_DB_BUSY_TIMEOUT", "0.2")
    history = _first_run()
    window = MainWindow(build=True)
    asked: list[str] = []
    holder = LockHolder(history, exclusive=True).start()
    try:
        def ask(message: str) -> bool:
            asked.append(window.status_label.text())
            holder.release()  # the other instance closes; the user presses Try again
            return True

        services = start_services(window, _create, ask)
    finally:
        holder.release()
    assert services is not None
    try:
        assert len(asked) == 1 and asked[0].startswith("busy: another instance holds the history database")
        assert "Nothing was lost" in asked[0]
    finally:
        services.ledger.close()
        services.history.close()
        window.close()


def test_giving_up_on_a_busy_history_ends_the_start(qapp: Any, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("LLM_PLAYGROUND_DB_BUSY_TIMEOUT", "0.2")
    history = _first_run()
    window = MainWindow(build=True)
    with LockHolder(history, exclusive=True):
        assert start_services(window, _create, lambda _m: False) is None
        assert start_services(window, _create, None) is None  # headless: said once, never asked
    assert capsys.readouterr().err.count("busy: another instance holds the history database") == 2
    window.close()


def test_start_warnings_include_the_usage_ledgers(qloop: Any, qapp: Any, services: Services) -> None:
    services.ledger.warnings.append("The usage ledger was damaged; 12 rows were saved into a new file.")
    window = MainWindow(services)
    try:
        show_start_warnings(window, services)
        assert "usage ledger was damaged" in window.status_label.text()
    finally:
        window.close()
        qloop.run_until_complete(window.backend.aclose())
