"""The usage ledger's storage: the SQLite schema (version 2, migrated in place from 1) and
the write side of :class:`app.core.usage.UsageLedger`.

A request's row is opened when it starts (:meth:`LedgerStore.open`, finish reason
"running"), updated while it streams (:meth:`LedgerStore.progress`, cheap, at most about
once a second) and closed with the final figures (:meth:`LedgerStore.close`). A process
killed mid-stream leaves its row "running" with what had arrived; the next start marks it
"interrupted". Rows of another live instance are left alone: each row names its writer by
pid and process start time (:mod:`app.core.process_id`).

Storage never costs an answer: the write methods log and add a user warning instead of
raising; a write that finds the file busy is kept in memory and written later (at the next
write or at :meth:`LedgerStore.shutdown`); a damaged file is salvaged and moved aside
(:mod:`app.core.sqlite_db`). Endpoints are stored without credentials
(:func:`app.core.urls.clean_url`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar, overload

from app.core.errors import StorageBusy, StorageError, join_sentences, redact
from app.core.process_id import current_writer, writer_alive
from app.core.sqlite_db import (
    DatabaseSpec,
    busy_error,
    default_busy_timeout,
    error_kind,
    open_spec,
    salvage_and_replace,
    storage_error,
)
from app.core.types import GenerationRecord
from app.core.urls import clean_url

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 2
RUNNING = "running"
INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = (
    "interrupted: the app stopped (closed or killed) while this request was running; "
    "the figures are what had arrived by then"
)
OPEN_WAIT_S = 0.5
"""The longest :meth:`UsageLedger.open` waits for a lock before the request goes on without
a row (its final row is still written by :meth:`UsageLedger.close`)."""
PROGRESS_WAIT_S = 0.05
"""The longest :meth:`UsageLedger.progress` waits for a lock (a skipped update is harmless)."""
COLUMNS = tuple(f.name for f in fields(GenerationRecord))
ALL_COLUMNS = (*COLUMNS, "writer", "updated_at")
_SCHEMA = """
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
    error TEXT,
    run_id TEXT,
    writer TEXT,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS generations_started ON generations(started_at);
CREATE INDEX IF NOT EXISTS generations_conversation ON generations(conversation_id);
CREATE INDEX IF NOT EXISTS generations_run ON generations(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS generations_running ON generations(writer) WHERE finish_reason = 'running';
"""
_V2_COLUMNS = (("run_id", "TEXT"), ("writer", "TEXT"), ("updated_at", "REAL"))
_REAL = "CASE WHEN SUM(provider <> 'mock') > 0 THEN AVG(CASE WHEN provider <> 'mock' THEN {0} END) ELSE AVG({0}) END"
"""The average of ``{0}`` over real models' rows: mock answers (thousands of tokens a second)
count only where there is nothing else."""
AGG_SQL = f"""COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
    decsum(cost_usd), COALESCE(SUM(estimated), 0), {_REAL.format("ttft_s")}, {_REAL.format("tokens_per_s")},
    COALESCE(SUM(cost_usd IS NULL), 0)"""


def _clean_endpoint(value: Any) -> Any:
    return clean_url(value, register=False) if isinstance(value, str) else value


def _before_schema(db: sqlite3.Connection) -> None:
    db.create_aggregate("decsum", 1, _DecimalSum)  # type: ignore[arg-type]
    db.create_function("clean_endpoint", 1, _clean_endpoint, deterministic=True)


def _migrate(db: sqlite3.Connection, found: int) -> None:
    """v1 -> v2: add run_id, writer and updated_at; scrub credentials from stored endpoints
    (v1 stored a base URL as given, ``http://user:key@host`` included)."""
    have = {str(r[1]) for r in db.execute("PRAGMA table_info(generations)")}
    if not have:
        return  # a new file: the schema script creates everything
    for name, decl in _V2_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE generations ADD COLUMN {name} {decl}")
    db.execute(
        "UPDATE generations SET endpoint = clean_endpoint(endpoint) WHERE endpoint LIKE '%://%' "
        "AND endpoint IS NOT clean_endpoint(endpoint)"
    )


_SPEC = DatabaseSpec(
    what="usage",
    schema=_SCHEMA,
    version=SCHEMA_VERSION,
    newer_hint="Update the app, or move the file away to start a new ledger.",
    fresh_note="a new ledger was started",
    before_schema=_before_schema,
    migrate=_migrate,
    pragmas=("secure_delete=ON",),  # a scrubbed endpoint leaves no old bytes behind
)


class _DecimalSum:
    """SQLite aggregate: exact sum of decimal TEXT values (NULLs skipped), as TEXT."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if value is None:
            return
        try:
            self.total += Decimal(str(value))
        except InvalidOperation:
            log.warning("ignoring a non-decimal cost in the usage ledger: %r", value)

    def finalize(self) -> str:
        return str(self.total)



_NO_ARGS: Any = object()


@dataclass(frozen=True, slots=True)
class RowFigures:
    """What has arrived so far for a running row (``None``: keep the row's value)."""

    completion_tokens: int
    prompt_tokens: int | None = None
    cost_usd: str | None = None
    duration_s: float | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None


class LedgerStore:
    """The ledger's file and its write side (reads are in :class:`app.core.usage.UsageLedger`).

    Safe to call from several threads (one connection guarded by a lock). The write methods
    (:meth:`open`, :meth:`progress`, :meth:`close`, :meth:`record`) never raise: a failure is
    logged and, when it loses something, added to :attr:`warnings`. Reads raise
    :class:`StorageBusy` / :class:`StorageError` (clear messages) when the file is unusable.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float | None = None) -> None:
        self.path = path
        self.busy_timeout_s = default_busy_timeout() if busy_timeout_s is None else busy_timeout_s
        """How long :meth:`close` / :meth:`record` (and reads) wait for another process's lock."""
        self.warnings: list[str] = []
        """What went wrong (a damaged file salvaged and moved aside, rows that could not be
        written), as user messages."""
        self.interrupted = 0
        """Rows of dead processes marked "interrupted" when this ledger opened."""
        self._lock = threading.Lock()
        self._writer = current_writer()
        self._pending: list[tuple[int | None, GenerationRecord]] = []
        self._db: sqlite3.Connection | None = None
        self._closed = False
        try:
            self._connection()
        except StorageBusy as exc:  # retried on the next write or read
            log.info("%s", exc)
        except StorageError as exc:
            self._warn(f"{exc.message} Usage is not being recorded.")

    # ------------------------------------------------------------------ connection
    def _warn(self, message: str) -> None:
        """Add a user warning (logged at INFO: the CLI prints the warnings itself, and a
        WARNING record would reach stderr a second time through logging's last resort)."""
        log.info("%s", message)
        if message not in self.warnings:
            self.warnings.append(message)

    def _connection(self) -> sqlite3.Connection:
        """The open connection, opening (or reopening) the file first when needed."""
        if self._db is None:
            if self._closed:
                raise StorageError(f"The usage ledger {self.path} is closed.")
            db, found = open_spec(self.path, _SPEC, self.busy_timeout_s)
            for message in found:
                self._warn(message)
            self._db = db
            self._sweep(db)
        return self._db

    def _sweep(self, db: sqlite3.Connection) -> None:
        """Mark rows left "running" by processes that are gone as "interrupted"."""
        try:
            db.execute(f"PRAGMA busy_timeout={int(OPEN_WAIT_S * 1000)}")
            writers = [r[0] for r in db.execute(
                "SELECT DISTINCT writer FROM generations WHERE finish_reason = 'running'")]  # fmt: skip
            for writer in writers:
                if writer_alive(writer):
                    continue
                cur = db.execute(
                    "UPDATE generations SET finish_reason = ?, error = COALESCE(error, ?), "
                    "duration_s = MAX(duration_s, COALESCE(updated_at, started_at) - started_at) "
                    "WHERE finish_reason = 'running' AND writer IS ?",
                    (INTERRUPTED, INTERRUPTED_ERROR, writer),
                )
                self.interrupted += max(0, cur.rowcount)
            if self.interrupted:
                log.info("%d ledger row(s) of stopped processes marked interrupted", self.interrupted)
        except sqlite3.DatabaseError:  # busy or worse: the next start tries again
            log.info("could not mark interrupted ledger rows now", exc_info=True)

    def _recover(self, reason: str) -> None:
        """The open file turned out damaged: salvage it, move it aside, reopen."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        self._warn(salvage_and_replace(self.path, _SPEC, reason, self.busy_timeout_s))
        self._connection()

    def _run(self, op: Callable[[sqlite3.Connection], T], timeout_s: float) -> T:
        """Run ``op`` (the caller holds ``self._lock``) with ``timeout_s`` of busy wait; a
        damaged file is recovered once and ``op`` retried. Raises StorageBusy / StorageError."""
        for attempt in (1, 2):
            try:
                db = self._connection()
                db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
                return op(db)
            except sqlite3.DatabaseError as exc:
                if self._db is not None and self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                kind = error_kind(exc)
                if kind == "busy":
                    raise busy_error("usage", self.path, timeout_s) from exc
                if kind == "damaged" and attempt == 1:
                    self._recover(str(exc))
                    continue
                raise storage_error("usage", self.path, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, op: Callable[[sqlite3.Connection], T], timeout_s: float) -> T | None:
        """:meth:`_run` for writes: None instead of an exception (logged)."""
        try:
            return self._run(op, timeout_s)
        except StorageError as exc:
            log.info("usage ledger write not done now: %s", exc)
            return None
        except Exception as exc:  # never let the ledger break a generation (nor print a traceback)
            log.info("usage ledger write failed", exc_info=True)
            self._warn(f"The usage ledger {self.path} could not record a request ({type(exc).__name__}: "
                       f"{redact(str(exc))}); the answer was not affected.")  # fmt: skip
            return None

    def _values(self, rec: GenerationRecord) -> list[Any]:
        values = [getattr(rec, c) for c in COLUMNS]
        values[COLUMNS.index("estimated")] = int(rec.estimated)
        values[COLUMNS.index("endpoint")] = clean_url(rec.endpoint)
        if rec.error is not None:
            values[COLUMNS.index("error")] = redact(rec.error)
        if rec.cost_usd is not None:
            try:
                values[COLUMNS.index("cost_usd")] = str(Decimal(rec.cost_usd))
            except InvalidOperation:
                values[COLUMNS.index("cost_usd")] = None
        return [*values, self._writer, time.time()]

    def _insert(self, db: sqlite3.Connection, rec: GenerationRecord) -> int:
        sql = f"INSERT INTO generations ({', '.join(ALL_COLUMNS)}) VALUES ({', '.join('?' * len(ALL_COLUMNS))})"
        return int(db.execute(sql, self._values(rec)).lastrowid or 0)

    def _store(self, db: sqlite3.Connection, row_id: int | None, rec: GenerationRecord) -> int:
        """Write the final figures into row ``row_id`` (ours), or a new row; return its id."""
        if row_id is not None:
            sets = ", ".join(f"{c} = ?" for c in ALL_COLUMNS)
            cur = db.execute(f"UPDATE generations SET {sets} WHERE id = ? AND writer = ?",
                             (*self._values(rec), row_id, self._writer))  # fmt: skip
            if cur.rowcount > 0:
                return row_id
        return self._insert(db, rec)

    def _drain(self, db: sqlite3.Connection) -> dict[int, int]:
        """Write the pending records in order; return {id(record): row id}. A record the
        database refuses (a bad value) is dropped with a warning instead of blocking the rest;
        busy and damage propagate (the records stay pending)."""
        stored: dict[int, int] = {}
        while self._pending:
            row_id, rec = self._pending[0]
            try:
                stored[id(rec)] = self._store(db, row_id, rec)
            except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
                    ValueError, TypeError, OverflowError) as exc:  # fmt: skip
                self._warn(f"A usage record ({rec.provider}:{rec.model}) could not be written to "
                           f"{self.path} ({exc}); it was dropped.")  # fmt: skip
            self._pending.pop(0)
        return stored

    def _finish_row(self, row_id: int | None, rec: GenerationRecord) -> int | None:
        with self._lock:
            self._pending.append((row_id, rec))
            stored = self._write(self._drain, self.busy_timeout_s)
            return None if stored is None else stored.get(id(rec))

    # ------------------------------------------------------------------ writes
    def open(self, rec: GenerationRecord) -> int | None:
        """Open the row of a request that starts now (finish reason "running"); return its
        id, or None when the ledger cannot be written right now (then :meth:`close` with
        None still records the final row). Waits at most :data:`OPEN_WAIT_S` for a lock."""
        rec = replace(rec, finish_reason=RUNNING)
        with self._lock:
            return self._write(lambda db: self._insert(db, rec), OPEN_WAIT_S)

    def progress(self, row_id: int | None, figures: RowFigures) -> None:
        """Update a running row with what has arrived so far (one cheap UPDATE; skipped
        when the file is busy). Call it at most about once a second while streaming."""
        if row_id is None:
            return
        f = figures
        sql = ("UPDATE generations SET completion_tokens = ?, prompt_tokens = COALESCE(?, prompt_tokens), "
               "cost_usd = COALESCE(?, cost_usd), duration_s = COALESCE(?, duration_s), "
               "ttft_s = COALESCE(?, ttft_s), tokens_per_s = COALESCE(?, tokens_per_s), updated_at = ? "
               "WHERE id = ? AND writer = ? AND finish_reason = 'running'")  # fmt: skip
        params = (int(f.completion_tokens), f.prompt_tokens, f.cost_usd, f.duration_s, f.ttft_s, f.tokens_per_s,
                  time.time(), row_id, self._writer)  # fmt: skip
        with self._lock:
            self._write(lambda db: db.execute(sql, params), PROGRESS_WAIT_S)

    @overload
    def close(self) -> None: ...

    @overload
    def close(self, row_id: int | None, rec: GenerationRecord) -> None: ...

    def close(self, row_id: Any = _NO_ARGS, rec: GenerationRecord | None = None) -> None:
        """Close the row ``row_id`` (from :meth:`open`; None: it could not be opened) with
        the final record ``rec``. Waits up to :attr:`busy_timeout_s` for a lock, then keeps
        the record in memory and writes it later (the next write, or :meth:`shutdown`).

        Without arguments: close the database, as :meth:`shutdown`."""
        if row_id is _NO_ARGS and rec is None:
            self.shutdown()
            return
        if rec is None:
            raise TypeError("close(row_id, rec) needs the final record")
        self._finish_row(row_id, rec)

    def record(self, rec: GenerationRecord) -> int:
        """Append one finished generation; return its row id (0 when it could not be written
        yet: it is kept and written later, see :meth:`close`)."""
        return self._finish_row(None, rec) or 0

    def annotate(self, conversation_id: str, note: str) -> None:
        """Add ``note`` to the error text of this process's latest row of ``conversation_id``
        (e.g. that saving the answer to the history was pending); never raises."""
        with self._lock:
            for i in range(len(self._pending) - 1, -1, -1):  # not written yet: note it in memory
                row_id, rec = self._pending[i]
                if rec.conversation_id == conversation_id:
                    self._pending[i] = (row_id, replace(rec, error=f"{rec.error} | {note}" if rec.error else note))
                    return
            sql = ("UPDATE generations SET error = CASE WHEN COALESCE(error, '') = '' THEN ?1 ELSE error || ' | ' || ?1 "
                   "END WHERE id = (SELECT MAX(id) FROM generations WHERE conversation_id = ?2 AND writer = ?3)")  # fmt: skip
            self._write(lambda db: db.execute(sql, (redact(note), conversation_id, self._writer)), self.busy_timeout_s)

    @property
    def pending(self) -> int:
        """Records waiting to be written (the file was busy)."""
        return len(self._pending)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._run(lambda db: db.execute(sql, params).fetchall(), self.busy_timeout_s)

    def shutdown(self) -> None:
        """Write what is still pending (waiting up to :attr:`busy_timeout_s`), then close the
        database (idempotent). Records that still cannot be written become a warning."""
        with self._lock:
            if self._pending and not self._closed:
                try:
                    self._run(self._drain, self.busy_timeout_s)
                except StorageError as exc:
                    lost = len(self._pending)
                    tokens = sum(r.prompt_tokens + r.completion_tokens for _, r in self._pending)
                    self._warn(join_sentences(exc.message, f"{lost} request(s) ({tokens} tokens) could not be "
                                              "recorded in the usage ledger; the answers were not affected."))  # fmt: skip
                    self._pending.clear()
            self._closed = True
            if self._db is not None:
                try:
                    self._db.close()
                except sqlite3.Error:  # pragma: no cover - closing twice is harmless
                    pass
                self._db = None

