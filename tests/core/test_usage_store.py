"""The ledger's storage (app/core/usage_store.py): schema and migration, rows opened, updated
and closed, rows of killed processes, busy is not damage, damage is salvaged. Locks are held
by a real second process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core import usage_store
from app.core.errors import ConfigError, StorageBusy, StorageError
from app.core.usage import INTERRUPTED, RUNNING, SCHEMA_VERSION, RowFigures, UsageLedger
from app.core.usage_store import LedgerStore
from tests.core.test_sqlite_db import corrupt_middle
from tests.core.test_usage import rec
from tests.support.sqlite_lock import LockHolder


def test_survives_reopen_and_sets_schema(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    led = UsageLedger(path)
    led.record(rec())
    led.close()
    led.close()  # idempotent
    led = UsageLedger(path)
    try:
        assert led.totals().requests == 1
    finally:
        led.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_newer_schema_is_a_config_error(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="newer version") as info:
        UsageLedger(newer)
    assert "Update the app" in info.value.hint
    assert newer.exists()  # left alone


def test_damaged_file_is_moved_aside_with_a_warning(tmp_path: Path) -> None:
    garbage = tmp_path / "usage.sqlite3"
    junk = b"this is not a database" * 100
    garbage.write_bytes(junk)
    led = UsageLedger(garbage)
    try:
        assert led.totals().requests == 0
        led.record(rec())
        assert led.totals().requests == 1
        [aside] = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
        assert aside.read_bytes() == junk
        assert len(led.warnings) == 1 and str(aside) in led.warnings[0]
    finally:
        led.close()


def test_concurrent_writers(ledger: UsageLedger) -> None:
    def work() -> None:
        for _ in range(50):
            ledger.record(rec(cost_usd="0.01"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert ledger.totals().requests == 200
    assert ledger.totals().cost_usd == Decimal(2)


# -- rows opened at the start, updated while streaming, closed at the end -------------------

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT,
    adapter TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_prompt_tokens INTEGER NOT NULL DEFAULT 0,
    estimated INTEGER NOT NULL DEFAULT 0,
    cost_usd TEXT,
    ttft_s REAL,
    duration_s REAL NOT NULL,
    tokens_per_s REAL,
    finish_reason TEXT NOT NULL,
    conversation_id TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS generations_started ON generations(started_at);
CREATE INDEX IF NOT EXISTS generations_conversation ON generations(conversation_id);
"""
"""The ledger's SQL as version 1 wrote it."""

CHILD = """
import os, signal, sys, time
from app.core.types import GenerationRecord
from app.core.usage import RowFigures, UsageLedger
led = UsageLedger(__import__("pathlib").Path(sys.argv[1]))
rec = GenerationRecord(time.time(), "openai", "gpt-4o-mini", "OpenAI", None, 0, 0, 0, True, None,
                       None, 0.0, None, "running", run_id=sys.argv[2])
rid = led.open(rec)
led.progress(rid, RowFigures(42, prompt_tokens=9, duration_s=1.5))
print(rid, flush=True)
if sys.argv[2] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.readline()
led.close(rid, GenerationRecord(**{**{f: getattr(rec, f) for f in rec.__dataclass_fields__},
                                   "finish_reason": "stop", "completion_tokens": 50}))
led.close()
"""


def child(path: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])  # fmt: skip
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_open_progress_close_lifecycle(ledger: UsageLedger) -> None:
    rid = ledger.open(rec(finish_reason="stop", completion_tokens=0, run_id="run-1"))
    assert rid is not None
    [running] = ledger.recent()
    assert running.finish_reason == RUNNING and running.run_id == "run-1"
    ledger.progress(rid, RowFigures(7, prompt_tokens=3, cost_usd="0.25", duration_s=0.5, ttft_s=0.1))
    [live] = ledger.recent()
    assert (live.completion_tokens, live.prompt_tokens, live.cost_usd, live.duration_s) == (7, 3, "0.25", 0.5)
    final = rec(completion_tokens=12, finish_reason="length", run_id="run-1")
    ledger.close(rid, final)
    assert ledger.recent() == [final]
    assert ledger.totals().requests == 1
    ledger.progress(rid, RowFigures(99))  # a late progress does not touch a closed row
    assert ledger.recent() == [final]


def test_close_without_an_opened_row_records_one(ledger: UsageLedger) -> None:
    ledger.close(None, rec())
    ledger.progress(None, RowFigures(5))  # nothing to update: harmless
    assert ledger.totals().requests == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pid reuse is told by /proc start times")
def test_rows_of_killed_processes_become_interrupted_and_live_ones_stay(tmp_path: Path) -> None:
    import os

    path = tmp_path / "usage.sqlite3"
    UsageLedger(path).close()
    live, live_row = child(path, "live")  # another instance, in the middle of a request
    try:
        killed, killed_row = child(path, "killed")  # kill -9 in the middle of a request
        killed.communicate(timeout=30)
        assert killed.returncode == -9
        # a row whose writer pid exists now but is another process (the pid was reused)
        db = sqlite3.connect(path)
        db.execute("INSERT INTO generations (started_at, provider, model, prompt_tokens, completion_tokens, "
                   "duration_s, finish_reason, writer) VALUES (1, 'mock', 'echo', 0, 3, 0, 'running', ?)",
                   (f"{os.getpid()}:linux-0-1",))  # fmt: skip
        db.commit()
        db.close()
        led = UsageLedger(path)
        try:
            rows = {r.run_id: r for r in led.recent()}
            assert led.interrupted == 2
            gone = rows["killed"]
            assert gone.finish_reason == INTERRUPTED and "interrupted" in (gone.error or "")
            assert (gone.completion_tokens, gone.prompt_tokens) == (42, 9)  # what had arrived
            assert rows["live"].finish_reason == RUNNING  # another instance, still running
            assert rows[None].finish_reason == INTERRUPTED
        finally:
            led.close()
    finally:
        live.communicate("\n", timeout=30)  # it finishes its request and closes the row
    led = UsageLedger(path)
    try:
        done = {r.run_id: r for r in led.recent()}["live"]
        assert (done.finish_reason, done.completion_tokens) == ("stop", 50)
        assert killed_row != live_row
    finally:
        led.close()


def test_a_v1_ledger_is_migrated_in_place_and_its_keys_scrubbed(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    secret, query_secret = "sk-v1secretvalue12345", "qsecret987654321"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.execute("PRAGMA user_version=1")
    db.executemany(
        "INSERT INTO generations (started_at, provider, model, endpoint, prompt_tokens, completion_tokens,"
        " cost_usd, duration_s, finish_reason) VALUES (?, 'openai', 'gpt-4o-mini', ?, 10, 5, '0.5', 1, 'stop')",
        [(100.0, "OpenAI"), (200.0, f"http://u:{secret}@example.com/v1?api_key={query_secret}&x=1")],
    )
    db.commit()
    db.close()
    led = UsageLedger(path)
    try:
        assert led.warnings == []
        old, new = sorted(led.recent(), key=lambda r: r.started_at)
        assert old.endpoint == "OpenAI"
        assert new.endpoint == "http://example.com/v1?api_key=***&x=1"
        assert led.totals().requests == 2 and led.totals().cost_usd == Decimal(1)
        rid = led.open(rec(run_id="r"))
        assert rid == 3
    finally:
        led.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        cols = {r[1] for r in db.execute("PRAGMA table_info(generations)")}
        assert {"run_id", "writer", "updated_at"} <= cols
    finally:
        db.close()
    for f in tmp_path.iterdir():  # the old bytes are gone too, not just the column values
        data = f.read_bytes()
        assert secret.encode() not in data and query_secret.encode() not in data, f


def test_write_methods_never_raise_when_the_file_cannot_be_used(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    led = UsageLedger(blocker / "usage.sqlite3")
    assert len(led.warnings) == 1 and "Usage is not being recorded" in led.warnings[0]
    assert led.open(rec()) is None
    led.progress(1, RowFigures(3))
    led.close(None, rec())
    assert led.record(rec()) == 0
    with pytest.raises(StorageError):
        led.totals()
    led.close()
    assert "2 request(s)" in led.warnings[-1] and "could not be recorded" in led.warnings[-1]


def test_a_busy_ledger_keeps_the_record_and_writes_it_when_free(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    first = UsageLedger(path)
    for _ in range(1001):
        first.record(rec())
    first.close()
    holder = LockHolder(path).start()
    try:
        led = UsageLedger(path, busy_timeout_s=0.2)
        assert led.totals().requests == 1001  # reading is not blocked by a writer
        assert led.open(rec()) is None  # busy: the request goes on without a row
        led.close(None, rec(completion_tokens=77))
        assert led.pending == 1 and led.warnings == []
    finally:
        holder.release()
    led.close()  # now free: written
    assert led.warnings == [] and led.pending == 0
    led = UsageLedger(path)
    try:
        assert led.totals().requests == 1002 and led.recent(1)[0].completion_tokens == 77
    finally:
        led.close()
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []


def test_a_ledger_busy_until_the_end_says_so_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    UsageLedger(path).close()
    with LockHolder(path):
        led = UsageLedger(path, busy_timeout_s=0.1)
        led.record(rec(prompt_tokens=10, completion_tokens=5))
        led.close()
    assert len(led.warnings) == 1
    assert "busy: another instance holds the usage database" in led.warnings[0]
    assert "1 request(s) (15 tokens) could not be recorded" in led.warnings[0]
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []


def test_damaged_pages_are_salvaged_and_the_ledger_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    led = UsageLedger(path)
    for i in range(1001):
        led.record(rec(started_at=1000.0 + i, cost_usd="0.001"))
    led.close()
    corrupt_middle(path)
    led = UsageLedger(path)
    try:
        [warning] = led.warnings
        [aside] = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
        assert str(aside) in warning and "rows that could still be read" in warning
        saved = led.totals().requests
        assert 0 < saved <= 1001  # here only index pages were hit: every row was saved
        assert led.totals(since=2000.0).requests == 1  # the newest row is among them
        led.record(rec())
        assert led.totals().requests == saved + 1
    finally:
        led.close()



# -- busy is not damage: the ledger's own guard ---------------------------------------------


@pytest.fixture
def salvages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reasons the ledger asked for a salvage (the real salvage still runs)."""
    seen: list[str] = []
    real = usage_store.salvage_and_replace

    def recording(path: Path, spec: Any, reason: str, timeout_s: float) -> str:
        seen.append(reason)
        return real(path, spec, reason, timeout_s)

    monkeypatch.setattr(usage_store, "salvage_and_replace", recording)
    return seen


def test_a_write_that_meets_a_lock_is_kept_and_never_salvaged(tmp_path: Path, salvages: list[str]) -> None:
    path = tmp_path / "usage.sqlite3"
    store = LedgerStore(path, busy_timeout_s=0.1)
    try:
        store.record(rec())
        before = path.stat().st_ino
        with LockHolder(path):  # another instance in a write transaction
            assert store.record(rec(completion_tokens=9)) == 0  # SQLITE_BUSY inside the ledger's own run
            assert store.pending == 1
            assert salvages == []  # a lock is never taken for damage
            assert store.warnings == []
        assert path.stat().st_ino == before  # not moved aside nor replaced
        assert [p for p in tmp_path.iterdir() if ".corrupt-" in p.name or ".salvage-" in p.name] == []
        store.record(rec())  # free again: the kept row goes first
        assert store.pending == 0
        assert [tuple(r) for r in store._query("SELECT completion_tokens FROM generations ORDER BY id")] == [(50,), (9,), (50,)]
    finally:
        store.shutdown()


def test_a_lock_held_until_shutdown_is_reported_busy_and_never_salvaged(tmp_path: Path, salvages: list[str]) -> None:
    path = tmp_path / "usage.sqlite3"
    store = LedgerStore(path, busy_timeout_s=0.1)
    store.record(rec())
    with LockHolder(path):
        store.record(rec(prompt_tokens=1, completion_tokens=2))
        store.shutdown()
    assert salvages == []
    [warning] = store.warnings
    assert warning.startswith("busy: another instance holds the usage database")
    assert "1 request(s) (3 tokens) could not be recorded" in warning
    assert [p for p in tmp_path.iterdir() if ".corrupt-" in p.name] == []
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 1  # the file is intact
    finally:
        db.close()


def test_a_read_that_meets_a_lock_raises_storage_busy(tmp_path: Path, salvages: list[str]) -> None:
    path = tmp_path / "usage.sqlite3"
    LedgerStore(path).shutdown()
    with LockHolder(path, exclusive=True):  # nobody can even read
        store = LedgerStore(path, busy_timeout_s=0.1)
        try:
            with pytest.raises(StorageBusy, match="busy: another instance"):
                store._query("SELECT COUNT(*) FROM generations")
        finally:
            store.shutdown()
    assert salvages == [] and store.warnings == []
    assert [p for p in tmp_path.iterdir() if ".corrupt-" in p.name] == []
