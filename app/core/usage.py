"""The usage ledger: one SQLite row per generation (finished, failed or cancelled).

Costs are stored as decimal TEXT and summed exactly with a Decimal aggregate, so totals
never drift. The database uses WAL and a versioned schema (``PRAGMA user_version``).
"""

from __future__ import annotations

import csv
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.core.sqlite_db import open_database
from app.core.types import GenerationRecord

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_COLUMNS = tuple(f.name for f in fields(GenerationRecord))
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
    error TEXT
);
CREATE INDEX IF NOT EXISTS generations_started ON generations(started_at);
CREATE INDEX IF NOT EXISTS generations_conversation ON generations(conversation_id);
"""
_AGG = """COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
    decsum(cost_usd), COALESCE(SUM(estimated), 0), AVG(ttft_s), AVG(tokens_per_s),
    COALESCE(SUM(cost_usd IS NULL), 0)"""


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Aggregated figures. ``unknown_cost_requests`` counts rows whose price was unknown."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    estimated_requests: int = 0
    avg_ttft_s: float | None = None
    avg_tokens_per_s: float | None = None
    unknown_cost_requests: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


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


def _totals(row: tuple[Any, ...]) -> UsageTotals:
    return UsageTotals(
        requests=int(row[0]),
        prompt_tokens=int(row[1]),
        completion_tokens=int(row[2]),
        cost_usd=Decimal(row[3] or "0"),
        estimated_requests=int(row[4]),
        avg_ttft_s=row[5],
        avg_tokens_per_s=row[6],
        unknown_cost_requests=int(row[7]),
    )


def _record(row: sqlite3.Row) -> GenerationRecord:
    data = {name: row[name] for name in _COLUMNS}
    data["estimated"] = bool(data["estimated"])
    return GenerationRecord(**data)


class UsageLedger:
    """Append-only ledger of generations with totals by model, day and conversation.

    Safe to call from several threads (one connection guarded by a lock).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.warnings: list[str] = []
        """What went wrong on open (a damaged file moved aside), as user messages."""
        self._db, found = open_database(
            path,
            what="usage",
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            newer_hint="Update the app, or move the file away to start a new ledger.",
            fresh_note="a new ledger was started",
            before_schema=lambda db: db.create_aggregate("decsum", 1, _DecimalSum),  # type: ignore[arg-type]
        )
        self.warnings.extend(found)

    def record(self, rec: GenerationRecord) -> int:
        """Append one generation; return its row id."""
        values = [getattr(rec, c) for c in _COLUMNS]
        values[_COLUMNS.index("estimated")] = int(rec.estimated)
        if rec.cost_usd is not None:
            values[_COLUMNS.index("cost_usd")] = str(Decimal(rec.cost_usd))
        sql = f"INSERT INTO generations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._lock:
            cur = self._db.execute(sql, values)
            return int(cur.lastrowid or 0)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def totals(
        self, *, conversation_id: str | None = None, model: str | None = None, since: float | None = None
    ) -> UsageTotals:
        """Totals over all rows, or those of one conversation / model (``provider:model`` or
        a bare name) / since a Unix time."""
        where: list[str] = []
        params: list[Any] = []
        if conversation_id is not None:
            where.append("conversation_id = ?")
            params.append(conversation_id)
        if model is not None:
            provider, sep, name = model.partition(":")
            if sep:
                where.append("provider = ? AND model = ?")
                params += [provider, name]
            else:
                where.append("model = ?")
                params.append(model)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return _totals(self._query(f"SELECT {_AGG} FROM generations {clause}", tuple(params))[0])

    def totals_by_model(self, since: float | None = None) -> dict[str, UsageTotals]:
        """Totals keyed ``provider:model``, most expensive first, then by requests."""
        rows = self._query(
            f"SELECT provider || ':' || model AS k, {_AGG} FROM generations WHERE started_at >= ? GROUP BY k",
            (since if since is not None else float("-inf"),),
        )
        items = [(r[0], _totals(tuple(r)[1:])) for r in rows]
        items.sort(key=lambda kv: (-kv[1].cost_usd, -kv[1].requests, kv[0]))
        return dict(items)

    def totals_by_day(self, days: int = 30, *, now: float | None = None) -> list[tuple[str, UsageTotals]]:
        """One entry per local calendar day for the last ``days`` days (today included),
        oldest first; days without usage have zero totals."""
        if days < 1:
            return []
        now = time.time() if now is None else now
        lt = time.localtime(now)
        first = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday - (days - 1), 0, 0, 0, 0, 0, -1))
        rows = self._query(
            f"SELECT date(started_at, 'unixepoch', 'localtime') AS d, {_AGG} FROM generations "
            "WHERE started_at >= ? AND started_at < ? GROUP BY d",
            (first, now + 1),
        )
        found = {r[0]: _totals(tuple(r)[1:]) for r in rows}
        out: list[tuple[str, UsageTotals]] = []
        for i in range(days):
            day = time.strftime(
                "%Y-%m-%d", time.localtime(time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday - (days - 1) + i, 12, 0, 0, 0, 0, -1)))
            )
            out.append((day, found.get(day, UsageTotals())))
        return out

    def per_conversation(self) -> dict[str, UsageTotals]:
        """Totals keyed by conversation id (rows without one are left out)."""
        rows = self._query(
            f"SELECT conversation_id, {_AGG} FROM generations WHERE conversation_id IS NOT NULL GROUP BY conversation_id"
        )
        return {r[0]: _totals(tuple(r)[1:]) for r in rows}

    def recent(self, limit: int = 100, conversation_id: str | None = None) -> list[GenerationRecord]:
        """The latest records, newest first."""
        if conversation_id is None:
            rows = self._query("SELECT * FROM generations ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM generations WHERE conversation_id = ? ORDER BY started_at DESC, id DESC LIMIT ?",
                (conversation_id, limit),
            )
        return [_record(r) for r in rows]

    def export_csv(self, path: Path, since: float | None = None) -> int:
        """Write every record (or those since a Unix time) as CSV, oldest first; return the
        number of rows written. Adds a local ``time`` column; contains no keys."""
        rows = self._query(
            "SELECT * FROM generations WHERE started_at >= ? ORDER BY started_at, id",
            (since if since is not None else float("-inf"),),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(("time", *_COLUMNS))
            for r in rows:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"]))
                writer.writerow((stamp, *("" if r[c] is None else r[c] for c in _COLUMNS)))
        return len(rows)

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover - closing twice is harmless
                pass
