"""Tests of app/serve/routes.py: the key check and the body limit through the real server and
the ``openai`` SDK; the inbox: a run's events reach the response in order, in bursts, and a
waiting response wakes at the next event."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import openai
import pytest

from app.core.run_events import RunText
from app.serve.routes import _Inbox
from tests.serve.conftest import ServerThread
from tests.serve.test_server import HELLO


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


def test_wrong_or_missing_key_is_401_and_never_echoed(served: ServerThread) -> None:
    assert served.key and served.key.startswith("sk-local-")
    for key in ("wrong-key-123", ""):
        with pytest.raises(openai.AuthenticationError) as info:
            served.sdk(api_key=key or "x").chat.completions.create(model="mock:echo", messages=HELLO)
        assert info.value.status_code == 401 and "--show-key" in info.value.message
    request = urllib.request.Request(served.url + "/models")
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=10)
    raw.value.close()
    assert raw.value.code == 401
    assert served.key not in json.dumps([repr(f) for f in served.figures])


def test_huge_body_is_413(served: ServerThread) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        served.sdk().chat.completions.create(model="mock:echo", messages=[{"role": "user", "content": "x" * 9_000_000}])
    assert info.value.status_code == 413 and "larger than" in info.value.message
