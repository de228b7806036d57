"""Workbench runs in SQLite (``workbench.sqlite3`` in the app's data folder, next to the
history): each run with its full configuration (the grid file's data), where it came from
(the window or ``python -m app grid``) and every cell's answer, figures and checks, saved as
each cell ends. A run left ``running`` by a killed process is marked ``interrupted`` on
open, its finished cells kept."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError
from app.core.events import UsageReport
from app.core.grid.assert_result import AssertResult
from app.core.grid.cells import Cell
from app.core.grid.config import grid_from_dict
from app.core.grid.model import GridConfig
from app.core.grid.review import CellReview, PairVote, RunReview
from app.core.grid.scoring import Grade
from app.core.sqlite_db import open_database
from app.core.tools import ToolCall

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""1: runs and cells; 2: adds the human review (``reviews``, ``votes``), nothing else changes."""
DB_NAME = "workbench.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    title TEXT NOT NULL,
    origin TEXT NOT NULL,
    source TEXT,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    row INTEGER NOT NULL,
    col INTEGER NOT NULL,
    status TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    error TEXT,
    request TEXT NOT NULL DEFAULT '{}',
    figures TEXT NOT NULL DEFAULT '{}',
    asserts TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, row, col)
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS reviews (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    row INTEGER NOT NULL,
    col INTEGER NOT NULL,
    passed INTEGER,
    score INTEGER,
    comment TEXT NOT NULL DEFAULT '',
    blind INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, row, col)
);
CREATE TABLE IF NOT EXISTS votes (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    row INTEGER NOT NULL,
    a INTEGER NOT NULL,
    b INTEGER NOT NULL,
    winner TEXT NOT NULL,
    blind INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, row, a, b)
);
"""


def store_path(data_dir: Path) -> Path:
    """Where the Workbench keeps its runs."""
    return data_dir / DB_NAME


@dataclass(frozen=True, slots=True)
class RunHeader:
    """A stored run, as the list of past runs shows it."""

    id: str
    created_at: float
    updated_at: float
    title: str
    origin: str
    source: str | None
    status: str
    summary: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """``2026-12-02 10:31 · Capitals · 5/6 pass · $0.0012 · cli``."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created_at))
        s = self.summary
        judged = int(s.get("passed", 0)) + int(s.get("failed", 0)) + int(s.get("errors", 0))
        parts = [when, self.title]
        if judged:
            parts.append(f"{s.get('passed', 0)}/{judged} pass")
        if self.status not in ("complete",):
            parts.append(self.status)
        parts.append("CLI" if self.origin == "cli" else "window")
        return " · ".join(parts)


@dataclass(frozen=True)
class StoredRun:
    """A run read back: its header, configuration and cell records by (row, col)."""

    header: RunHeader
    config: GridConfig
    cells: dict[tuple[int, int], dict[str, Any]]


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def cell_record(cell: Cell) -> dict[str, Any]:
    """What the store keeps of a cell (also the JSON export's cell details)."""
    req = cell.request
    request: dict[str, Any] = {}
    if req is not None:
        request = {"model": str(req.model), "endpoint": req.endpoint, "params": req.params.to_dict(),
                   "adapters": [{"path": a.path, "scale": a.scale, "name": a.name, "sha256": a.sha256} for a in req.adapters],
                   "messages": [{"role": m.role, "content": m.content} for m in req.messages]}  # fmt: skip
    usage = None if cell.usage is None else {
        "prompt_tokens": cell.usage.prompt_tokens, "completion_tokens": cell.usage.completion_tokens,
        "cached_prompt_tokens": cell.usage.cached_prompt_tokens, "estimated": cell.usage.estimated}  # fmt: skip
    # the tool calls are kept with the figures (no new column: older stores read the same)
    figures = {"usage": usage, "cost_usd": None if cell.cost_usd is None else str(cell.cost_usd),
               "ttft_s": cell.ttft_s, "latency_s": cell.latency_s, "tokens_per_s": cell.tokens_per_s,
               "load_s": cell.load_s, "finish_reason": cell.finish_reason, "attempt": cell.attempt,
               "tool_calls": [c.to_json() for c in cell.tool_calls],
               "grade": None if cell.grade is None else cell.grade.to_dict()}  # fmt: skip
    return {"status": cell.status, "text": cell.text, "error": cell.error, "request": request, "figures": figures,
            "asserts": [a.to_dict() for a in cell.asserts]}  # fmt: skip


def restore_cell(cell: Cell, record: dict[str, Any]) -> None:
    """Fill ``cell`` with a stored record (a reopened run)."""
    status = record.get("status", "idle")
    cell.status = status if status in ("done", "failed", "cancelled") else "cancelled"
    if status in ("queued", "running", "grading"):  # a run that was killed mid-cell
        cell.error = "interrupted (the app was closed)"
    cell.text = record.get("text") or ""
    cell.error = record.get("error") or cell.error
    figures = record.get("figures") or {}
    usage = figures.get("usage")
    if isinstance(usage, dict):
        cell.usage = UsageReport(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                                 int(usage.get("cached_prompt_tokens", 0)), bool(usage.get("estimated")))  # fmt: skip
    try:
        cell.cost_usd = None if figures.get("cost_usd") is None else Decimal(str(figures["cost_usd"]))
    except InvalidOperation:
        cell.cost_usd = None
    cell.ttft_s, cell.latency_s = figures.get("ttft_s"), figures.get("latency_s")
    cell.tokens_per_s, cell.load_s = figures.get("tokens_per_s"), figures.get("load_s")
    cell.finish_reason = figures.get("finish_reason")
    cell.attempt = int(figures.get("attempt") or 0)
    calls = figures.get("tool_calls")
    cell.tool_calls = tuple(ToolCall.from_json(c) for c in calls if isinstance(c, dict)) if isinstance(calls, list) else ()
    cell.asserts = [AssertResult.from_dict(a) for a in record.get("asserts") or [] if isinstance(a, dict)]
    grade = figures.get("grade")
    cell.grade = Grade.from_dict(grade) if isinstance(grade, dict) else None


def _migrate(db: Any, found: int) -> None:
    """Version 1 -> 2 only adds the review tables (the schema script creates them): the runs
    and cells of an older file are read as they are."""
    if found and found < SCHEMA_VERSION:
        log.info("Workbench runs: schema %d -> %d (adding the review tables)", found, SCHEMA_VERSION)


def _interrupt(db: Any) -> None:
    db.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")


class RunStore:
    """The Workbench's runs (thread-safe: one connection guarded by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db, self.warnings = open_database(
            path, what="Workbench runs", schema=_SCHEMA, version=SCHEMA_VERSION,
            newer_hint="Update the app to open it.",
            fresh_note="a new list of runs was started (the old file is kept for recovery)",
            after_schema=_interrupt, migrate=_migrate, pragmas=("foreign_keys=ON",),
        )  # fmt: skip

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, params)

    # -- the RunSink protocol of the grid runner -------------------------------------------------
    def begin(self, run_id: str, config: GridConfig, *, origin: str, source: str | None) -> None:
        """Record a run that starts (again, for a rerun of a stored run's cell)."""
        now = time.time()
        title = config.description or (Path(source).stem if source else "Workbench run")
        self._exec(
            "INSERT INTO runs (id, created_at, updated_at, title, origin, source, status, config) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?) ON CONFLICT(id) DO UPDATE SET status = 'running', "
            "updated_at = excluded.updated_at, config = excluded.config",
            (run_id, now, now, title, origin, source, json.dumps(config.to_dict(), ensure_ascii=False, default=str)),
        )

    def save_cell(self, run_id: str, cell: Cell) -> None:
        """Save one cell's outcome (replacing what was there)."""
        rec = cell_record(cell)
        self._exec(
            "INSERT OR REPLACE INTO cells (run_id, row, col, status, text, error, request, figures, asserts, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, cell.row, cell.col, rec["status"], rec["text"], rec["error"], json.dumps(rec["request"]),
             json.dumps(rec["figures"]), json.dumps(rec["asserts"]), time.time()),
        )

    def finish(self, run_id: str, status: str, summary: dict[str, object]) -> None:
        """Record the run's end and its summary."""
        self._exec("UPDATE runs SET status = ?, summary = ?, updated_at = ? WHERE id = ?",
                   (status, json.dumps(summary, default=str), time.time(), run_id))  # fmt: skip

    # -- reading ---------------------------------------------------------------------------------
    def list_runs(self, limit: int = 200) -> list[RunHeader]:
        """Past runs, newest first."""
        rows = self._exec("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [self._header(r) for r in rows]

    @staticmethod
    def _header(r: Any) -> RunHeader:
        return RunHeader(r["id"], r["created_at"], r["updated_at"], r["title"], r["origin"], r["source"], r["status"],
                         _loads(r["summary"], {}))  # fmt: skip

    def load(self, run_id: str) -> StoredRun:
        """A stored run with its configuration and cells (raises ConfigError when missing)."""
        row = self._exec("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ConfigError(f"There is no stored run '{run_id}'.", hint="Pick one from the list of past runs.")
        config = grid_from_dict(_loads(row["config"], {}), source=f"stored run {run_id}")
        cells: dict[tuple[int, int], dict[str, Any]] = {}
        for c in self._exec("SELECT * FROM cells WHERE run_id = ?", (run_id,)).fetchall():
            cells[(c["row"], c["col"])] = {"status": c["status"], "text": c["text"], "error": c["error"],
                                           "request": _loads(c["request"], {}), "figures": _loads(c["figures"], {}),
                                           "asserts": _loads(c["asserts"], [])}  # fmt: skip
        return StoredRun(self._header(row), config, cells)

    # -- the human review ------------------------------------------------------------------------
    def has_run(self, run_id: str) -> bool:
        """True when ``run_id`` is stored (a run's review can be saved from then on)."""
        return self._exec("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def _keep(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            self._exec(sql, params)
        except sqlite3.IntegrityError as exc:  # the run is not stored (never run)
            raise ConfigError("This grid has not been run yet: ratings are kept with a run.",
                              hint="Run the grid (▶ Run), then rate its cells.") from exc  # fmt: skip

    def save_review(self, run_id: str, row: int, col: int, review: CellReview | None) -> None:
        """Keep a person's review of a cell (None or an empty one: forget it). Raises
        ConfigError when the run is not stored."""
        if review is None or review.empty:
            self._exec("DELETE FROM reviews WHERE run_id = ? AND row = ? AND col = ?", (run_id, row, col))
            return
        self._keep(
            "INSERT OR REPLACE INTO reviews (run_id, row, col, passed, score, comment, blind, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, row, col, None if review.passed is None else int(review.passed), review.score, review.comment,
             int(review.blind), review.updated_at or time.time()),
        )

    def save_vote(self, run_id: str, vote: PairVote) -> None:
        """Keep a pair vote (replacing the earlier one on the same pair; ConfigError when the
        run is not stored)."""
        self._keep("INSERT OR REPLACE INTO votes (run_id, row, a, b, winner, blind, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (run_id, vote.row, vote.a, vote.b, vote.winner, int(vote.blind), vote.updated_at or time.time()))  # fmt: skip

    def delete_vote(self, run_id: str, row: int, a: int, b: int) -> None:
        """Forget the vote on a pair."""
        self._exec("DELETE FROM votes WHERE run_id = ? AND row = ? AND a = ? AND b = ?", (run_id, row, min(a, b), max(a, b)))

    def load_review(self, run_id: str) -> RunReview:
        """The reviews and votes of a run (empty for a run without any, or not stored)."""
        cells: dict[tuple[int, int], CellReview] = {}
        for r in self._exec("SELECT * FROM reviews WHERE run_id = ?", (run_id,)).fetchall():
            score = r["score"] if r["score"] in range(1, 6) else None
            cells[(r["row"], r["col"])] = CellReview(None if r["passed"] is None else bool(r["passed"]), score,
                                                     r["comment"] or "", bool(r["blind"]), r["updated_at"])  # fmt: skip
        votes = [PairVote(v["row"], v["a"], v["b"], v["winner"], bool(v["blind"]), v["updated_at"])
                 for v in self._exec("SELECT * FROM votes WHERE run_id = ?", (run_id,)).fetchall()
                 if v["winner"] in ("a", "b", "tie") and v["a"] < v["b"]]  # fmt: skip
        return RunReview(run_id, cells, votes)

    def delete(self, run_id: str) -> None:
        """Delete a run and its cells."""
        self._exec("DELETE FROM runs WHERE id = ?", (run_id,))

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()


def reopen(scheduler: Any, store: RunStore, run_id: str, **options: Any) -> Any:
    """A :class:`~app.core.grid.runner.GridRunner` for a stored run, its cells filled in
    (rerunning one of them saves into the same run)."""
    from app.core.grid.runner import GridRunner

    stored = store.load(run_id)
    runner = GridRunner(scheduler, stored.config, sink=store, run_id=run_id, origin=stored.header.origin,
                        source=stored.header.source, **options)  # fmt: skip
    for key, record in stored.cells.items():
        cell = runner.cells.get(key)
        if cell is not None and cell.status != "invalid":
            restore_cell(cell, record)
    return runner
