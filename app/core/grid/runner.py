"""Runs a grid through the run scheduler: every cell is a run tagged with the grid run's id
(remote cells run concurrently per endpoint, local ones on the model worker grouped by
model), streams into its :class:`~app.core.grid.cells.Cell`, is checked by its assertions
(``llm-rubric`` through a grader run) and is saved in the run store as it ends. A failing
cell never stops the others. Qt-free: the CLI and the Workbench window both use it.

Cell times are measured from when the cell's request left the queue (``RunStarted``), so a
cell that waited for a free slot is not charged for the wait; a model load is kept apart
(``load_s``) from the time to first token and the latency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from app.core.errors import AppError
from app.core.events import UsageReport
from app.core.grid.assertions import (
    Answer,
    AssertResult,
    check,
    parse_grade,
    rubric_messages,
    rubric_result,
)
from app.core.grid.cells import Cell, ColumnSummary, GridEstimate, summarize
from app.core.grid.config import normalize_model_id
from app.core.grid.model import Assertion, GridConfig, Row, Variant
from app.core.run_events import (
    RunCancelled,
    RunEvent,
    RunFailed,
    RunFinished,
    RunProgress,
    RunStarted,
    RunStats,
    RunText,
)
from app.core.runs import RunScheduler, new_run_id

if TYPE_CHECKING:
    from app.core.engine import GenerationResult

log = logging.getLogger(__name__)

Listener = Callable[[Cell, str], None]
"""Called with a cell and what changed: ``"text"``, ``"stats"`` or ``"status"``."""


class RunSink(Protocol):
    """Where a grid run is kept (the run store)."""

    def begin(self, run_id: str, config: GridConfig, *, origin: str, source: str | None) -> None:
        """A run starts (or starts again)."""
        ...

    def save_cell(self, run_id: str, cell: Cell) -> None:
        """A cell ended (or was graded)."""
        ...

    def finish(self, run_id: str, status: str, summary: dict[str, object]) -> None:
        """The run ended (complete, stopped or interrupted)."""
        ...


def cell_matches(row: Row, variant: Variant, needle: str) -> bool:
    """True when ``needle`` (case-insensitive) is in the row's description, prompt label or
    variables, or in the variant's label or model id (``--filter``)."""
    n = needle.casefold()
    hay = [row.test.description, row.prompt.label, row.label, *(str(v) for v in row.vars.values()),
           variant.title, variant.model]  # fmt: skip
    return any(n in h.casefold() for h in hay if h)


def _same_key(runner: GridRunner, cell: Cell) -> str:
    row = runner.rows[cell.row]
    return repr((cell.request, row.asserts, sorted(row.vars.items(), key=lambda kv: kv[0])))


class GridRunner:
    """One run of a grid (see the module doc). Call :meth:`start` on the running loop."""

    def __init__(self, scheduler: RunScheduler, config: GridConfig, *, sink: RunSink | None = None,
                 run_id: str | None = None, origin: str = "window", source: str | None = None,
                 default_temperature: Callable[[str], float] | None = None,
                 listener: Listener | None = None, only: Iterable[tuple[int, int]] | None = None) -> None:  # fmt: skip
        self.scheduler = scheduler
        self.config = config
        self.sink = sink
        self.run_id = run_id or new_run_id()
        self.origin = origin
        self.source = source
        self.default_temperature = default_temperature
        self.listener = listener
        self.rows = config.rows()
        keep = set(only) if only is not None else None
        self.cells: dict[tuple[int, int], Cell] = {}
        for row in self.rows:
            for col, variant in enumerate(config.variants):
                if keep is None or (row.index, col) in keep:
                    self.cells[(row.index, col)] = self._plan(row, variant, col)
        self.grading_cost = Decimal(0)
        self._tasks: set[asyncio.Task[None]] = set()
        self._begun = False
        self._stopped = False
        self.t_started: float | None = None
        self.t_ended: float | None = None

    # -- planning ------------------------------------------------------------------------------
    def _plan(self, row: Row, variant: Variant, col: int) -> Cell:
        cell = Cell(row.index, col)
        try:
            cell.request = variant.request(row.prompt.messages(row.vars), self.default_temperature)
        except AppError as exc:
            cell.status, cell.error = "invalid", exc.user_message()
        return cell

    def problems(self) -> list[Cell]:
        """Cells that cannot be sent (their ``error`` says why)."""
        return [c for c in self.cells.values() if c.status == "invalid"]

    def cell(self, row: int, col: int) -> Cell | None:
        """The cell at ``(row, col)``."""
        return self.cells.get((row, col))

    def estimate(self) -> GridEstimate:
        """Prompt tokens and cost of every sendable cell (counts with each model's tokenizer
        when it can; this may read a tokenizer from disk, so the window calls it off the loop)."""
        from app.core.tokens import count_chat

        engine = self.scheduler.engine
        tokens, exact, unpriced, unbounded = 0, True, 0, 0
        cost_in, cost_out = Decimal(0), Decimal(0)
        for cell in self.cells.values():
            req = cell.request
            if req is None:
                continue
            try:
                count = engine.registry.get(req.model.provider).count_tokens(req.model.name, list(req.messages))
            except Exception:  # a tokenizer that is not there: a labelled estimate
                count = count_chat(req.model.name, list(req.messages))
            tokens += count.tokens
            exact = exact and count.exact
            price_in = engine.cost(req.model, UsageReport(count.tokens, 0, estimated=True), req.endpoint)
            if price_in is None:
                unpriced += 1
                continue
            cost_in += price_in
            if req.params.max_tokens is None:
                unbounded += 1
            else:
                cost_out += engine.cost(req.model, UsageReport(0, req.params.max_tokens), req.endpoint) or Decimal(0)
        sendable = sum(1 for c in self.cells.values() if c.request is not None)
        return GridEstimate(sendable, tokens, exact, cost_in, cost_out, unpriced, unbounded)

    # -- running -------------------------------------------------------------------------------
    def start(self, keys: Iterable[tuple[int, int]] | None = None) -> int:
        """Send every idle cell (or the cells ``keys``); returns how many were sent."""
        if not self._begun:
            self._begun = True
            self.t_started = time.perf_counter()
            if self.sink is not None:
                self.sink.begin(self.run_id, self.config, origin=self.origin, source=self.source)
        self._stopped = False
        self.t_ended = None
        targets = [self.cells[k] for k in keys] if keys is not None else [c for c in self.cells.values() if c.status == "idle"]
        sent = 0
        for cell in targets:
            if cell.request is None or cell.active:
                continue
            cell.reset()
            cell.status = "queued"
            cell.attempt += 1
            cell.run = self.scheduler.submit(cell.request, on_event=self._listener_for(cell), tag=self.run_id)
            self._tell(cell, "status")
            sent += 1
        return sent

    def _listener_for(self, cell: Cell) -> Callable[[RunEvent], None]:
        def listen(event: RunEvent) -> None:
            self._on_event(cell, event)

        return listen

    def rerun(self, row: int, col: int) -> bool:
        """Send one cell again (False while it is still running, or when it is invalid)."""
        cell = self.cells.get((row, col))
        if cell is None or cell.active or cell.request is None:
            return False
        return self.start([cell.key]) == 1

    def stop(self) -> int:
        """Stop every running cell and grading of this run (finished cells are kept)."""
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        return self.scheduler.cancel_all(tag=self.run_id)

    @property
    def begun(self) -> bool:
        """True once the run was started (it is in the store from then on)."""
        return self._begun

    def adopt(self, old: GridRunner) -> int:
        """Take over the outcomes of ``old``'s ended cells whose request and checks are the
        same here (after an edit of the grid); returns how many were kept."""
        kept = 0
        by_key = {_same_key(old, c): c for c in old.cells.values() if c.ended and c.status != "invalid"}
        for cell in self.cells.values():
            src = by_key.get(_same_key(self, cell)) if cell.request is not None else None
            if src is None:
                continue
            for name in ("status", "text", "error", "usage", "cost_usd", "ttft_s", "latency_s", "tokens_per_s",
                         "load_s", "finish_reason", "attempt", "tool_calls"):  # fmt: skip
                setattr(cell, name, getattr(src, name))
            cell.asserts = list(src.asserts)
            kept += 1
        return kept

    @property
    def running(self) -> bool:
        """True while a cell is queued, streaming or being graded."""
        return any(c.active for c in self.cells.values())

    async def wait(self) -> None:
        """Wait until no cell is active, then record the run's end in the store."""
        while True:
            runs = [c.run for c in self.cells.values() if c.active and c.run is not None]
            tasks = [t for t in self._tasks if not t.done()]
            if not runs and not tasks:
                break
            await asyncio.wait([*(asyncio.ensure_future(r.wait()) for r in runs), *tasks])
            await asyncio.sleep(0)  # let the final events' callbacks (and grading starts) run
        self.finish()

    def finish(self) -> None:
        """Record the end of the run (called by :meth:`wait`; the window calls it when the
        last cell ends)."""
        self.t_ended = time.perf_counter()
        if self.sink is not None and self._begun:
            status = "stopped" if self._stopped or any(c.status == "cancelled" for c in self.cells.values()) else "complete"
            self.sink.finish(self.run_id, status, self.summary_dict())

    # -- events --------------------------------------------------------------------------------
    def _tell(self, cell: Cell, what: str) -> None:
        if self.listener is not None:
            self.listener(cell, what)

    def _on_event(self, cell: Cell, event: RunEvent) -> None:
        if cell.run is None or event.run_id != cell.run.id:
            return  # an event of a run this cell no longer waits for (it was rerun)
        now = time.perf_counter()
        if isinstance(event, RunText):
            if cell.t_first is None:
                cell.t_first, cell.phase = now, None
            self._tell(cell, "text")
        elif isinstance(event, RunStats):
            cell.live = event.figures
            self._tell(cell, "stats")
        elif isinstance(event, RunStarted):
            cell.status, cell.t_started = "running", now
            self._tell(cell, "status")
        elif isinstance(event, RunProgress):
            cell.t_loaded = now
            fraction = event.progress.fraction
            cell.phase = event.progress.phase + (f" {fraction * 100:.0f}%" if fraction is not None else "…")
            self._tell(cell, "stats")
        elif isinstance(event, RunFinished):
            self._finished(cell, event.result, now)
        elif isinstance(event, RunFailed | RunCancelled):
            cell.t_ended = now
            cell.text = event.partial_text
            cell.status = "failed" if isinstance(event, RunFailed) else "cancelled"
            cell.error = event.message if isinstance(event, RunFailed) else None
            self._times(cell)
            self._ended(cell)

    def _times(self, cell: Cell) -> None:
        begin = cell.t_loaded if cell.t_loaded is not None else cell.t_started
        if cell.t_started is not None and cell.t_loaded is not None:
            cell.load_s = cell.t_loaded - cell.t_started
        if begin is not None and cell.t_first is not None:
            cell.ttft_s = max(0.0, cell.t_first - begin)
        if begin is not None and cell.t_ended is not None:
            cell.latency_s = cell.t_ended - begin

    def _finished(self, cell: Cell, result: GenerationResult, now: float) -> None:
        cell.t_ended = now
        cell.text, cell.usage, cell.cost_usd = result.text, result.usage, result.cost_usd
        cell.tokens_per_s, cell.finish_reason = result.tokens_per_s, result.finish_reason
        cell.tool_calls = tuple(result.tool_calls)
        self._times(cell)
        row = self.rows[cell.row]
        offered = cell.request.tools if cell.request is not None else ()
        answer = Answer(cell.text, cell.cost_usd, cell.latency_s, cell.tool_calls, offered)
        rubrics = [a for a in row.asserts if a.base == "llm-rubric"]
        cell.asserts = [check(a, answer, row.vars) for a in row.asserts if a.base != "llm-rubric"]
        if not rubrics:
            cell.status = "done"
            self._ended(cell)
            return
        cell.status = "grading"
        self._tell(cell, "status")
        task = asyncio.ensure_future(self._grade(cell, row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _grade(self, cell: Cell, row: Row) -> None:
        results = list(cell.asserts)
        try:
            for a in (a for a in row.asserts if a.base == "llm-rubric"):
                results.append(await self._grade_one(a, cell.text, row))
        except asyncio.CancelledError:
            results.append(AssertResult("llm-rubric", False, "grading was stopped"))
        cell.asserts = results
        cell.status = "done"
        self._ended(cell)

    async def _grade_one(self, a: Assertion, output: str, row: Row) -> AssertResult:
        grader = self.config.grader
        if a.provider:
            try:
                model, endpoint = normalize_model_id(a.provider)
            except AppError as exc:
                return AssertResult(a.type, False, f"grader {a.provider}: {exc.message}")
            grader = Variant(model, endpoint=endpoint, temperature=0.0)
        if grader is None:
            return AssertResult(a.type, False, "no grader model (set defaultTest.options.provider)")
        try:
            request = grader.request(rubric_messages(a, output, row.vars), lambda _m: 0.0)
            result = await self.scheduler.submit(request, tag=self.run_id)
        except AppError as exc:
            return AssertResult(a.type, False, f"grading failed: {exc.user_message()}")
        if result.cost_usd is not None:
            self.grading_cost += result.cost_usd
        verdict, reason = parse_grade(result.text)
        return rubric_result(a, verdict, reason)

    def _ended(self, cell: Cell) -> None:
        if self.sink is not None:
            try:
                self.sink.save_cell(self.run_id, cell)
            except Exception:  # the store failing must not lose the cell on screen
                log.exception("saving cell %s of run %s failed", cell.key, self.run_id)
        self._tell(cell, "status")

    # -- figures -------------------------------------------------------------------------------
    def column_summary(self, col: int) -> ColumnSummary:
        """The footer of column ``col``."""
        return summarize(c for c in self.cells.values() if c.col == col)

    def summary(self) -> ColumnSummary:
        """Totals over the whole grid."""
        return summarize(self.cells.values())

    def wall_s(self) -> float | None:
        """Seconds from the start of the run to its end (or to now while it runs)."""
        if self.t_started is None:
            return None
        return (self.t_ended if self.t_ended is not None else time.perf_counter()) - self.t_started

    def summary_dict(self) -> dict[str, object]:
        """``{cells, passed, failed, errors, cost_usd, wall_s}`` (and stopped cells, the
        grading cost and the run id)."""
        s = self.summary()
        return {"cells": s.cells, "passed": s.passed, "failed": s.failed, "errors": s.errors,
                "cost_usd": float(s.cost_usd), "wall_s": self.wall_s(), "cancelled": s.cancelled,
                "grading_cost_usd": float(self.grading_cost), "run_id": self.run_id}  # fmt: skip

    def cell_dict(self, cell: Cell) -> dict[str, object]:
        """The CLI's JSON for one cell."""
        row, variant = self.rows[cell.row], self.config.variants[cell.col]
        out: dict[str, object] = {"test": (row.test_index + 1) if row.test_index is not None else None,
                                  "description": row.test.description, "prompt": row.prompt_index + 1,
                                  "vars": dict(row.vars), "provider": variant.model, "label": variant.title}  # fmt: skip
        out.update(cell.to_dict())
        return out
