"""Usage ledger: records, exact totals, groupings, CSV export, schema, threads."""

from __future__ import annotations

import asyncio
import csv
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ConfigError, StorageError
from app.core.types import GenerationRecord
from app.core.usage import (
    INTERRUPTED,
    RUNNING,
    SCHEMA_VERSION,
    RowFigures,
    RowProgress,
    UsageLedger,
    UsageTotals,
)
from tests.core.test_sqlite_db import corrupt_middle
from tests.support.sqlite_lock import LockHolder


def rec(**changes: object) -> GenerationRecord:
    base = GenerationRecord(
        started_at=time.time(),
        provider="openai",
        model="gpt-4o-mini",
        endpoint="OpenAI",
        adapter=None,
        prompt_tokens=100,
        completion_tokens=50,
        cached_prompt_tokens=0,
        estimated=False,
        cost_usd="0.000045",
        ttft_s=0.2,
        duration_s=1.0,
        tokens_per_s=40.0,
        finish_reason="stop",
        conversation_id="c1",
        error=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    led = UsageLedger(tmp_path / "usage.sqlite3")
    yield led
    led.close()


def test_record_and_recent_roundtrip(ledger: UsageLedger) -> None:
    first = rec(started_at=1000.0)
    second = rec(started_at=2000.0, cost_usd=None, estimated=True, error="boom", ttft_s=None, tokens_per_s=None)
    id1, id2 = ledger.record(first), ledger.record(second)
    assert id2 > id1 > 0
    assert ledger.recent() == [second, first]
    assert ledger.recent(limit=1) == [second]
    assert ledger.recent(conversation_id="other") == []


def test_totals_are_exact(ledger: UsageLedger) -> None:
    for _ in range(1000):
        ledger.record(rec(cost_usd="0.0000001"))
    ledger.record(rec(cost_usd=None, estimated=True, ttft_s=None, tokens_per_s=None))
    t = ledger.totals()
    assert t.requests == 1001
    assert t.cost_usd == Decimal("0.0001")
    assert t.prompt_tokens == 100_100 and t.completion_tokens == 50_050
    assert t.total_tokens == 150_150
    assert t.estimated_requests == 1
    assert t.unknown_cost_requests == 1
    assert t.avg_ttft_s == pytest.approx(0.2)
    assert t.avg_tokens_per_s == pytest.approx(40.0)


def test_empty_totals(ledger: UsageLedger) -> None:
    assert ledger.totals() == UsageTotals()
    assert ledger.totals_by_model() == {}
    assert ledger.per_conversation() == {}


def test_filters(ledger: UsageLedger) -> None:
    ledger.record(rec(started_at=100.0, conversation_id="a", cost_usd="1"))
    ledger.record(rec(started_at=200.0, conversation_id="b", cost_usd="2", provider="mock", model="echo"))
    ledger.record(rec(started_at=300.0, conversation_id="a", cost_usd="4"))
    assert ledger.totals(conversation_id="a").cost_usd == Decimal(5)
    assert ledger.totals(model="mock:echo").cost_usd == Decimal(2)
    assert ledger.totals(model="gpt-4o-mini").requests == 2
    assert ledger.totals(since=200.0).cost_usd == Decimal(6)
    assert ledger.totals(conversation_id="a", since=150.0).cost_usd == Decimal(4)


def test_totals_by_model_and_conversation(ledger: UsageLedger) -> None:
    ledger.record(rec(cost_usd="0.5", conversation_id="x"))
    ledger.record(rec(provider="mock", model="echo", cost_usd="0", conversation_id="y"))
    ledger.record(rec(cost_usd="0.25", conversation_id=None))
    by_model = ledger.totals_by_model()
    assert list(by_model) == ["openai:gpt-4o-mini", "mock:echo"]
    assert by_model["openai:gpt-4o-mini"].cost_usd == Decimal("0.75")
    assert by_model["openai:gpt-4o-mini"].requests == 2
    assert ledger.totals_by_model(since=time.time() + 60) == {}
    per = ledger.per_conversation()
    assert set(per) == {"x", "y"}
    assert per["x"].cost_usd == Decimal("0.5")


def test_totals_by_day_is_a_full_local_series(ledger: UsageLedger) -> None:
    now = time.time()
    lt = time.localtime(now)
    noon_today = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 12, 0, 0, 0, 0, -1))
    two_days_ago = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday - 2, 12, 0, 0, 0, 0, -1))
    long_ago = now - 90 * 86400
    ledger.record(rec(started_at=noon_today, cost_usd="1"))
    ledger.record(rec(started_at=noon_today, cost_usd="2"))
    ledger.record(rec(started_at=two_days_ago, cost_usd="4"))
    ledger.record(rec(started_at=long_ago, cost_usd="8"))
    days = ledger.totals_by_day(7, now=max(now, noon_today))
    assert len(days) == 7
    labels = [d for d, _ in days]
    assert labels == sorted(labels) and len(set(labels)) == 7
    assert labels[-1] == time.strftime("%Y-%m-%d", time.localtime(noon_today))
    assert days[-1][1].cost_usd == Decimal(3) and days[-1][1].requests == 2
    assert days[-3][1].cost_usd == Decimal(4)
    assert days[-2][1] == UsageTotals()
    assert sum((t.cost_usd for _, t in days), Decimal(0)) == Decimal(7)  # the old row is outside
    assert ledger.totals_by_day(0) == []


def test_export_csv(ledger: UsageLedger, tmp_path: Path) -> None:
    ledger.record(rec(started_at=100.0, cost_usd="0.1"))
    ledger.record(rec(started_at=200.0, cost_usd=None, error="bad, \"quoted\"\nline"))
    out = tmp_path / "sub" / "usage.csv"
    assert ledger.export_csv(out) == 2
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["started_at"] for r in rows] == ["100.0", "200.0"]
    assert rows[0]["cost_usd"] == "0.1" and rows[1]["cost_usd"] == ""
    assert rows[1]["error"] == "bad, \"quoted\"\nline"
    assert rows[0]["time"]
    assert ledger.export_csv(out, since=150.0) == 1


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


class FakeSink:
    """Records progress writes; sets ``written`` on each."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, int, dict[str, object]]] = []
        self.written: asyncio.Event | None = None

    def progress(self, row_id: int | None, figures: RowFigures) -> None:
        self.calls.append((row_id, figures.completion_tokens, {"duration_s": figures.duration_s}))
        if self.written is not None:
            self.written.set()


def test_row_progress_is_throttled_with_a_trailing_write(run: Callable[..., Any]) -> None:
    now = [100.0]
    tokens = [0]
    sink = FakeSink()
    live = RowProgress(sink, 5, lambda: RowFigures(tokens[0], duration_s=1.0),
                       interval_s=0.05, clock=lambda: now[0])  # fmt: skip

    async def scenario() -> None:
        sink.written = asyncio.Event()
        tokens[0] = 1
        live.tick()  # the first token: written at once
        assert sink.calls == [(5, 1, {"duration_s": 1.0})]
        for n in range(2, 40):  # a burst inside the interval: no writes, one trailing timer
            tokens[0] = n
            live.tick()
        assert len(sink.calls) == 1
        sink.written.clear()
        now[0] += 0.05
        await asyncio.wait_for(sink.written.wait(), 5)  # the trailing write, with the latest figure
        assert sink.calls[-1][1] == 39
        now[0] += 1.0
        tokens[0] = 40
        live.tick()
        assert sink.calls[-1][1] == 40
        tokens[0] = 41
        live.tick()
        live.cancel()  # the stream ended: the pending trailing write is dropped

    run(scenario())
    assert [c[1] for c in sink.calls] == [1, 39, 40]
