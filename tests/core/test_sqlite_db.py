"""Opening the app's SQLite files: busy is never damage, damage is salvaged before the file is
moved aside, aside names never collide. Locks are held by a real second process."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from app.core.errors import StorageBusy, StorageError
from app.core.sqlite_db import aside_path, error_kind, move_aside, open_database
from tests.support.sqlite_lock import LockHolder

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS items_body ON items(body);
"""
SCHEMA_V2 = SCHEMA_V1 + "CREATE TABLE IF NOT EXISTS extra (x TEXT);\n"


def open_items(path: Path, version: int = 1, timeout: float = 0.3) -> tuple[sqlite3.Connection, list[str]]:
    return open_database(
        path,
        what="test",
        schema=SCHEMA_V1 if version == 1 else SCHEMA_V2,
        version=version,
        newer_hint="Update.",
        fresh_note="a new test database was started",
        busy_timeout_s=timeout,
    )


def make_items(path: Path, n: int = 1001) -> None:
    db, warnings = open_items(path)
    assert warnings == []
    db.execute("BEGIN")
    db.executemany("INSERT INTO items (body) VALUES (?)", [(f"item {i:05d} " + "x" * 60,) for i in range(n)])
    db.execute("COMMIT")
    db.close()  # checkpoints the WAL into the file


def corrupt_middle(path: Path, pages: int = 3, page_size: int = 4096) -> bytes:
    """Overwrite ``pages`` whole pages in the middle of the file with noise; return the bytes."""
    data = bytearray(path.read_bytes())
    start = (len(data) // page_size // 2) * page_size
    data[start : start + pages * page_size] = random.Random(7).randbytes(pages * page_size)
    path.write_bytes(bytes(data))
    return bytes(data)


def others(folder: Path, name: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(name) and ".corrupt-" in p.name)


def test_a_write_lock_held_elsewhere_does_not_delay_or_break_opening(tmp_path: Path) -> None:
    path = tmp_path / "items.sqlite3"
    make_items(path, 10)
    before = path.read_bytes()
    with LockHolder(path):
        db, warnings = open_items(path)
        try:
            assert warnings == []
            assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 10
        finally:
            db.close()
    assert others(tmp_path, "items") == []
    assert path.read_bytes() == before


def test_a_database_locked_elsewhere_is_busy_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "items.sqlite3"
    make_items(path, 10)
    with LockHolder(path, exclusive=True):
        with pytest.raises(StorageBusy) as info:
            open_items(path)
    assert "busy: another instance holds the test database" in str(info.value)
    assert "Nothing was lost or moved" in info.value.hint
    assert others(tmp_path, "items") == []
    db, warnings = open_items(path)  # once the other process is gone, everything is there
    try:
        assert warnings == [] and db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 10
    finally:
        db.close()


def test_a_schema_upgrade_waits_for_the_lock_then_reports_busy(tmp_path: Path) -> None:
    path = tmp_path / "items.sqlite3"
    make_items(path, 5)
    with LockHolder(path):
        with pytest.raises(StorageBusy):
            open_items(path, version=2)
    assert others(tmp_path, "items") == []
    db, warnings = open_items(path, version=2)
    try:
        assert warnings == []
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 5
    finally:
        db.close()


def test_damaged_pages_are_salvaged_row_by_row_before_the_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "items.sqlite3"
    make_items(path)
    damaged = corrupt_middle(path)
    db, warnings = open_items(path)
    try:
        [aside] = others(tmp_path, "items")
        assert aside.read_bytes() == damaged  # kept as it was, for recovery
        assert len(warnings) == 1
        assert str(aside) in warnings[0] and "was damaged" in warnings[0]
        ids = [r[0] for r in db.execute("SELECT id FROM items ORDER BY id")]
        assert 0 < len(ids) < 1001  # some pages were lost ...
        assert ids[0] == 1 and ids[-1] == 1001  # ... but the rows after them were read too
        assert f"with the {len(ids)} rows that could still be read" in warnings[0]
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        db.execute("INSERT INTO items (body) VALUES ('new')")  # and it goes on
        assert db.execute("SELECT MAX(id) FROM items").fetchone()[0] == 1002
    finally:
        db.close()
    assert not list(tmp_path.glob("*.salvage-*"))


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "items.sqlite3"
    path.write_bytes(b"not sqlite at all" * 300)
    db, warnings = open_items(path)
    db.close()
    [aside] = others(tmp_path, "items")
    assert aside.read_bytes() == b"not sqlite at all" * 300
    assert "no rows could be read" in warnings[0]


def test_an_unopenable_path_is_a_storage_error_and_nothing_moves(tmp_path: Path) -> None:
    path = tmp_path / "items.sqlite3"
    path.mkdir()  # a folder where the file should be
    with pytest.raises(StorageError) as info:
        open_items(path)
    assert not isinstance(info.value, StorageBusy)
    assert path.is_dir() and others(tmp_path, "items") == []


def test_aside_names_are_unique_within_the_same_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.core.sqlite_db as sqlite_db

    monkeypatch.setattr(sqlite_db.time, "time", lambda: 1_700_000_000.25)  # one frozen instant
    path = tmp_path / "usage.sqlite3"
    path.write_text("first")
    first = move_aside(path)
    path.write_text("second")
    (tmp_path / "usage.sqlite3-wal").write_text("second wal")
    second = move_aside(path)
    assert first != second
    assert first.read_text() == "first" and second.read_text() == "second"
    assert Path(str(second) + "-wal").read_text() == "second wal"
    assert "20231114" in first.name or ".corrupt-2023" in first.name
    assert aside_path(path) not in (first, second)


def test_error_kinds() -> None:
    def err(message: str, code: int) -> sqlite3.OperationalError:
        exc = sqlite3.OperationalError(message)
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        return exc

    assert error_kind(err("database is locked", 5)) == "busy"
    assert error_kind(err("database table is locked", 6)) == "busy"
    assert error_kind(err("database disk image is malformed", 11)) == "damaged"
    assert error_kind(err("file is not a database", 26)) == "damaged"
    assert error_kind(err("unable to open database file", 14)) == "other"
    assert error_kind(err("disk I/O error", 10)) == "other"
    assert error_kind(sqlite3.DatabaseError("file is not a database")) == "damaged"


def test_an_uncoded_lock_error_is_busy_not_damage() -> None:
    """Errors raised by hand or re-wrapped carry no ``sqlite_errorcode``: their text decides,
    and a lock is never taken for damage (which would move the file aside)."""
    for message in ("database is locked", "database table is locked", "Database Is Busy"):
        exc = sqlite3.OperationalError(message)
        assert getattr(exc, "sqlite_errorcode", None) is None
        assert error_kind(exc) == "busy", message
    assert error_kind(sqlite3.DatabaseError("database disk image is malformed")) == "damaged"
    assert error_kind(sqlite3.OperationalError("no such table: items")) == "other"


def test_a_real_lock_error_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "items.sqlite3"
    make_items(path, 3)
    with LockHolder(path, exclusive=True):
        db = sqlite3.connect(path, timeout=0.05)
        try:
            with pytest.raises(sqlite3.OperationalError) as info:
                db.execute("SELECT COUNT(*) FROM items").fetchone()
        finally:
            db.close()
    assert error_kind(info.value) == "busy"
