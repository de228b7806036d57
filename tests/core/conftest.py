"""Fixtures of the core tests: a history file and its store, a usage ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.history import HistoryStore
from app.core.usage import UsageLedger


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(db_path)
    yield s
    s.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[UsageLedger]:
    """A usage ledger in the test's folder, closed after the test."""
    led = UsageLedger(tmp_path / "usage.sqlite3")
    yield led
    led.close()
