"""ChatSession over the message tree, with a real backend (mock provider), history and
transcript: what each action stores, what the transcript shows, what a request sends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.core.services import Services
from app.core.types import GenerationParams
from app.ui.backend_manager import BackendManager
from app.ui.session import ChatSession
from app.ui.widgets.transcript import TranscriptView
from tests.conftest import expect_signal


@pytest.fixture
def session(qloop: Any, qapp: Any, services: Services) -> Any:
    backend = BackendManager(services, model_id="mock:echo")
    transcript = TranscriptView()
    yield ChatSession(backend, transcript)
    qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 10))
    transcript.deleteLater()


def _run(qloop: Any, coro: Any) -> Any:
    return qloop.run_until_complete(asyncio.wait_for(coro, 20))


async def _answered(session: ChatSession, start: Any) -> str:
    done = expect_signal(session.answer_done)
    assert start() is not None
    (_gen, status), = await done.wait(10)
    return str(status)


P = GenerationParams(temperature=0.0)


def _sent(session: ChatSession) -> list[str]:
    return [m.content for m in session.backend.services.registry.get("mock").requests[-1].messages]  # type: ignore[attr-defined]


def test_editing_the_first_message_makes_a_second_root(session: ChatSession, qloop: Any) -> None:
    async def scenario() -> None:
        await _answered(session, lambda: session.send("first", P, ""))
        [first, _] = session.path
        assert session.edit(first.id) == "first" and session.path == [] and session.editing == first.id
        assert session.transcript.cards() == []
        await _answered(session, lambda: session.send("first, again", P, "sys"))
        assert _sent(session) == ["sys", "first, again"]
        assert [m.parent_id for m in session.path][:1] == [None]
        assert session.tree.position(session.path[0].id) == (2, 2) and session.editing is None

    _run(qloop, scenario())


def test_regenerate_any_answer_makes_its_sibling(session: ChatSession, qloop: Any) -> None:
    async def scenario() -> None:
        await _answered(session, lambda: session.send("one", P, ""))
        await _answered(session, lambda: session.send("two", P, ""))
        first_answer = session.path[1]
        await _answered(session, lambda: session.regenerate(P, "", message_id=first_answer.id))
        assert [m.content for m in session.path] == ["one", "one"]  # the branch of the new sibling
        assert session.tree.position(session.path[1].id) == (2, 2)
        assert _sent(session) == ["one"]  # only its own path
        assert len(session.tree) == 5

    _run(qloop, scenario())


def test_a_branch_ending_with_an_unanswered_message_gets_its_answer(session: ChatSession, qloop: Any,
                                                                    services: Services) -> None:
    cid = services.history.create_conversation().id
    services.history.add_message(cid, "user", "left unanswered")
    session.open(cid)

    async def scenario() -> None:
        await _answered(session, lambda: session.regenerate(P, ""))
        assert [m.content for m in session.path] == ["left unanswered", "left unanswered"]
        assert session.tree.position(session.path[1].id) == (1, 1)

    _run(qloop, scenario())


def test_a_draft_is_written_to_the_conversation_it_was_typed_in(session: ChatSession, qloop: Any,
                                                                services: Services) -> None:
    history = services.history
    a = history.create_conversation("A").id
    b = history.create_conversation("B").id
    session.open(a)
    session.note_draft("for A")
    session.open(b)  # switching writes A's pending draft at once, never into B
    assert history.require(a).draft == "for A" and history.require(b).draft == ""

    async def timer() -> None:
        saved = expect_signal(session._draft_timer.timeout)
        session.note_draft("for B")
        await saved.wait(5)

    _run(qloop, timer())
    assert history.require(b).draft == "for B" and history.require(a).draft == "for A"
    session.open(None)
    session.note_draft("not stored yet")
    assert session.new_draft == "not stored yet"


def test_the_stored_answer_keeps_the_seed_the_system_prompt_and_its_figures(session: ChatSession,
                                                                             qloop: Any) -> None:
    async def scenario() -> None:
        await _answered(session, lambda: session.send("hello", GenerationParams(), "Be kind."))
        answer = session.path[-1]
        assert isinstance(answer.seed, int) and answer.system_prompt == "Be kind."
        assert answer.meta["seed_chosen"] is True and answer.meta["completion_tokens"] == 1
        assert answer.meta["adapters"] == [] and answer.meta["system_prompt"] == "Be kind."
        conv = session.history.require(session.conversation_id or "")
        assert conv.params["seed"] is None and conv.model == "mock:echo"  # as the user set it

    _run(qloop, scenario())


def test_a_locked_history_never_stops_an_answer_and_saves_it_once_free(session: ChatSession, qloop: Any,
                                                                       services: Services) -> None:
    from app.core.history import HistoryStore
    from tests.support.sqlite_lock import LockHolder

    history = services.history
    pending: list[bool] = []
    session.history_pending.connect(pending.append)
    holder = LockHolder(history.path).start()  # another program holds the history

    async def scenario() -> None:
        assert await _answered(session, lambda: session.send("one", P, "")) == "complete"
        assert await _answered(session, lambda: session.send("two", P, "")) == "complete"

    try:
        _run(qloop, scenario())
        assert pending == [True] and history.pending
        assert _sent(session) == ["one", "one", "two"]  # the waiting exchange is the context
        assert [c.body.toPlainText() for c in session.transcript.cards()] == ["one", "one", "two", "two"]
        assert [(m.content, m.status) for m in session.path] == [("one", "complete"), ("one", "complete"),
                                                                ("two", "complete"), ("two", "complete")]
        assert not session.retry_pending() and pending == [True]
    finally:
        holder.release()
    assert session.retry_pending() and pending == [True, False] and history.pending == 0
    cid = session.conversation_id
    assert cid is not None
    again = HistoryStore(history.path)  # what another start reads
    try:
        assert [(m.content, m.status) for m in again.tree(cid).path()] == [
            ("one", "complete"), ("one", "complete"), ("two", "complete"), ("two", "complete")]
    finally:
        again.close()
    notes = [r.error or "" for r in services.ledger.recent()]
    assert len(notes) == 2 and all(n.startswith("history busy: saving the answer is pending") for n in notes)
    session.open(cid)  # the real ids now
    assert [m.id for m in session.path] == [m.id for m in history.tree(cid).path()]
    assert all(m.id < 1 << 30 for m in session.path)
