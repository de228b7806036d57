"""A grid's cells and figures (app/core/grid/cells.py): states, the figures line (live and
final), the JSON form, column summaries (cost, mean and p95 latency, pass rate) and the
estimate shown before a run."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core.events import UsageReport
from app.core.grid.assertions import AssertResult
from app.core.grid.cells import Cell, ColumnSummary, GridEstimate, p95, summarize
from app.core.run_events import LiveFigures
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef


def request(model: str = "openai:gpt-4o-mini") -> GenerationRequest:
    return GenerationRequest(ModelRef.parse(model), (ChatMessage("user", "hi"),), GenerationParams())


def done(latency: float | None = 1.0, cost: str | None = "0.001", *, ok: bool = True, col: int = 0) -> Cell:
    return Cell(0, col, request(), status="done", text="Paris", usage=UsageReport(10, 4),
                cost_usd=None if cost is None else Decimal(cost), latency_s=latency,
                asserts=[AssertResult("contains", ok, "")])  # fmt: skip


def test_states_and_the_pass_verdict() -> None:
    cell = Cell(1, 2, request())
    assert cell.key == (1, 2) and not cell.ended and not cell.active and cell.passed is None
    cell.status = "queued"
    assert cell.active and cell.passed is None
    assert done().passed is True and done(ok=False).passed is False
    for status in ("failed", "invalid"):
        assert Cell(0, 0, status=status).passed is False and Cell(0, 0, status=status).ended
    assert Cell(0, 0, status="cancelled").passed is None


def test_reset_forgets_the_outcome_but_keeps_the_place_and_attempts() -> None:
    cell = done()
    cell.attempt, cell.error, cell.phase, cell.t_started = 2, "x", "loading", 1.0
    cell.reset()
    assert (cell.text, cell.usage, cell.cost_usd, cell.latency_s, cell.asserts, cell.error) == ("", None, None, None, [], None)
    assert cell.phase is None and cell.t_started is None
    assert (cell.key, cell.attempt, cell.status) == ((0, 0), 2, "done")


def test_the_figures_line_final_live_and_while_loading() -> None:
    cell = done(latency=1.25)
    cell.ttft_s, cell.tokens_per_s = 0.21, 30.5
    assert cell.figures_line() == "4 tokens · $0.001000 · first token 0.21 s · 30.5 tok/s · 1.25 s"
    assert cell.short_figures() == "4 tok · $0.001000 · ttft 0.21 s · 30 tok/s · 1.25 s"
    cell.usage = UsageReport(10, 4, estimated=True)
    assert cell.figures_line().startswith("~4 tokens") and cell.short_figures().startswith("~4 tok")
    live = Cell(0, 0, request(), status="running", live=LiveFigures(tokens=12, tokens_per_s=6.0, cost_usd=Decimal("0.0002")))
    live.t_started, live.t_loaded, live.t_first = 10.0, 12.0, 12.5  # ttft counts from the end of the load
    assert "12 tokens" in live.figures_line() and "0.50 s" in live.figures_line()
    assert live.short_figures() == "12 tok · $0.000200 · ttft 0.50 s · 6 tok/s"
    loading = Cell(0, 0, request("local:tiny"), status="running", phase="loading 40%")
    assert loading.figures_line() == "loading 40%" == loading.short_figures()
    free = Cell(0, 0, request("mock:echo"), status="done", usage=UsageReport(1, 2))
    assert free.figures_line() == "2 tokens · free"


def test_current_text_is_the_runs_while_streaming() -> None:
    class FakeRun:
        text = "streamed so far"

    cell = Cell(0, 0, request(), status="running", text="old", run=FakeRun())  # type: ignore[arg-type]
    assert cell.current_text == "streamed so far"
    cell.status = "done"
    assert cell.current_text == "old"


def test_to_dict_is_plain_json() -> None:
    cell = done(latency=0.5)
    cell.error = None
    assert cell.to_dict() == {
        "text": "Paris", "usage": {"prompt_tokens": 10, "completion_tokens": 4, "estimated": False},
        "cost_usd": 0.001, "ttft_s": None, "latency_s": 0.5, "tokens_per_s": None, "load_s": None,
        "pass": True, "asserts": [{"type": "contains", "pass": True, "reason": ""}], "error": None,
        "tool_calls": [], "score": None, "named_scores": {},
    }  # fmt: skip
    assert Cell(0, 0, status="invalid", error="missing {{x}}").to_dict()["usage"] is None


def test_p95_is_the_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([3.0]) == 3.0
    assert p95([float(i) for i in range(1, 21)]) == 19.0
    assert p95([float(i) for i in range(1, 101)]) == 95.0


def test_summaries_count_cost_latency_and_pass_rate() -> None:
    cells = [done(1.0, "0.001"), done(3.0, "0.002", ok=False), done(2.0, None), Cell(0, 0, status="failed"),
             Cell(0, 0, status="cancelled"), Cell(0, 0, status="running")]  # fmt: skip
    s = summarize(cells)
    assert (s.cells, s.ended, s.passed, s.failed, s.errors, s.cancelled) == (6, 5, 2, 1, 1, 1)
    assert s.cost_usd == Decimal("0.003") and s.unknown_cost == 1
    assert s.mean_latency_s == pytest.approx(2.0) and s.p95_latency_s == 3.0
    assert s.pass_rate == pytest.approx(0.5)
    assert s.sentence() == "$0.003000 (+1 unpriced) · mean 2.00 s · p95 3.00 s · 2/4 pass · 1 stopped"
    assert ColumnSummary().pass_rate is None and ColumnSummary().sentence() == "free · not run"
    unpriced = summarize([done(cost=None)])
    assert unpriced.sentence().startswith("unpriced · ") and unpriced.cost_json is None  # never $0 or "free"
    assert s.cost_json == pytest.approx(0.003) and ColumnSummary().cost_json == 0.0


def test_a_cell_with_an_unknown_cost_says_unpriced() -> None:
    cell = done(cost=None)
    assert "· unpriced ·" in cell.figures_line() and "· unpriced ·" in cell.short_figures()
    assert "$" not in cell.figures_line() and "—" not in cell.short_figures()
    assert "$0.001000" in done().figures_line()


def test_the_estimate_sentence() -> None:
    free = GridEstimate(4, 120, True, Decimal(0), Decimal(0), 0)
    assert free.sentence() == "4 cells · 120 prompt tokens · free"
    priced = GridEstimate(1, 1234, False, Decimal("0.0012"), Decimal("0.03"), 2)
    assert priced.cost_max == Decimal("0.0312")
    assert priced.sentence() == "1 cell · ~1,234 prompt tokens · ≈ $0.001200 in + ≤ $0.0300 out · 2 cells without a known price"
    unpriced = GridEstimate(2, 16, False, Decimal(0), Decimal(0), 2)  # every cell: not "free"
    assert unpriced.sentence() == "2 cells · ~16 prompt tokens · unpriced"
