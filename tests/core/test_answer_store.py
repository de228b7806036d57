"""The answer store (app/core/answer_store.py) over a real history in a temporary folder: the
partial answer saved while it streams (throttled), the final meta (seed, adapters, figures),
a failed or stopped answer's partial text, and a history another program holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.answer_store import AnswerStore, StoredAnswer
from app.core.engine import Engine
from app.core.errors import StreamInterrupted
from app.core.history import HistoryStore
from app.core.pricing import PriceTable
from app.core.provider import ProviderRegistry
from app.core.run_events import RunEnded, RunFailed, RunFinished, RunInfo, RunReasoning, RunText
from app.core.runs import Run, RunScheduler
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef
from tests.support.fakes import FakeLocal
from tests.support.openai_server import provider_context
from tests.support.sqlite_lock import LockHolder


class Notes:
    """The ledger's part the store uses: the notes it was given."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []

    def annotate(self, conversation_id: str, note: str) -> None:
        self.notes.append((conversation_id, note))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scheduler() -> Iterator[RunScheduler]:
    registry = ProviderRegistry(provider_context([]), {"local": FakeLocal})
    yield RunScheduler(Engine(registry, PriceTable.load()))


def _request(model: str = "mock:echo", *, seed: int | None = 7, adapters: tuple[AdapterSpec, ...] = (),
             logprobs: int | None = None) -> GenerationRequest:
    params = GenerationParams(temperature=0, max_tokens=64, seed=seed, logprobs=logprobs)
    return GenerationRequest(ModelRef.parse(model), (ChatMessage("user", "Hello there"),), params, None, adapters)


def _start(history: HistoryStore, answers: AnswerStore, request: GenerationRequest) -> StoredAnswer:
    conv = history.create_conversation("t", model=str(request.model))
    user = history.add_message(conv.id, "user", "Hello there")
    return answers.start(conv.id, user.id, request, "Be brief.", seed_chosen=True)


def _answer(scheduler: RunScheduler, answers: AnswerStore, answer: StoredAnswer,
            request: GenerationRequest, *, stop_after_text: bool = False) -> RunEnded:
    async def go() -> RunEnded:
        run = scheduler.submit(request, on_event=answers.on_event)
        answers.follow(answer, run)
        if stop_after_text:
            while not run.text:
                await asyncio.sleep(0.01)
            run.cancel()
        try:
            return await asyncio.wait_for(run.wait(), 10)
        finally:
            await scheduler.aclose()
            await scheduler.engine.registry.aclose()

    return asyncio.run(go())


def _row(history: HistoryStore, answer: StoredAnswer) -> Any:
    found = history.get_message(answer.message_id)
    assert found is not None
    return found


def test_the_partial_answer_is_saved_while_it_streams_at_most_every_interval(store: HistoryStore) -> None:
    clock = Clock()
    answers = AnswerStore(store, save_every_s=0.3, clock=clock)
    request = _request()
    answer = _start(store, answers, request)
    assert (_row(store, answer).status, _row(store, answer).content) == ("streaming", "")
    run = Run(RunInfo("r1", request))  # a run fed by hand: its events are the test's
    answers.follow(answer, run)

    def text(piece: str, after_s: float) -> None:
        clock.now += after_s
        run.generation.parts.append(piece)
        answers.on_event(RunText("r1", piece))

    text("Hel", 0.1)
    assert _row(store, answer).content == ""  # too soon after the start
    text("lo", 0.25)
    assert _row(store, answer).content == "Hello"
    text(" there", 0.1)
    assert _row(store, answer).content == "Hello"
    clock.now += 0.5
    run.generation.thoughts.append("hmm")
    answers.on_event(RunReasoning("r1", "hmm"))  # the reasoning goes to meta, the text with it
    row = _row(store, answer)
    assert row.content == "Hello there" and row.meta["reasoning"] == "hmm" and row.status == "streaming"
    run.generation.parts.append("!")
    answers.save_partials(due_only=True)  # a timer beside the stream: saved just now by it, so not again
    assert _row(store, answer).content == "Hello there"
    clock.now += 0.31
    answers.save_partials(due_only=True)  # the stream stalled for the interval: the timer saves
    assert _row(store, answer).content == "Hello there!"
    run.generation.parts.append("?")
    answers.save_partials()  # a fork, the close: whatever is unsaved, now
    assert _row(store, answer).content == "Hello there!?"
    run.generation.parts.pop()
    answers.on_event(RunFailed("r1", StreamInterrupted("The connection was cut."), "Hello there!"))
    row = _row(store, answer)
    assert (row.content, row.status) == ("Hello there!", "error") and "connection was cut" in (row.error or "")
    assert row.meta["reasoning"] == "hmm" and row.meta["seed_chosen"] is True
    assert answers.get("r1") is None and answer.status == "error"
    text("late", 1.0)  # after its end the run is not followed any more
    assert _row(store, answer).content == "Hello there!"


def test_a_long_answers_partial_saves_space_out_with_its_length(store: HistoryStore) -> None:
    """Each partial save rewrites the whole row: past REWRITE_CHARS_PER_S x the interval the
    saves space out, by the stream and by the timer alike, and a short answer is unchanged."""
    from app.core.answer_store import REWRITE_CHARS_PER_S

    clock = Clock()
    answers = AnswerStore(store, save_every_s=0.3, clock=clock)
    request = _request()
    answer = _start(store, answers, request)
    run = Run(RunInfo("r1", request))
    answers.follow(answer, run)
    long = "x" * REWRITE_CHARS_PER_S  # one second's worth of rewriting

    def text(piece: str, after_s: float) -> str:
        clock.now += after_s
        run.generation.parts.append(piece)
        answers.on_event(RunText("r1", piece))
        return str(_row(store, answer).content)

    assert text(long, 0.31) == long  # the first save comes after the usual interval
    assert text("a", 0.31) == long  # then not before a second has passed: not at 0.31 s
    answers.save_partials(due_only=True)
    assert _row(store, answer).content == long  # nor by the timer
    assert text("b", 0.7) == long + "ab"  # 1.01 s after the last save
    answers.save_partials()  # a fork, the close: at once, whatever the length
    short = AnswerStore(store, save_every_s=0.3, clock=clock)
    other = _start(store, short, request)
    run2 = Run(RunInfo("r2", request))
    short.follow(other, run2)
    clock.now += 0.31
    run2.generation.parts.append("Hi")
    short.on_event(RunText("r2", "Hi"))
    clock.now += 0.31
    run2.generation.parts.append("!")
    short.on_event(RunText("r2", "!"))
    assert _row(store, other).content == "Hi!"  # a short answer: every 0.3 s, as before


def test_a_finished_answer_keeps_its_text_seed_adapters_and_figures(store: HistoryStore,
                                                                    scheduler: RunScheduler) -> None:
    adapter = AdapterSpec("/adapters/a1", 0.5, "a1", "f" * 64)
    request = _request("local:A", seed=11, adapters=(adapter,))
    answers = AnswerStore(store)
    answer = _start(store, answers, request)
    ended = _answer(scheduler, answers, answer, request)
    assert isinstance(ended, RunFinished)
    row = _row(store, answer)
    assert (row.content, row.status, row.error) == ("A says hi", "complete", None)
    assert row.meta["seed"] == 11 and row.meta["params"]["seed"] == 11 and row.meta["system_prompt"] == "Be brief."
    assert row.meta["adapters"] == [{"path": "/adapters/a1", "scale": 0.5, "name": "a1", "sha256": "f" * 64}]
    assert row.meta["completion_tokens"] == ended.result.record.completion_tokens > 0
    assert row.meta["duration_s"] > 0 and answer.final == row.meta
    conv = store.require(answer.conversation_id)
    assert conv.model == "local:A" and conv.adapters == row.meta["adapters"]


def test_a_stopped_answer_keeps_its_partial_text_and_tokens(store: HistoryStore, scheduler: RunScheduler) -> None:
    request = _request("mock:tokens?n=100000&rate=200", logprobs=2)
    answers = AnswerStore(store, lens_later=True)
    answer = _start(store, answers, request)
    ended = _answer(scheduler, answers, answer, request, stop_after_text=True)
    row = _row(store, answer)
    assert row.status == "cancelled" and row.content and row.content == ended.partial_text  # type: ignore[union-attr]
    assert "tokens" not in row.meta and "tokens" not in answer.final  # not even made at the end
    later = answers.later_meta(answer)  # made now, from the run's tokens
    assert answer.run is not None and later["tokens"] == [t.to_json() for t in answer.run.generation.tokens[:1024]]
    assert answers.write_later(answer) and _row(store, answer).meta == later


def test_a_busy_history_never_stops_an_answer_and_the_ledger_says_so(store: HistoryStore, db_path: Path,
                                                                     scheduler: RunScheduler) -> None:
    notes = Notes()
    answers = AnswerStore(store, notes)
    request = _request()
    answer = _start(store, answers, request)
    assert not answer.waited
    with LockHolder(db_path):  # another program holds the history while the answer streams and ends
        ended = _answer(scheduler, answers, answer, request)
        assert isinstance(ended, RunFinished) and answer.waited and store.pending
        assert (_row(store, answer).content, _row(store, answer).status) == ("Hello there", "complete")
        assert notes.notes == [(answer.conversation_id, notes.notes[0][1])]
        assert notes.notes[0][1].startswith("history busy: saving the answer is pending")
        assert not store.flush(0)
    assert store.flush(0)
    again = HistoryStore(db_path)  # what another start reads
    try:
        [_, saved] = again.tree(answer.conversation_id).path()
        assert (saved.content, saved.status, saved.meta["seed"]) == ("Hello there", "complete", 7)
    finally:
        again.close()


def test_an_answer_that_could_not_start_or_was_interrupted_ends_as_an_error(store: HistoryStore) -> None:
    answers = AnswerStore(store)
    request = _request()
    unsent = _start(store, answers, request)
    answers.abandon(unsent, "A generation is already running.")
    assert (_row(store, unsent).status, _row(store, unsent).error) == ("error", "A generation is already running.")
    answer = _start(store, answers, request)
    run = Run(RunInfo("r2", request))
    answers.follow(answer, run)
    run.generation.parts.append("Hel")
    assert answers.interrupt("r2", "Interrupted by an internal error.") is answer
    row = _row(store, answer)
    assert (row.content, row.status, row.error) == ("Hel", "error", "Interrupted by an internal error.")
    stopped = _start(store, answers, request)
    answers.follow(stopped, Run(RunInfo("r3", request)))
    answers.interrupt("r3", None)
    assert (_row(store, stopped).status, _row(store, stopped).error) == ("cancelled", None)
    assert answers.answers() == []
