"""DeltaBatch: token-carrying text events of one loop turn, merged per run, order kept."""

from __future__ import annotations

import asyncio

from app.core.events import TokenLogprob
from app.core.run_events import RunText
from app.ui.delta_batch import DeltaBatch


def _tok(text: str) -> tuple[TokenLogprob, ...]:
    return (TokenLogprob(text, -0.5, ()),)


def test_without_a_running_loop_each_event_goes_at_once() -> None:
    out: list[RunText] = []
    batch = DeltaBatch(out.append)
    batch.add(RunText("r", "a", _tok("a")))
    batch.add(RunText("r", "b", _tok("b")))
    assert [e.text for e in out] == ["a", "b"]


def test_one_turn_of_tokens_comes_merged_per_run_in_order() -> None:
    out: list[RunText] = []
    batch = DeltaBatch(out.append)

    async def scenario() -> list[str]:
        for i in range(5):
            batch.add(RunText("r1", f"a{i} ", _tok(f"a{i} ")))
        batch.add(RunText("r2", "x", _tok("x")))
        batch.add(RunText("r1", "z", _tok("z")))
        held = [e.text for e in out]
        await asyncio.sleep(0)  # the turn ends: the batch is emitted
        return held

    held = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert held == []  # nothing crossed while the turn ran
    assert [(e.run_id, e.text) for e in out] == [
        ("r1", "a0 a1 a2 a3 a4 "),
        ("r2", "x"),
        ("r1", "z"),
    ]
    assert [t.text for t in out[0].tokens] == [f"a{i} " for i in range(5)]


def test_text_without_tokens_flushes_what_is_held_first() -> None:
    out: list[RunText] = []
    batch = DeltaBatch(out.append)

    async def scenario() -> None:
        batch.add(RunText("r", "a", _tok("a")))
        batch.add(RunText("r", "b", _tok("b")))
        batch.add(RunText("r", "plain"))  # no tokens: at once, after what was held
        batch.add(RunText("r", "c", _tok("c")))
        await asyncio.sleep(0)

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert [(e.text, len(e.tokens)) for e in out] == [("ab", 2), ("plain", 0), ("c", 1)]
