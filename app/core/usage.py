"""The usage ledger: one SQLite row per generation (running, finished, failed, cancelled or
interrupted), with exact totals by model, day and conversation, and a CSV export.

Costs are stored as decimal TEXT and summed exactly with a Decimal aggregate, so totals
never drift. The schema and the write side (rows opened at the start of a request, updated
while it streams, closed at its end; busy and damaged files) are in
:mod:`app.core.usage_store`.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from app.core.errors import redact
from app.core.sqlite_db import sql_terms
from app.core.types import GenerationRecord
from app.core.urls import clean_url
from app.core.usage_store import (
    AGG_SQL,
    COLUMNS,
    INTERRUPTED,
    INTERRUPTED_ERROR,
    OPEN_WAIT_S,
    PROGRESS_WAIT_S,
    RUNNING,
    SCHEMA_VERSION,
    LedgerStore,
    RowFigures,
)

log = logging.getLogger(__name__)

__all__ = [
    "INTERRUPTED",
    "INTERRUPTED_ERROR",
    "OPEN_WAIT_S",
    "PROGRESS_WAIT_S",
    "RUNNING",
    "SCHEMA_VERSION",
    "RowFigures",
    "RowProgress",
    "UsageLedger",
    "UsageTotals",
]


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


def _exported(column: str, value: Any) -> Any:
    """A value as exported: endpoints without credentials, errors redacted (rows written
    before either rule existed included)."""
    if column == "endpoint" and isinstance(value, str):
        return clean_url(value, register=False)
    if column == "error" and isinstance(value, str):
        return redact(value)
    return value


def _record(row: sqlite3.Row) -> GenerationRecord:
    data = {name: row[name] for name in COLUMNS}
    data["estimated"] = bool(data["estimated"])
    return GenerationRecord(**data)



class UsageLedger(LedgerStore):
    """Ledger of generations with totals by model, day and conversation.

    Safe to call from several threads. Writes (:meth:`open`, :meth:`progress`,
    :meth:`close`, :meth:`record`) never raise; reads raise :class:`StorageBusy` /
    :class:`StorageError` with a clear message when the file cannot be read.
    """

    def totals(
        self, *, conversation_id: str | None = None, model: str | None = None, since: float | None = None
    ) -> UsageTotals:
        """Totals over all rows, or those of one conversation / model (``provider:model`` or
        a bare name) / since a Unix time."""
        provider, sep, name = (model or "").partition(":")
        where, params = sql_terms({"conversation_id = ?": conversation_id, "provider = ?": provider if sep else None,
                                   "model = ?": (name if sep else model) if model else None,
                                   "started_at >= ?": since}, " AND ")  # fmt: skip
        clause = f"WHERE {where}" if where else ""
        return _totals(self._query(f"SELECT {AGG_SQL} FROM generations {clause}", params)[0])

    def totals_by_model(self, since: float | None = None) -> dict[str, UsageTotals]:
        """Totals keyed ``provider:model``, most expensive first, then by requests."""
        rows = self._query(
            f"SELECT provider || ':' || model AS k, {AGG_SQL} FROM generations WHERE started_at >= ? GROUP BY k",
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
            f"SELECT date(started_at, 'unixepoch', 'localtime') AS d, {AGG_SQL} FROM generations "
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
            f"SELECT conversation_id, {AGG_SQL} FROM generations WHERE conversation_id IS NOT NULL GROUP BY conversation_id"
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
            writer.writerow(("time", *COLUMNS))
            for r in rows:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"]))
                writer.writerow((stamp, *("" if r[c] is None else _exported(c, r[c]) for c in COLUMNS)))
        return len(rows)



class ProgressSink(Protocol):
    """What :class:`RowProgress` needs: :meth:`UsageLedger.progress`."""

    def progress(self, row_id: int | None, figures: RowFigures) -> None:
        """Update a running row."""
        ...


class RowProgress:
    """Throttled :meth:`UsageLedger.progress` for one running row.

    Call :meth:`tick` on every streamed token (it costs a clock read): the first call
    writes at once, later ones at most every ``interval_s``; a tick inside the interval
    schedules one trailing write on the running asyncio loop (if any), so the row catches
    up with a stream that stalls (a held or slow server) and a killed process leaves what
    had arrived up to ``interval_s`` before. ``figures()`` is called only when writing. Call :meth:`cancel` when the stream ends (before closing the row).
    """

    def __init__(
        self,
        ledger: ProgressSink,
        row_id: int | None,
        figures: Callable[[], RowFigures],
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.row_id = row_id
        self.figures = figures
        self.interval_s = interval_s
        self.clock = clock
        self.writes = 0
        self._last = -float("inf")
        self._timer: asyncio.TimerHandle | None = None
        self._done = row_id is None

    def tick(self) -> None:
        """Something arrived: write now, or soon (throttled)."""
        if self._timer is not None or self._done:  # a write is already on its way
            return
        now = self.clock()
        wait = self._last + self.interval_s - now
        if wait <= 0:
            self._write()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): the next tick writes
                return
            self._timer = loop.call_later(wait, self._write)

    def _write(self) -> None:
        self._timer = None
        if self._done:
            return
        self._last = self.clock()
        try:
            self.ledger.progress(self.row_id, self.figures())
            self.writes += 1
        except Exception:  # progress is best effort: never break the stream
            log.debug("ledger progress update failed", exc_info=True)

    def cancel(self) -> None:
        """Stop: no more writes (a pending trailing write is dropped)."""
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
