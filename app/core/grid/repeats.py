"""Figures of a grid run with ``repeat: N`` (promptfoo's ``evaluateOptions.repeat``): each
cell is sent N times, and every (prompt, test, provider) gets its pass count and the mean
and spread (sample standard deviation) of its latency and cost over the N runs."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.core.figures import format_cost, format_seconds
from app.core.grid.cells import Cell
from app.core.grid.model import Row


@dataclass(frozen=True, slots=True)
class RepeatStats:
    """One cell's N runs: ``row`` is its first run's row index."""

    row: int
    col: int
    runs: int
    passed: int
    mean_latency_s: float | None
    sd_latency_s: float | None
    mean_cost_usd: float | None
    sd_cost_usd: float | None

    def sentence(self) -> str:
        """``3/5 pass · latency 0.42 s ± 0.05 s · cost $0.0001 ± $0.00001``."""
        parts = [f"{self.passed}/{self.runs} pass"]
        if self.mean_latency_s is not None:
            parts.append(f"latency {format_seconds(self.mean_latency_s)} ± {format_seconds(self.sd_latency_s or 0.0)}")
        if self.mean_cost_usd is not None:
            parts.append(f"cost {format_cost(self.mean_cost_usd)} ± {format_cost(self.sd_cost_usd or 0.0)}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` summary's entry."""
        return {"row": self.row, "col": self.col, "runs": self.runs, "passed": self.passed,
                "mean_latency_s": self.mean_latency_s, "sd_latency_s": self.sd_latency_s,
                "mean_cost_usd": self.mean_cost_usd, "sd_cost_usd": self.sd_cost_usd}  # fmt: skip


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def repeat_stats(rows: list[Row], cells: Mapping[tuple[int, int], Cell]) -> list[RepeatStats]:
    """The figures of each repeated cell (empty when nothing is repeated)."""
    groups: dict[tuple[int, int, int], list[Cell]] = {}
    first: dict[tuple[int, int, int], int] = {}
    for (r, c), cell in sorted(cells.items()):
        row = rows[r]
        key = (row.prompt_index, -1 if row.test_index is None else row.test_index, c)
        groups.setdefault(key, []).append(cell)
        first.setdefault(key, r)
    out: list[RepeatStats] = []
    for key, group in groups.items():
        if len(group) < 2:
            continue
        ended: Iterable[Cell] = [g for g in group if g.ended]
        done = [g for g in ended if g.status == "done"]
        lat = _mean_sd([g.latency_s for g in done if g.latency_s is not None])
        cost = _mean_sd([float(g.cost_usd) for g in done if g.cost_usd is not None])
        out.append(RepeatStats(first[key], key[2], len(group), sum(1 for g in group if g.passed is True), *lat, *cost))
    return out
