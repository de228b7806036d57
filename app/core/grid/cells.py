"""A grid's cells and its figures: what each cell holds while it streams and after, its
JSON form (the CLI's ``--json``, the exports and the run store), the column summaries
(total cost, mean and p95 latency, pass rate) and the estimate shown before a run."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from app.core.events import UsageReport
from app.core.figures import DASH, format_cost, format_seconds, format_tokens, speed_parts
from app.core.grid.assert_result import AssertResult
from app.core.grid.assert_text import call_text
from app.core.grid.scoring import Grade
from app.core.tools import ToolCall
from app.core.types import GenerationRequest

if TYPE_CHECKING:
    from app.core.run_events import LiveFigures
    from app.core.runs import Run

CellStatus = Literal["idle", "queued", "running", "grading", "done", "failed", "cancelled", "invalid"]
ENDED: frozenset[str] = frozenset({"done", "failed", "cancelled", "invalid"})


@dataclass(eq=False)
class Cell:
    """One (row, column) of a grid. ``request`` is None for an invalid cell (``error`` says
    why: a missing variable, a bad parameter), which is never sent."""

    row: int
    col: int
    request: GenerationRequest | None = None
    status: CellStatus = "idle"
    text: str = ""
    error: str | None = None
    usage: UsageReport | None = None
    cost_usd: Decimal | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    tokens_per_s: float | None = None
    load_s: float | None = None
    finish_reason: str | None = None
    asserts: list[AssertResult] = field(default_factory=list)
    tool_calls: tuple[ToolCall, ...] = ()
    """The calls the model made (its ``finish_reason`` is then ``tool_calls``)."""
    grade: Grade | None = None
    """The verdict from the assertions (weights, threshold, named scores) once checked."""
    live: LiveFigures | None = None
    run: Run | None = None
    attempt: int = 0
    """How many times the cell was sent (reruns count)."""
    phase: str | None = None
    """While its model loads: what the load is doing (``loading 40%``)."""
    t_started: float | None = None
    t_first: float | None = None
    t_loaded: float | None = None
    t_ended: float | None = None

    @property
    def key(self) -> tuple[int, int]:
        """``(row, col)``."""
        return self.row, self.col

    @property
    def ended(self) -> bool:
        """True once the cell finished, failed, was stopped or is invalid."""
        return self.status in ENDED

    @property
    def active(self) -> bool:
        """True while queued, streaming or being graded."""
        return self.status in ("queued", "running", "grading")

    @property
    def current_text(self) -> str:
        """The answer so far (while streaming: the run's text)."""
        if self.status == "running" and self.run is not None:
            return self.run.text
        return self.text

    @property
    def passed(self) -> bool | None:
        """None until the cell is done; False for an error or a failed assertion."""
        if self.status in ("failed", "invalid"):
            return False
        if self.status != "done":
            return None
        if self.grade is not None:
            return self.grade.passed
        return all(a.passed for a in self.asserts)

    def reset(self) -> None:
        """Forget the outcome (before a rerun)."""
        self.text, self.error, self.usage, self.cost_usd = "", None, None, None
        self.ttft_s = self.latency_s = self.tokens_per_s = self.load_s = None
        self.finish_reason, self.live, self.run, self.phase = None, None, None, None
        self.asserts, self.tool_calls, self.grade = [], (), None
        self.t_started = self.t_first = self.t_loaded = self.t_ended = None

    def calls_line(self) -> str:
        """The calls compactly: ``→ get_weather({"city":"Paris"}) → get_time(...)`` ("" for none)."""
        return " ".join(f"→ {call_text(c)}" for c in self.tool_calls)

    def calls_json(self) -> list[dict[str, Any]]:
        """``[{id, name, arguments}]``, the arguments parsed where they parse as JSON."""
        return [{"id": c.id, "name": c.name,
                 "arguments": c.arguments if (parsed := c.parsed_arguments()) is None else parsed}
                for c in self.tool_calls]  # fmt: skip

    def _live_ttft(self) -> float | None:
        begin = self.t_loaded if self.t_loaded is not None else self.t_started
        return None if self.t_first is None or begin is None else max(0.0, self.t_first - begin)

    def figures_line(self) -> str:
        """``42 tokens · $0.000012 · first token 0.21 s · 30.5 tok/s`` (live while streaming)."""
        if self.status in ("queued", "running") and self.live is not None:
            return replace(self.live, ttft_s=self._live_ttft()).sentence()
        if self.status == "running" and self.phase:
            return self.phase
        parts: list[str] = []
        if self.usage is not None:
            parts.append(f"{format_tokens(self.usage.completion_tokens, estimated=self.usage.estimated)} tokens")
        if self.cost_usd is not None or self.usage is not None:
            provider = self.request.model.provider if self.request is not None else None
            parts.append(cost_text(self.cost_usd, provider))
        parts += speed_parts(self.ttft_s, self.tokens_per_s)
        if self.latency_s is not None:
            parts.append(format_seconds(self.latency_s))
        return " · ".join(parts)

    def short_figures(self) -> str:
        """The figures for a narrow cell: ``40 tok · $0.0001 · ttft 0.21 s · 31 tok/s · 1.2 s``."""
        live = self.live if self.status in ("queued", "running") else None
        if live is None and self.status == "running" and self.phase:
            return self.phase
        tokens = live.tokens if live is not None else (self.usage.completion_tokens if self.usage else None)
        cost = live.cost_usd if live is not None else self.cost_usd
        ttft = self._live_ttft() if live is not None else self.ttft_s
        tps = live.tokens_per_s if live is not None else self.tokens_per_s
        parts: list[str] = []
        if tokens is not None:
            approx = "~" if live is None and self.usage is not None and self.usage.estimated else ""
            parts.append(f"{approx}{tokens:,} tok")
        if cost is not None or tokens is not None:
            parts.append(cost_text(cost, self.request.model.provider if self.request else None))
        if ttft is not None:
            parts.append(f"ttft {ttft:.2f} s")
        if tps is not None:
            parts.append(f"{tps:.0f} tok/s")
        if live is None and self.latency_s is not None:
            parts.append(format_seconds(self.latency_s))
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The outcome's JSON fields (usage, cost, timings, pass, asserts, error)."""
        usage = None
        if self.usage is not None:
            usage = {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens,
                     "estimated": self.usage.estimated}  # fmt: skip
        return {
            "text": self.text,
            "usage": usage,
            "cost_usd": None if self.cost_usd is None else float(self.cost_usd),
            "ttft_s": self.ttft_s,
            "latency_s": self.latency_s,
            "tokens_per_s": self.tokens_per_s,
            "load_s": self.load_s,
            "pass": self.passed,
            "asserts": [a.to_dict() for a in self.asserts],
            "score": None if self.grade is None else self.grade.score,
            "named_scores": {} if self.grade is None else dict(self.grade.named),
            "error": self.error,
            "tool_calls": self.calls_json(),
        }



UNPRICED = "unpriced"
"""A cost that is not known (no price for the model, or an ``apiBaseUrl`` server): never $0."""


def cost_text(cost: Decimal | None, provider: str | None = None) -> str:
    """``$0.0012``, ``free``, or ``unpriced`` when the cost is unknown."""
    text = format_cost(cost, provider=provider)
    return UNPRICED if text == DASH else text


def p95(values: list[float]) -> float | None:
    """The 95th percentile (nearest rank), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class ColumnSummary:
    """The footer of a column (or of the whole grid)."""

    cells: int = 0
    ended: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    cancelled: int = 0
    cost_usd: Decimal = Decimal(0)
    unknown_cost: int = 0
    mean_latency_s: float | None = None
    p95_latency_s: float | None = None

    @property
    def pass_rate(self) -> float | None:
        """Passed over ended cells (stopped ones left out), None before any ended."""
        judged = self.passed + self.failed + self.errors
        return None if not judged else self.passed / judged

    @property
    def cost_text(self) -> str:
        """``$0.0012``, ``free``, ``unpriced``, or ``$0.0012 (+2 unpriced)`` (never $0 for
        cells whose cost is unknown)."""
        if self.unknown_cost and not self.cost_usd:
            return UNPRICED
        cost = format_cost(self.cost_usd)
        return cost + (f" (+{self.unknown_cost} {UNPRICED})" if self.unknown_cost else "")

    @property
    def cost_json(self) -> float | None:
        """The known cost for JSON: None (null) when every ended cell's cost is unknown."""
        return None if self.unknown_cost and not self.cost_usd else float(self.cost_usd)

    def sentence(self) -> str:
        """``$0.0012 · mean 0.42 s · p95 0.80 s · 2/3 pass``."""
        parts = [self.cost_text]
        if self.mean_latency_s is not None:
            parts += [f"mean {format_seconds(self.mean_latency_s)}", f"p95 {format_seconds(self.p95_latency_s)}"]
        judged = self.passed + self.failed + self.errors
        if judged:
            parts.append(f"{self.passed}/{judged} pass")
        if self.cancelled:
            parts.append(f"{self.cancelled} stopped")
        if not judged and not self.cancelled:
            parts.append("not run")
        return " · ".join(parts)


def summarize(cells: Iterable[Cell]) -> ColumnSummary:
    """Totals over ``cells``."""
    items = list(cells)
    ended = [c for c in items if c.ended]
    latencies = [c.latency_s for c in ended if c.status == "done" and c.latency_s is not None]
    cost = sum((c.cost_usd for c in ended if c.cost_usd is not None), Decimal(0))
    unknown = sum(1 for c in ended if c.cost_usd is None and c.usage is not None)
    return ColumnSummary(
        cells=len(items),
        ended=len(ended),
        passed=sum(1 for c in ended if c.passed is True),
        failed=sum(1 for c in ended if c.status == "done" and c.passed is False),
        errors=sum(1 for c in ended if c.status in ("failed", "invalid")),
        cancelled=sum(1 for c in ended if c.status == "cancelled"),
        cost_usd=cost,
        unknown_cost=unknown,
        mean_latency_s=sum(latencies) / len(latencies) if latencies else None,
        p95_latency_s=p95(latencies),
    )


@dataclass(frozen=True, slots=True)
class GridEstimate:
    """What a run will send, before anything is sent."""

    cells: int
    prompt_tokens: int
    exact: bool
    cost_in: Decimal
    cost_out_max: Decimal
    unpriced: int
    """Cells whose model has no known price (left out of the costs)."""
    unbounded: int = 0
    """Cells without a max tokens limit (their output cost has no upper bound)."""

    @property
    def cost_max(self) -> Decimal:
        """The most the priced cells can cost (prompt plus every cell's max tokens)."""
        return self.cost_in + self.cost_out_max

    def sentence(self) -> str:
        """``12 cells · ~1,234 prompt tokens · ≈ $0.0012 in + ≤ $0.0300 out``."""
        tokens = format_tokens(self.prompt_tokens, estimated=not self.exact)
        text = f"{self.cells} cell{'s' if self.cells != 1 else ''} · {tokens} prompt tokens"
        if self.cost_max == 0 and not self.unpriced:
            return text + " · free"
        if self.cost_max == 0:  # every cell with a price is free, the others unpriced
            return text + f" · {UNPRICED}"
        text += f" · ≈ {format_cost(self.cost_in)} in + ≤ {format_cost(self.cost_out_max)} out"
        if self.unpriced:
            text += f" · {self.unpriced} cell{'s' if self.unpriced != 1 else ''} without a known price"
        return text
