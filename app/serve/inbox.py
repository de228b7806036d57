"""A run's answer on its way to the HTTP response: the text that arrived since the response
last looked, and the run's end.

A streamed token is the server's hot path, so the response costs the run nothing per token
while it is not waiting: the text accumulates in the run's
:class:`~app.core.generation.Generation` anyway (``parts``, the one place a run's text is
kept) and the response takes every piece since its last look as one string; it listens to
the run's events (``run.on_event``) only while it waits for the next text. When the client
asked for log-probabilities, it listens throughout and keeps the text events (their tokens
go out with their text).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from app.core.events import TokenLogprob
from app.core.run_events import RunCancelled, RunEnded, RunEvent, RunFailed, RunFinished, RunText
from app.core.runs import Run


class Inbox:
    """The text and end of ``run`` for its response (on the loop); ``tokens``: keep the text
    events with their tokens (else the text is read from the run's parts)."""

    __slots__ = ("_run", "_parts", "_taken", "_texts", "_tokens", "_kept", "_waiter", "_pausing", "closed")

    def __init__(self, run: Run, *, tokens: bool = False) -> None:
        self._run = run
        self._parts: list[str] | None = None if tokens else run.generation.parts
        self._taken = 0
        self._texts: list[str] = []
        self._tokens: list[TokenLogprob] = []
        self._kept = 0
        self._waiter: asyncio.Future[None] | None = None
        self._pausing: asyncio.Future[None] | None = None
        self.closed = False
        """True once :meth:`close` was called (the response has no one to write to)."""
        if tokens:
            run.on_event = self._keep

    @property
    def end(self) -> RunEnded | None:
        """The run's final event, once it ended."""
        return self._run.ended

    def _keep(self, event: RunEvent) -> None:
        if event.__class__ is RunText:
            self._texts.append(event.text)
            self._tokens.extend(event.tokens)
            self._kept += 1
        self._wake(event)

    def _wake(self, event: RunEvent) -> None:
        cls = event.__class__
        if cls is RunText or cls is RunFinished or cls is RunFailed or cls is RunCancelled:
            _resolve(self._waiter)
            if self._parts is not None:  # the tokens until the response runs cost nothing either
                self._run.on_event = None

    def close(self) -> None:
        """The client went away: wake a waiting or pausing response now, and every later
        :meth:`wait` / :meth:`pause` returns at once (the response checks :attr:`closed`)."""
        self.closed = True
        _resolve(self._waiter)
        _resolve(self._pausing)

    def has_text(self) -> bool:
        """True when text came since the last :meth:`take`."""
        return len(self._parts) > self._taken if self._parts is not None else bool(self._texts)

    def arrived(self) -> int:
        """How many pieces of text came so far (it grows with each)."""
        return len(self._parts) if self._parts is not None else self._kept

    def ready(self) -> bool:
        """True when there is text to take, the run ended or the inbox was closed."""
        return self._run.ended is not None or self.closed or self.has_text()

    def take(self) -> tuple[str, Sequence[TokenLogprob]]:
        """The text (and its tokens, when kept) since the last take, as one piece ('' for none)."""
        parts = self._parts
        if parts is not None:
            n = len(parts)
            if n == self._taken:
                return "", ()
            text = "".join(parts[self._taken : n])
            self._taken = n
            return text, ()
        text, tokens = "".join(self._texts), self._tokens
        self._texts, self._tokens = [], []
        return text, tokens

    async def wait(self) -> None:
        """Return once there is text to take or the run ended."""
        if self.ready():
            return
        run = self._run
        listening = run.on_event is None
        if listening:
            run.on_event = self._wake
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
            if listening:
                run.on_event = None

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the run ends or the inbox is closed meanwhile (more
        text does not wake it)."""
        task = self._run.task
        if self._run.ended is not None or self.closed or task is None or task.done():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._pausing = waiter

        def ended(_task: Any) -> None:
            _resolve(waiter)

        timer = loop.call_later(seconds, _resolve, waiter)
        task.add_done_callback(ended)
        try:
            await waiter
        finally:
            self._pausing = None
            timer.cancel()
            task.remove_done_callback(ended)

    async def linger(self, step: float, until: float) -> None:
        """Wait while the text keeps coming: return after the first ``step`` seconds that
        brought none (the producer paused: what came goes out now), when the run ends or the
        inbox is closed, or at ``until`` (the loop's time) at the latest."""
        loop = asyncio.get_running_loop()
        while True:
            left = until - loop.time()
            if left <= 0:
                return
            seen = self.arrived()
            await self.pause(min(step, left))
            if self.arrived() == seen or self._run.ended is not None or self.closed:
                return


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
