"""The grid runner over the real scheduler: cells stream, are checked, recorded in the ledger,
fail alone, stop, rerun alone; llm-rubric goes to a grader model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.core.events import UsageReport
from app.core.grid.cells import Cell
from app.core.grid.model import Assertion, GridConfig, MissingVariables, Prompt, TestCase, Variant
from app.core.grid.runner import GridRunner
from app.core.types import ModelRef
from tests.support.openai_server import OpenAIServer, text


def grid(*variants: Variant, tests: tuple[TestCase, ...] | None = None, **extra: Any) -> GridConfig:
    cases = tests if tests is not None else (
        TestCase({"word": "cats"}, (Assertion("icontains", "cats"),)),
        TestCase({"word": "dogs"}, (Assertion("contains", "{{word}}"), Assertion("not-contains", "cats"))),
    )
    return GridConfig(prompts=(Prompt("Tell me about {{word}}"),), variants=variants, tests=cases, **extra)


class Events:
    """Records what the runner's listener said, per cell."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[int, int], str, str]] = []
        self.waiters: list[tuple[Callable[[Cell, str], bool], asyncio.Future[None]]] = []

    def __call__(self, cell: Cell, what: str) -> None:
        self.seen.append((cell.key, what, cell.status))
        for test, fut in list(self.waiters):
            if not fut.done() and test(cell, what):
                fut.set_result(None)

    def until(self, test: Callable[[Cell, str], bool]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((test, fut))
        return fut


def test_cells_stream_are_checked_and_each_is_one_ledger_row(services: Any, run: Callable[..., Any]) -> None:
    events = Events()
    config = grid(Variant("mock:echo"), Variant("mock:lorem?n=6", label="lorem"))
    runner = GridRunner(services.scheduler, config, listener=events)

    async def scenario() -> None:
        assert runner.start() == 4
        await runner.wait()

    run(scenario())
    echo_cats, lorem_cats = runner.cell(0, 0), runner.cell(0, 1)
    echo_dogs = runner.cell(1, 0)
    assert echo_cats is not None and lorem_cats is not None and echo_dogs is not None
    assert (echo_cats.status, echo_cats.text, echo_cats.passed) == ("done", "Tell me about cats", True)
    assert [a.passed for a in echo_dogs.asserts] == [True, True]
    assert lorem_cats.passed is False and "does not contain 'cats'" in lorem_cats.asserts[0].reason
    assert lorem_cats.usage == UsageReport(7, 6) and lorem_cats.cost_usd == Decimal(0)
    assert lorem_cats.ttft_s is not None and lorem_cats.latency_s is not None and lorem_cats.latency_s >= lorem_cats.ttft_s
    for key in runner.cells:  # every cell streamed and ended through the listener
        kinds = [what for k, what, _ in events.seen if k == key]
        assert "text" in kinds and kinds[-1] == "status"
    assert len(services.ledger.recent(100)) == 4
    s0, s1 = runner.column_summary(0), runner.column_summary(1)
    assert (s0.passed, s0.failed, s0.pass_rate) == (2, 0, 1.0)
    assert (s1.passed, s1.failed, s1.errors) == (0, 2, 0) and s1.mean_latency_s is not None
    assert runner.summary_dict()["cells"] == 4 and runner.summary_dict()["failed"] == 2


def test_every_cell_is_tagged_with_its_run_in_the_ledger(services: Any, run: Callable[..., Any]) -> None:
    runner = GridRunner(services.scheduler, grid(Variant("mock:echo")))

    async def scenario() -> None:
        runner.start()
        await runner.wait()

    run(scenario())
    rows = services.ledger.recent(100)
    assert len(rows) == 2 and {r.run_id for r in rows} == {runner.run_id}


def test_a_failing_cell_never_stops_the_others(services: Any, run: Callable[..., Any]) -> None:
    config = grid(Variant("mock:echo?fail=before"), Variant("mock:lorem?n=8&fail=mid&fail_after=2"), Variant("mock:echo"))
    runner = GridRunner(services.scheduler, config)

    async def scenario() -> None:
        runner.start()
        await runner.wait()

    run(scenario())
    before, mid, ok = runner.cell(0, 0), runner.cell(0, 1), runner.cell(0, 2)
    assert before is not None and mid is not None and ok is not None
    assert before.status == "failed" and before.error and "Mock failure" in before.error and before.passed is False
    assert mid.status == "failed" and len(mid.text.split()) == 2  # the partial text is kept
    assert ok.status == "done" and ok.passed is True
    summary = runner.summary()
    assert (summary.errors, summary.passed) == (4, 2)
    assert len(services.ledger.recent(100)) == 6  # failed cells are recorded too


def test_stop_keeps_finished_cells_and_the_partial_text(services: Any, run: Callable[..., Any]) -> None:
    events = Events()
    config = grid(Variant("mock:echo"), Variant("mock:lorem?n=2000&rate=40"))
    runner = GridRunner(services.scheduler, config, listener=events)

    async def scenario() -> None:
        echo_done = events.until(lambda c, w: c.col == 0 and c.row == 1 and c.ended)
        slow_text = events.until(lambda c, w: c.col == 1 and w == "text")
        runner.start()
        await asyncio.wait_for(asyncio.gather(echo_done, slow_text), 10)
        assert runner.stop() >= 1
        await runner.wait()

    run(scenario())
    assert [runner.cells[(r, 0)].status for r in (0, 1)] == ["done", "done"]
    slow = [runner.cells[(r, 1)] for r in (0, 1)]
    assert {c.status for c in slow} == {"cancelled"}
    assert any(c.text for c in slow) and all(len(c.text.split()) < 2000 for c in slow)
    assert runner.summary().cancelled == 2 and not runner.running


def test_a_cell_reruns_alone(services: Any, run: Callable[..., Any]) -> None:
    config = grid(Variant("mock:echo"), Variant("mock:lorem?n=5"))
    runner = GridRunner(services.scheduler, config)

    async def scenario() -> None:
        runner.start()
        await runner.wait()
        before = {k: (c.text, c.attempt) for k, c in runner.cells.items()}
        assert runner.rerun(1, 1)
        assert runner.cell(1, 1).status == "queued"  # type: ignore[union-attr]
        assert not runner.rerun(1, 1)  # still running: refused
        await runner.wait()
        after = {k: (c.text, c.attempt) for k, c in runner.cells.items()}
        assert after[(1, 1)][1] == 2
        assert {k: v for k, v in after.items() if k != (1, 1)} == {k: v for k, v in before.items() if k != (1, 1)}

    run(scenario())
    assert len(services.ledger.recent(100)) == 5


def test_cells_that_cannot_be_sent_are_reported_and_skipped(services: Any, run: Callable[..., Any]) -> None:
    config = GridConfig(prompts=(Prompt("{{ a | load | first }} and {{b}}"),), variants=(Variant("mock:echo"),),
                        tests=(TestCase({"a": "[1]"}), TestCase({"a": "oops", "b": "2"})))
    runner = GridRunner(services.scheduler, config)
    (bad,) = runner.problems()
    assert bad.key == (1, 0) and bad.error is not None and "load filter got text that is not JSON" in bad.error
    # an undefined variable renders empty (as in promptfoo), with one warning for the grid
    assert runner.warnings() == [MissingVariables(["b"], "A prompt").message]

    async def scenario() -> int:
        sent = runner.start()
        await runner.wait()
        return sent

    assert run(scenario()) == 1
    assert runner.summary().errors == 1 and len(services.ledger.recent(10)) == 1


def test_llm_rubric_is_graded_by_the_grader_model(services: Any, run: Callable[..., Any],
                                                  openai_server: OpenAIServer) -> None:
    services.settings.endpoints.append(openai_server.endpoint("Loopback"))
    openai_server.enqueue(text('{"reason": "it names cats", "pass": true}'), text("FAIL: off topic"))
    rubric = (Assertion("llm-rubric", "talks about {{word}}"),)
    config = grid(Variant("mock:echo"), tests=(TestCase({"word": "cats"}, rubric), TestCase({"word": "dogs"}, rubric)),
                  grader=Variant("openai:gpt-4o-mini", endpoint="Loopback", temperature=0.0))
    runner = GridRunner(services.scheduler, config)

    async def scenario() -> None:
        runner.start()
        try:
            await runner.wait()
        finally:  # the OpenAI client's connections belong to this loop: close them on it
            await services.registry.aclose()

    run(scenario())
    graded = [r.json["messages"][1]["content"] for r in openai_server.chat_requests]
    assert len(graded) == 2 and all("<Output>" in g for g in graded)
    # the grader request that arrived first got the passing verdict: its cell passed
    first_word = "cats" if "talks about cats" in graded[0] else "dogs"
    assert f"Tell me about {first_word}" in graded[0]
    passed = runner.cell(0 if first_word == "cats" else 1, 0)
    failed = runner.cell(1 if first_word == "cats" else 0, 0)
    assert passed is not None and failed is not None
    assert passed.passed is True and passed.asserts[0].reason == "graded by openai:gpt-4o-mini: it names cats"
    assert failed.passed is False and "FAIL" in failed.asserts[0].reason
    assert len(services.ledger.recent(100)) == 4  # two cells and two gradings


def test_the_estimate_counts_prompt_tokens_and_prices_before_sending(services: Any) -> None:
    config = grid(Variant("mock:echo"), Variant("openai:gpt-4o-mini", max_tokens=100))
    runner = GridRunner(services.scheduler, config)
    estimate = runner.estimate()
    assert estimate.cells == 4 and estimate.unpriced == 0
    price = services.prices.price_for(ModelRef("openai", "gpt-4o-mini"))
    openai_tokens = estimate.prompt_tokens - 2 * 7  # the mock counts 4 words + 3 per message
    assert estimate.cost_in == price.cost(UsageReport(openai_tokens, 0))
    assert estimate.cost_out_max == 2 * price.cost(UsageReport(0, 100))
    assert "4 cells" in estimate.sentence() and "prompt tokens" in estimate.sentence()
    assert not services.ledger.recent(10)  # nothing was sent


def test_an_edited_grid_keeps_the_answers_of_unchanged_cells(services: Any, run: Callable[..., Any]) -> None:
    config = grid(Variant("mock:echo"), Variant("mock:lorem?n=4"))
    first = GridRunner(services.scheduler, config)

    async def scenario() -> None:
        first.start()
        await first.wait()

    run(scenario())
    edited = config.with_(variants=(config.variants[0], Variant("mock:lorem?n=4", temperature=1.0)),
                          tests=(config.tests[0], TestCase({"word": "birds"})))
    second = GridRunner(services.scheduler, edited)
    assert second.adopt(first) == 1  # only (cats, echo) is the same request with the same checks
    assert second.cells[(0, 0)].text == "Tell me about cats" and second.cells[(0, 0)].status == "done"
    assert {second.cells[k].status for k in second.cells if k != (0, 0)} == {"idle"}
