"""Time left in a load or conversion from the fraction done at a steady rate (the CLI's bar
and the window's status line both say it). Imports nothing heavy: the window's start uses it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def eta_seconds(fraction: float | None, elapsed: float) -> float | None:
    """Time left at a steady rate, or None while too little is done to tell."""
    if fraction is None or fraction < 0.01 or fraction >= 1.0 or elapsed < 0.5:
        return None
    return elapsed * (1.0 - fraction) / fraction


def format_eta(seconds: float) -> str:
    """``about 12 s left`` / ``about 3 min left``."""
    if seconds < 60:
        return f"about {max(1, math.ceil(seconds))} s left"
    return f"about {math.ceil(seconds / 60)} min left"


class LoadTimer:
    """Times each phase of a load, for an ETA from the fraction done at a steady rate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._key: tuple[str, str] | None = None
        self._started = 0.0

    def seconds_left(self, model_id: str, phase: str, fraction: float | None) -> float | None:
        """Time left in this phase, or None while too little is done to tell."""
        now = self._clock()
        if self._key != (model_id, phase):
            self._key, self._started = (model_id, phase), now
            return None
        return eta_seconds(fraction, now - self._started)

    def reset(self) -> None:
        """Forget the phase (the load ended)."""
        self._key = None
