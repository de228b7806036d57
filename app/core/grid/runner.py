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
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from app.core.errors import AppError
from app.core.grid import limits
from app.core.grid.assert_result import structured_output
from app.core.grid.assertions import (
    Answer,
    Checker,
    check_all,
    check_plain,
    needs_checker,
    needs_logprobs,
    script_context,
    stopped,
)
from app.core.grid.cells import Cell, ColumnSummary, GridEstimate, summarize
from app.core.grid.chains import Chains
from app.core.grid.estimate import estimate_cells
from app.core.grid.limits import LimitError
from app.core.grid.model import GridConfig, MissingVariables, Row, Variant
from app.core.grid.prompts import chat_messages, prompt_allowed
from app.core.grid.repeats import repeat_stats
from app.core.grid.scoring import ColumnMetrics, column_metrics, grade
from app.core.grid.totals import prompt_columns
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
from app.core.types import ChatMessage

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
        self.chains = Chains(config, self.rows)
        self._chars = 0
        self._rendered: dict[tuple[int, int], str] = {}
        self.undefined: dict[str, None] = {}
        """Variables the prompts use that some test does not give (rendered empty)."""
        keep = set(only) if only is not None else None
        self.cells: dict[tuple[int, int], Cell] = {}
        for row in self.rows:
            for col, variant in enumerate(config.variants):
                if (keep is None or (row.index, col) in keep) and prompt_allowed(row.prompt, variant.prompts):
                    self.cells[(row.index, col)] = self._plan(row, variant, col)
        self.grading_cost = Decimal(0)
        self._tasks: set[asyncio.Task[None]] = set()
        self._begun = False
        self._stopped = False
        self.t_started: float | None = None
        self.t_ended: float | None = None

    # -- planning ------------------------------------------------------------------------------
    def _plan(self, row: Row, variant: Variant, col: int, extra: dict[str, object] | None = None) -> Cell:
        cell = Cell(row.index, col)
        try:
            rendered = row.prompt.render({**row.vars, **(self.chains.planning_vars() if extra is None else extra)})
            self.undefined.update(dict.fromkeys(rendered.undefined))
            self._chars += len(rendered.text)
            if self.chains.active:
                self._rendered[(row.index, col)] = rendered.text
            if self._chars > limits.MAX_GRID_CHARS:
                raise LimitError(f"The grid's prompts together are longer than {limits.MAX_GRID_CHARS:,} characters "
                                 f"(the limit).", hint="Use fewer cells or shorter variables.")  # fmt: skip
            for holder in (row.prompt, row.test):  # the prompt's config, then the test's options
                if holder.has_response_format:
                    variant = variant.with_(response_schema=holder.response_schema)
            cell.request = variant.request(chat_messages(rendered.text), self.default_temperature)
            if needs_logprobs(row.asserts) and cell.request.params.logprobs is None:  # perplexity checks
                cell.request = replace(cell.request, params=cell.request.params.with_(logprobs=0))
        except AppError as exc:
            cell.status, cell.error = "invalid", exc.user_message()
        return cell

    def warnings(self) -> list[str]:
        """What the user should know before the run (undefined variables, once per grid)."""
        return [MissingVariables(list(self.undefined), "A prompt").message] if self.undefined else []

    def problems(self) -> list[Cell]:
        """Cells that cannot be sent (their ``error`` says why)."""
        return [c for c in self.cells.values() if c.status == "invalid"]

    def cell(self, row: int, col: int) -> Cell | None:
        """The cell at ``(row, col)``."""
        return self.cells.get((row, col))

    def estimate(self) -> GridEstimate:
        """Prompt tokens and cost of every sendable cell (counts with each model's tokenizer
        when it can; this may read a tokenizer from disk, so the window calls it off the loop)."""
        return estimate_cells(self.scheduler.engine, self.cells.values(), self.config.variants)

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
        heads = self.chains.heads([c for c in targets if c.request is not None and not c.active])
        for cell in targets:
            if cell not in heads and cell.request is not None and not cell.active:
                cell.reset()
                cell.status = "queued"  # waits for the earlier tests of its chain
                self._tell(cell, "status")
        sent = 0
        for cell in heads:
            assert cell.request is not None  # heads are sendable
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
        for cell in self.cells.values():
            if cell.status == "queued" and cell.run is None:  # waiting in a chain: never sent
                cell.status = "cancelled"
                self._tell(cell, "status")
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
                         "load_s", "finish_reason", "attempt", "tool_calls", "grade"):  # fmt: skip
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
        elif isinstance(event, RunStats):  # an apiBaseUrl server's live cost is unknown too
            cell.live = replace(event.figures, cost_usd=None) if self.config.variants[cell.col].unpriced else event.figures
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
        if self.config.variants[cell.col].unpriced:
            cell.cost_usd = None  # apiBaseUrl on another server: unknown, never $0
        cell.tokens_per_s, cell.finish_reason = result.tokens_per_s, result.finish_reason
        cell.tool_calls = tuple(result.tool_calls)
        self._times(cell)
        row = self.rows[cell.row]
        offered = cell.request.tools if cell.request is not None else ()
        schema = cell.request.response_schema if cell.request is not None else None
        answer = Answer(cell.text, cell.cost_usd, cell.latency_s, cell.tool_calls, offered, cell.finish_reason,
                        tuple(t.logprob for t in result.tokens),
                        structured_output(cell.text) if schema is not None and schema.schema is not None else None)  # fmt: skip
        transform = row.test.transform or self.config.default_transform
        if not needs_checker(row.asserts, transform, self.config.variants[cell.col].transform):
            cell.asserts = check_plain(row.asserts, answer, row.vars)
            cell.grade = grade(row.asserts, cell.asserts, row.test.threshold) if row.asserts else None
            cell.status = "done"
            self._ended(cell)
            return
        cell.status = "grading"
        self._tell(cell, "status")
        task = asyncio.ensure_future(self._grade(cell, row, answer, transform))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _grade(self, cell: Cell, row: Row, answer: Answer, transform: str | None) -> None:
        variant = self.config.variants[cell.col]
        prompt = "\n\n".join(m.content for m in cell.request.messages) if cell.request is not None else ""
        context = script_context(row.vars, prompt, row.test.to_dict(), answer,
                                 {"id": variant.model, "label": variant.title})  # fmt: skip
        settings = self.scheduler.engine.registry.context.settings
        checker = Checker(self._ask_grader, lambda: self.scheduler.engine.registry.get("openai"),  # type: ignore[arg-type,return-value]
                          row.test.provider or self.config.grader,  # options.provider, else defaultTest's
                          getattr(settings, "default_grader", None))  # fmt: skip
        try:
            results = await check_all(row.asserts, answer, row.vars, context, transform, checker, variant.transform)
        except asyncio.CancelledError:
            cell.asserts, cell.grade = stopped(row.asserts, answer, row.vars), None
        else:
            cell.asserts = results
            cell.grade = grade(row.asserts, results, row.test.threshold) if row.asserts else None
        cell.status = "done"
        self._ended(cell)

    async def _ask_grader(self, grader: Variant, messages: list[ChatMessage]) -> str:
        request = grader.request(messages, lambda _m: 0.0)
        result = await self.scheduler.submit(request, tag=self.run_id)
        if result.cost_usd is not None:
            self.grading_cost += result.cost_usd
        return result.text

    def _ended(self, cell: Cell) -> None:
        if self.sink is not None:
            try:
                self.sink.save_cell(self.run_id, cell)
            except Exception:  # the store failing must not lose the cell on screen
                log.exception("saving cell %s of run %s failed", cell.key, self.run_id)
        self._tell(cell, "status")
        if self.chains.active and not self._stopped:
            self._continue_chain(cell)

    def _continue_chain(self, cell: Cell) -> None:
        """Send the next test of ``cell``'s chain, rendered with what the chain collected."""
        self.chains.record(cell, self._rendered.get(cell.key, ""))
        nxt = self.chains.next_in_chain(cell, self.cells)
        if nxt is None:
            return
        row = self.rows[nxt.row]
        planned = self._plan(row, self.config.variants[nxt.col], nxt.col, self.chains.vars_for(row, nxt.col))
        nxt.request, nxt.error = planned.request, planned.error
        if nxt.request is None:
            nxt.status = "invalid"
            self._ended(nxt)
            return
        nxt.attempt += 1
        nxt.run = self.scheduler.submit(nxt.request, on_event=self._listener_for(nxt), tag=self.run_id)
        self._tell(nxt, "status")

    # -- figures -------------------------------------------------------------------------------
    def column_summary(self, col: int) -> ColumnSummary:
        """The footer of column ``col``."""
        return summarize(c for c in self.cells.values() if c.col == col)

    def column_metrics(self, col: int) -> ColumnMetrics:
        """The named scores and derived metrics of column ``col``."""
        return column_metrics((c.grade for c in self.cells.values() if c.col == col and c.ended),
                              self.config.derived_metrics)  # fmt: skip

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
        repeats = [r.to_dict() for r in repeat_stats(self.rows, self.cells)] if self.config.repeat > 1 else None
        out: dict[str, object] = {**({"repeats": repeats} if repeats is not None else {}), "cells": s.cells,
               "passed": s.passed, "failed": s.failed, "errors": s.errors,
               "cost_usd": s.cost_json, "unpriced_cells": s.unknown_cost, "wall_s": self.wall_s(), "cancelled": s.cancelled,
               "grading_cost_usd": float(self.grading_cost), "run_id": self.run_id}  # fmt: skip
        metrics = {v.title: self.column_metrics(c) for c, v in enumerate(self.config.variants)}
        if any(m.sums or m.derived for m in metrics.values()):
            out["metrics"] = {label: m.to_dict() for label, m in metrics.items()}
        out["prompt_columns"] = prompt_columns(self.rows, self.cells, self.config.variants, self.config.derived_metrics)
        return out

    def cell_dict(self, cell: Cell) -> dict[str, object]:
        """The CLI's JSON for one cell."""
        row, variant = self.rows[cell.row], self.config.variants[cell.col]
        out: dict[str, object] = {"test": (row.test_index + 1) if row.test_index is not None else None,
                                  "description": row.test.description, "prompt": row.prompt_index + 1,
                                  "vars": dict(row.vars), "provider": variant.model, "label": variant.title}  # fmt: skip
        if self.config.repeat > 1:
            out["repeat"] = row.repeat + 1
        out.update(cell.to_dict())
        return out
