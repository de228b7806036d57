"""What ``grid`` prints: a progress bar on a terminal (cells done of total, cost so far,
ETA; on a pipe one line per finished cell instead), and the pass/fail table at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from app.cli.progress import TerminalFeedback, format_duration
from app.core.figures import format_seconds
from app.core.grid.cells import Cell, GridEstimate, summarize
from app.core.grid.model import Row, var_text
from app.core.grid.repeats import repeat_stats
from app.core.grid.runner import GridRunner

REDRAW_S = 0.1


def verdict(cell: Cell) -> str:
    """PASS, FAIL, ERROR, STOPPED or a dash (not run)."""
    if cell.status in ("failed", "invalid"):
        return "ERROR"
    if cell.status == "cancelled":
        return "STOPPED"
    if cell.passed is None:
        return "-"
    return "PASS" if cell.passed else "FAIL"


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


class GridProgress:
    """Feedback while a grid runs, on ``err`` (see the module doc)."""

    def __init__(self, err: TextIO, runner_ref: Callable[[], GridRunner | None], *,
                 clock: Callable[[], float] = time.perf_counter) -> None:  # fmt: skip
        self.err = err
        self.screen = TerminalFeedback(err, live=False, clock=clock)
        self.tty = self.screen.tty
        self._runner = runner_ref
        self._clock = clock
        self._t0 = clock()
        self._last = float("-inf")

    def estimate(self, estimate: GridEstimate) -> None:
        """The estimate before anything is sent (one line)."""
        self.err.write(f"grid: {estimate.sentence()}\n")
        self.err.flush()
        self._t0 = self._clock()

    def on_cell(self, cell: Cell, what: str) -> None:
        """The runner's listener."""
        runner = self._runner()
        if runner is None or what == "text":
            return
        cells = runner.cells.values()
        done = sum(1 for c in cells if c.ended)
        total = len(runner.cells)
        cost = summarize(cells).cost_text
        if not self.tty:
            if what == "status" and cell.ended:
                row, variant = runner.rows[cell.row], runner.config.variants[cell.col]
                took = f" · {format_seconds(cell.latency_s)}" if cell.latency_s is not None else ""
                self.err.write(f"[{done}/{total}] {verdict(cell):<7} {_fit(variant.title, 28)} · {row.label}{took}\n")
                self.err.flush()
            return
        now = self._clock()
        if now - self._last < REDRAW_S and done < total:
            return
        self._last = now
        sep = self.screen.sep
        line = f"{self.screen.bar(done / max(1, total))} {done}/{total} cells{sep}{cost}"
        elapsed = now - self._t0
        if 0 < done < total and elapsed > 0.5:
            line += f"{sep}ETA {format_duration(elapsed * (total - done) / done)}"
        self.screen.status(line)

    def clear(self) -> None:
        """Erase the bar (terminal)."""
        self.screen.clear()


def table(runner: GridRunner, *, width: int = 18) -> str:
    """The pass/fail table: rows are test cases, columns variants, with column footers, then
    one line per failed check or error, then the totals."""
    variants = runner.config.variants
    cols = [c for c in range(len(variants)) if any(k[1] == c for k in runner.cells)]
    rows = [r for r in runner.rows if any(k[0] == r.index for k in runner.cells)]
    label_w = min(32, max([len(_row_label(r)) for r in rows] + [10]))
    lines = [" " * label_w + "  " + "  ".join(f"{_fit(variants[c].title, width):<{width}}" for c in cols)]
    for r in rows:
        cells = [runner.cells.get((r.index, c)) for c in cols]
        lines.append(f"{_fit(_row_label(r), label_w):<{label_w}}  "
                     + "  ".join(f"{verdict(cell) if cell else '':<{width}}" for cell in cells))  # fmt: skip
    summaries = [runner.column_summary(c) for c in cols]
    footer = {
        "cost": [s.cost_text for s in summaries],
        "latency mean": [format_seconds(s.mean_latency_s) for s in summaries],
        "latency p95": [format_seconds(s.p95_latency_s) for s in summaries],
        "pass rate": ["-" if s.pass_rate is None else f"{s.passed}/{s.passed + s.failed + s.errors}" for s in summaries],
    }
    metrics = [runner.column_metrics(c) for c in cols]
    for name in sorted({n for m in metrics for n in m.means}):  # named scores: each column's mean
        footer[name] = [f"{m.means[name]:.2f}" if name in m.means else "-" for m in metrics]
    for name, _ in runner.config.derived_metrics:  # over the summed named scores, as promptfoo
        footer[name] = ["-" if m.derived.get(name) is None else f"{m.derived[name]:.4g}" for m in metrics]
    lines.append("-" * (label_w + 2 + (width + 2) * len(cols)))
    for name, values in footer.items():
        lines.append(f"{name:<{label_w}}  " + "  ".join(f"{v:<{width}}" for v in values))
    problems, calls = [], []
    for key in sorted(runner.cells):
        cell = runner.cells[key]
        where = f"{_row_label(runner.rows[cell.row])} × {variants[cell.col].title}"
        if cell.tool_calls:
            calls.append(f"  CALLS {where}: {_fit(cell.calls_line(), 160)}")
        if cell.error:
            problems.append(f"  ERROR {where}: {cell.error}")
        problems += [f"  FAIL  {where}: {a.type}: {a.reason}" for a in cell.asserts if not a.passed]
    repeats = [f"  REPEAT {_row_label(runner.rows[st.row])} × {variants[st.col].title}: {st.sentence()}"
               for st in repeat_stats(runner.rows, runner.cells)] if runner.config.repeat > 1 else []  # fmt: skip
    for block in (repeats, calls, problems):
        if block:
            lines += ["", *block]
    s = runner.summary()
    wall = runner.wall_s()
    lines += ["", f"{s.cells} cells: {s.passed} passed, {s.failed} failed, {s.errors} errors"
              + (f", {s.cancelled} stopped" if s.cancelled else "")
              + f" · {s.cost_text} · {format_seconds(wall)} · run {runner.run_id}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _row_label(row: Row) -> str:
    if row.test.description:
        return row.label
    first = next(iter(row.vars.values()), None)
    return row.label + (f" · {var_text(first)}" if first is not None else "")
