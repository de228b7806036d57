"""Streamed pieces merged per loop turn before they cross into Qt.

A fast stream hands the window many tokens in one turn of the event loop (a local model's
batch, a fast server's buffered SSE chunks, the mock's 64-token steps). Each signal emission
and each slot after it costs microseconds per token: with probabilities on that was ~17 us a
token, several milliseconds of one turn at 80k tokens. :class:`DeltaBatch` keeps the
:class:`~app.core.run_events.RunText` events that carry tokens until the turn ends
(``loop.call_soon``) and emits each run's consecutive ones as one event: the texts joined,
the tokens in order. Nothing is reordered: any other event of any run is emitted only after
:meth:`DeltaBatch.flush`, which the caller runs first.

Events without tokens are passed on at once: their receivers tell a delta apart from the
answer's given start by counting them (see ``ChatSession``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from itertools import chain
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.core.run_events import RunText


class DeltaBatch:
    """Holds token-carrying text events until the loop's turn ends, then ``emit``s them merged."""

    def __init__(self, emit: Callable[[RunText], None]) -> None:
        self._emit = emit
        self._held: list[RunText] = []
        self._due = False

    def add(self, event: RunText) -> None:
        """Emit ``event`` now, or hold it for the end of this turn (it carries tokens and a loop runs)."""
        if event.tokens:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._held.append(event)
                if not self._due:
                    self._due = True
                    loop.call_soon(self.flush)
                return
        self.flush()
        self._emit(event)

    def flush(self) -> None:
        """Emit what is held: each run's consecutive events as one."""
        self._due = False
        held, self._held = self._held, []
        start = 0
        for i in range(1, len(held) + 1):
            if i == len(held) or held[i].run_id != held[start].run_id:
                self._emit(_merged(held[start:i]))
                start = i


def _merged(events: list[RunText]) -> RunText:
    if len(events) == 1:
        return events[0]
    return replace(events[0], text="".join(e.text for e in events),
                   tokens=tuple(chain.from_iterable(e.tokens for e in events)))  # fmt: skip


__all__ = ["DeltaBatch"]
