"""Tests of app/serve/inbox.py on real runs (the run scheduler and the mock provider): the
text since the last look comes as one piece, in order, read from the run's parts (or from its
text events with their tokens); a waiting response wakes at the next text or the end and
listens to the run only while it waits; a pacing one wakes early at the end only; a lingering
one stays while text keeps coming and leaves when it pauses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from app.core.engine import Engine
from app.core.pricing import PriceTable
from app.core.provider import ProviderRegistry
from app.core.runs import RunScheduler
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.serve.inbox import Inbox
from tests.support.openai_server import provider_context

T = TypeVar("T")


def _scheduled(home: Path, scenario: Callable[[RunScheduler], Awaitable[T]]) -> T:
    scheduler = RunScheduler(Engine(ProviderRegistry(provider_context([], home=home)), PriceTable.load(), None))

    async def go() -> T:
        try:
            return await asyncio.wait_for(scenario(scheduler), 20)
        finally:
            await scheduler.aclose()

    return asyncio.run(go())


def _request(model: str, *, logprobs: int | None = None) -> GenerationRequest:
    params = GenerationParams(temperature=0, max_tokens=None, logprobs=logprobs)
    return GenerationRequest(ModelRef.parse(model), (ChatMessage("user", "hi"),), params)


async def _drain(inbox: Inbox) -> list[str]:
    pieces = []
    while True:
        ended = inbox.end is not None
        text, _tokens = inbox.take()
        if text:
            pieces.append(text)
        if ended:
            return pieces
        await inbox.wait()


def test_the_text_since_the_last_look_comes_in_few_pieces_and_costs_the_run_no_listener(tmp_path: Path) -> None:
    async def scenario(scheduler: RunScheduler) -> tuple[list[str], str, list[bool]]:
        run = scheduler.submit(_request("mock:tokens?n=3000"))
        inbox = Inbox(run)
        listening: list[bool] = []
        pieces = []
        while inbox.end is None:
            listening.append(run.on_event is not None)
            await inbox.wait()
            pieces.append(inbox.take()[0])
        pieces.append(inbox.take()[0])
        return pieces, (await run).text, listening

    pieces, text, listening = _scheduled(tmp_path, scenario)
    assert "".join(pieces) == text and text.endswith(" tok2999")
    assert len(pieces) < 3000 / 10  # tokens that came together are one piece
    assert not any(listening)  # between waits, nothing is called per token


def test_with_tokens_kept_each_piece_has_its_tokens(tmp_path: Path) -> None:
    async def scenario(scheduler: RunScheduler) -> tuple[str, list[str], str]:
        run = scheduler.submit(_request("mock:tokens?n=50", logprobs=2))
        inbox = Inbox(run, tokens=True)
        texts: list[str] = []
        tokens: list[str] = []
        while True:
            ended = inbox.end is not None
            text, got = inbox.take()
            texts.append(text)
            tokens.extend(t.text for t in got)
            if ended:
                break
            await inbox.wait()
        return "".join(texts), tokens, (await run).text

    text, tokens, answer = _scheduled(tmp_path, scenario)
    assert text == answer and "".join(tokens) == answer and len(tokens) == 50


def test_a_waiting_response_wakes_at_the_first_text_and_a_pacing_one_at_the_end(tmp_path: Path) -> None:
    async def scenario(scheduler: RunScheduler) -> tuple[bool, float, list[str]]:
        loop = asyncio.get_running_loop()
        run = scheduler.submit(_request("mock:tokens?n=4&rate=10&delay=0.2"))
        inbox = Inbox(run)
        assert not inbox.ready()
        await inbox.wait()  # woken by the first token, not by the run's start or figures
        first = inbox.has_text() and inbox.end is None
        t0 = loop.time()
        await inbox.pause(30)  # more text does not end it; the run's end does (~0.3 s)
        return first, loop.time() - t0, await _drain(inbox)

    first, paused, pieces = _scheduled(tmp_path, scenario)
    assert first
    assert 0.15 < paused < 5
    assert "".join(pieces) == "tok0 tok1 tok2 tok3"


def test_lingering_lasts_while_text_comes_and_ends_when_the_producer_pauses(tmp_path: Path) -> None:
    async def scenario(scheduler: RunScheduler) -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        fast = scheduler.submit(_request("mock:tokens?n=200000"))
        inbox = Inbox(fast)
        await inbox.wait()
        t0 = loop.time()
        await inbox.linger(0.002, t0 + 0.05)  # text comes at every step: until the deadline
        busy = loop.time() - t0
        fast.cancel()
        await fast.wait()
        slow = scheduler.submit(_request("mock:tokens?n=2&rate=4"))  # a token, a quarter second of nothing
        inbox = Inbox(slow)
        await inbox.wait()
        t0 = loop.time()
        await inbox.linger(0.002, t0 + 30)  # nothing more comes: back after a step
        idle = loop.time() - t0
        await inbox.linger(30, loop.time() + 30)  # a step longer than the run: its end (at 0.5 s) ends it
        ended = loop.time() - t0
        return busy, idle, ended

    busy, idle, ended = _scheduled(tmp_path, scenario)
    assert 0.049 < busy < 5
    assert idle < 0.2
    assert ended < 5


def test_closing_wakes_a_waiting_and_a_pausing_response_at_once(tmp_path: Path) -> None:
    async def scenario(scheduler: RunScheduler) -> tuple[float, float, bool]:
        loop = asyncio.get_running_loop()
        run = scheduler.submit(_request("mock:tokens?n=4&rate=1&delay=30"))
        inbox = Inbox(run)
        t0 = loop.time()
        loop.call_later(0.05, inbox.close)  # the client went away
        await inbox.pause(30)  # no text for 30 s: only the close wakes it
        paused = loop.time() - t0
        t0 = loop.time()
        await inbox.wait()  # closed: returns at once
        waited = loop.time() - t0
        ready = inbox.ready() and inbox.closed and not inbox.has_text()
        run.cancel()
        await run.wait()
        return waited, paused, ready

    waited, paused, ready = _scheduled(tmp_path, scenario)
    assert waited < 5 and paused < 5 and ready
