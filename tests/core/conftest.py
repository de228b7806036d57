"""Fixtures of the core tests: a history file and its store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.history import HistoryStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(db_path)
    yield s
    s.close()
