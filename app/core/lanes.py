"""Lanes of the run scheduler: runs waiting for a slot of one endpoint (or the model worker),
started as slots free up; a paused lane (after a 429) starts nothing until its pause ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Ticket:
    """A run waiting in a lane: its model (grouped lanes start the last model's runs first)."""

    model: str
    future: asyncio.Future[None] | None = None


class Lane:
    """Runs of one endpoint (or the model worker): at most ``limit()`` at once; ``grouped``
    lanes start the waiting runs of the last started model first."""

    def __init__(self, key: str, limit: Callable[[], int], *, grouped: bool = False) -> None:
        self.key = key
        self._limit = limit
        self.grouped = grouped
        self.running = 0
        self.waiting: list[Ticket] = []
        self.paused_until = 0.0
        self.last_model: str | None = None
        self._wake: asyncio.TimerHandle | None = None

    def _free(self) -> bool:
        return self.running < max(1, self._limit()) and time.monotonic() >= self.paused_until

    async def acquire(self, ticket: Ticket) -> None:
        """Wait for a slot (raises CancelledError, holding none, when cancelled meanwhile)."""
        if not self.waiting and self._free():
            self._take(ticket)
            return
        ticket.future = asyncio.get_running_loop().create_future()
        self.waiting.append(ticket)
        self._pump()
        try:
            await ticket.future
        except asyncio.CancelledError:
            if ticket.future.done() and not ticket.future.cancelled():
                self.release()  # granted, then cancelled before it could start
            elif ticket in self.waiting:
                self.waiting.remove(ticket)
            raise

    def release(self) -> None:
        """Give a slot back and start whoever waits next."""
        self.running = max(0, self.running - 1)
        self._pump()

    def pause(self, seconds: float) -> None:
        """Start nothing new in this lane for ``seconds`` (a 429); running requests go on."""
        self.paused_until = max(self.paused_until, time.monotonic() + max(0.0, seconds))
        self._pump()

    def _take(self, ticket: Ticket) -> None:
        self.running += 1
        self.last_model = ticket.model

    def _pump(self) -> None:
        while self.waiting and self._free():
            index = 0
            if self.grouped and self.last_model is not None:
                index = next((i for i, t in enumerate(self.waiting) if t.model == self.last_model), 0)
            ticket = self.waiting.pop(index)
            if ticket.future is None or ticket.future.done():
                continue
            self._take(ticket)
            ticket.future.set_result(None)
        if self.waiting and self.paused_until > time.monotonic() and self._wake is None:
            loop = asyncio.get_running_loop()
            self._wake = loop.call_at(loop.time() + self.paused_until - time.monotonic(), self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._pump()
