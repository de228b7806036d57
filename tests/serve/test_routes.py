"""The routes' inbox: a run's events reach the response in order, in bursts, and a waiting
response wakes at the next event."""

from __future__ import annotations

import asyncio

from app.core.run_events import RunText
from app.serve.routes import _Inbox


def test_events_are_taken_in_bursts_in_order() -> None:
    inbox = _Inbox()
    events = [RunText("r1", f"t{i}") for i in range(1000)]
    for event in events:
        inbox.put(event)
    assert inbox.take() == events and inbox.take() == []


def test_a_waiting_response_wakes_at_the_next_event() -> None:
    async def scenario() -> list[object]:
        inbox = _Inbox()
        inbox.put(RunText("r1", "a"))
        await asyncio.wait_for(inbox.wait(), 1)  # something there: at once
        first = inbox.take()
        waiting = asyncio.ensure_future(inbox.wait())
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing to take yet
        inbox.put(RunText("r1", "b"))
        inbox.put(RunText("r1", "c"))
        await asyncio.wait_for(waiting, 1)
        return [e.text for e in first + inbox.take()]  # type: ignore[attr-defined]

    assert asyncio.run(scenario()) == ["a", "b", "c"]
