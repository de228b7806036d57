"""Usage ledger: records, exact totals, groupings, CSV export, schema, threads."""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core.types import GenerationRecord
from app.core.usage import (
    RowFigures,
    RowProgress,
    UsageLedger,
    UsageTotals,
)


def rec(**changes: object) -> GenerationRecord:
    base = GenerationRecord(
        started_at=time.time(),
        provider="openai",
        model="gpt-4o-mini",
        endpoint="OpenAI",
        adapter=None,
        prompt_tokens=100,
        completion_tokens=50,
        cached_prompt_tokens=0,
        estimated=False,
        cost_usd="0.000045",
        ttft_s=0.2,
        duration_s=1.0,
        tokens_per_s=40.0,
        finish_reason="stop",
        conversation_id="c1",
        error=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_record_and_recent_roundtrip(ledger: UsageLedger) -> None:
    first = rec(started_at=1000.0)
    second = rec(started_at=2000.0, cost_usd=None, estimated=True, error="boom", ttft_s=None, tokens_per_s=None)
    id1, id2 = ledger.record(first), ledger.record(second)
    assert id2 > id1 > 0
    assert ledger.recent() == [second, first]
    assert ledger.recent(limit=1) == [second]
    assert ledger.recent(conversation_id="other") == []


def test_totals_are_exact(ledger: UsageLedger) -> None:
    for _ in range(1000):
        ledger.record(rec(cost_usd="0.0000001"))
    ledger.record(rec(cost_usd=None, estimated=True, ttft_s=None, tokens_per_s=None))
    t = ledger.totals()
    assert t.requests == 1001
    assert t.cost_usd == Decimal("0.0001")
    assert t.prompt_tokens == 100_100 and t.completion_tokens == 50_050
    assert t.total_tokens == 150_150
    assert t.estimated_requests == 1
    assert t.unknown_cost_requests == 1
    assert t.avg_ttft_s == pytest.approx(0.2)
    assert t.avg_tokens_per_s == pytest.approx(40.0)


def test_average_speed_leaves_mock_answers_out(ledger: UsageLedger) -> None:
    """Seen in the Usage dock: "Today" averaged 8,374 tok/s because of mock requests."""
    ledger.record(rec(provider="mock", model="echo", tokens_per_s=20_000.0, ttft_s=0.001))
    assert ledger.totals().avg_tokens_per_s == pytest.approx(20_000.0)  # only mock: its own figure
    ledger.record(rec(tokens_per_s=30.0, ttft_s=0.5))
    ledger.record(rec(tokens_per_s=50.0, ttft_s=0.3))
    totals = ledger.totals()
    assert totals.avg_tokens_per_s == pytest.approx(40.0) and totals.avg_ttft_s == pytest.approx(0.4)
    assert totals.requests == 3
    by_model = ledger.totals_by_model()
    assert by_model["mock:echo"].avg_tokens_per_s == pytest.approx(20_000.0)  # shown apart, in its own row
    assert ledger.totals_by_day(1, now=time.time())[-1][1].avg_tokens_per_s == pytest.approx(40.0)


def test_empty_totals(ledger: UsageLedger) -> None:
    assert ledger.totals() == UsageTotals()
    assert ledger.totals_by_model() == {}
    assert ledger.per_conversation() == {}


def test_filters(ledger: UsageLedger) -> None:
    ledger.record(rec(started_at=100.0, conversation_id="a", cost_usd="1"))
    ledger.record(rec(started_at=200.0, conversation_id="b", cost_usd="2", provider="mock", model="echo"))
    ledger.record(rec(started_at=300.0, conversation_id="a", cost_usd="4"))
    assert ledger.totals(conversation_id="a").cost_usd == Decimal(5)
    assert ledger.totals(model="mock:echo").cost_usd == Decimal(2)
    assert ledger.totals(model="gpt-4o-mini").requests == 2
    assert ledger.totals(since=200.0).cost_usd == Decimal(6)
    assert ledger.totals(conversation_id="a", since=150.0).cost_usd == Decimal(4)


def test_totals_by_model_and_conversation(ledger: UsageLedger) -> None:
    ledger.record(rec(cost_usd="0.5", conversation_id="x"))
    ledger.record(rec(provider="mock", model="echo", cost_usd="0", conversation_id="y"))
    ledger.record(rec(cost_usd="0.25", conversation_id=None))
    by_model = ledger.totals_by_model()
    assert list(by_model) == ["openai:gpt-4o-mini", "mock:echo"]
    assert by_model["openai:gpt-4o-mini"].cost_usd == Decimal("0.75")
    assert by_model["openai:gpt-4o-mini"].requests == 2
    assert ledger.totals_by_model(since=time.time() + 60) == {}
    per = ledger.per_conversation()
    assert set(per) == {"x", "y"}
    assert per["x"].cost_usd == Decimal("0.5")


def test_totals_by_day_is_a_full_local_series(ledger: UsageLedger) -> None:
    now = time.time()
    lt = time.localtime(now)
    noon_today = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 12, 0, 0, 0, 0, -1))
    two_days_ago = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday - 2, 12, 0, 0, 0, 0, -1))
    long_ago = now - 90 * 86400
    ledger.record(rec(started_at=noon_today, cost_usd="1"))
    ledger.record(rec(started_at=noon_today, cost_usd="2"))
    ledger.record(rec(started_at=two_days_ago, cost_usd="4"))
    ledger.record(rec(started_at=long_ago, cost_usd="8"))
    days = ledger.totals_by_day(7, now=max(now, noon_today))
    assert len(days) == 7
    labels = [d for d, _ in days]
    assert labels == sorted(labels) and len(set(labels)) == 7
    assert labels[-1] == time.strftime("%Y-%m-%d", time.localtime(noon_today))
    assert days[-1][1].cost_usd == Decimal(3) and days[-1][1].requests == 2
    assert days[-3][1].cost_usd == Decimal(4)
    assert days[-2][1] == UsageTotals()
    assert sum((t.cost_usd for _, t in days), Decimal(0)) == Decimal(7)  # the old row is outside
    assert ledger.totals_by_day(0) == []


def test_export_csv(ledger: UsageLedger, tmp_path: Path) -> None:
    ledger.record(rec(started_at=100.0, cost_usd="0.1"))
    ledger.record(rec(started_at=200.0, cost_usd=None, error="bad, \"quoted\"\nline"))
    out = tmp_path / "sub" / "usage.csv"
    assert ledger.export_csv(out) == 2
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["started_at"] for r in rows] == ["100.0", "200.0"]
    assert rows[0]["cost_usd"] == "0.1" and rows[1]["cost_usd"] == ""
    assert rows[1]["error"] == "bad, \"quoted\"\nline"
    assert rows[0]["time"]
    assert ledger.export_csv(out, since=150.0) == 1


class FakeSink:
    """Records progress writes; sets ``written`` on each."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, int, dict[str, object]]] = []
        self.written: asyncio.Event | None = None

    def progress(self, row_id: int | None, figures: RowFigures) -> None:
        self.calls.append((row_id, figures.completion_tokens, {"duration_s": figures.duration_s}))
        if self.written is not None:
            self.written.set()


def test_row_progress_is_throttled_with_a_trailing_write(run: Callable[..., Any]) -> None:
    now = [100.0]
    tokens = [0]
    sink = FakeSink()
    live = RowProgress(sink, 5, lambda: RowFigures(tokens[0], duration_s=1.0),
                       interval_s=0.05, clock=lambda: now[0])  # fmt: skip

    async def scenario() -> None:
        sink.written = asyncio.Event()
        tokens[0] = 1
        live.tick()  # the first token: written at once
        assert sink.calls == [(5, 1, {"duration_s": 1.0})]
        for n in range(2, 40):  # a burst inside the interval: no writes, one trailing timer
            tokens[0] = n
            live.tick()
        assert len(sink.calls) == 1
        sink.written.clear()
        now[0] += 0.05
        await asyncio.wait_for(sink.written.wait(), 5)  # the trailing write, with the latest figure
        assert sink.calls[-1][1] == 39
        now[0] += 1.0
        tokens[0] = 40
        live.tick()
        assert sink.calls[-1][1] == 40
        tokens[0] = 41
        live.tick()
        live.cancel()  # the stream ended: the pending trailing write is dropped

    run(scenario())
    assert [c[1] for c in sink.calls] == [1, 39, 40]
