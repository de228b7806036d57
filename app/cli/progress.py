"""Feedback on a terminal for long CLI work, all of it on stderr and only when stderr is a
terminal: a progress bar with percentage and ETA for model loads and conversions (from the
provider's :class:`Progress` events), a live speed line while an answer streams to a
redirected stdout (erased at the end), and one closing speed line after the answer.

When stderr is not a terminal nothing of it is written; :class:`TerminalFeedback` then only
reports each new load phase once, on a line of its own (no carriage returns), for logs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from app.core.events import Progress

if TYPE_CHECKING:
    from app.core.engine import GenerationResult
    from app.core.live_figures import LiveFigures

DIM, RESET, ERASE = "\x1b[2m", "\x1b[0m", "\x1b[K"
BAR_WIDTH = 24
REDRAW_S = 0.1
"""At most ten redraws a second (a conversion may report thousands of steps)."""
LIVE_S = 0.25


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal (False for pipes, files and closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def format_duration(seconds: float) -> str:
    """``0.21 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TerminalFeedback:
    """Progress bar, live status and speed summary on ``err`` (see the module docstring)."""

    def __init__(
        self,
        err: TextIO,
        *,
        live: bool = True,
        clock: Callable[[], float] = time.perf_counter,
        tty: bool | None = None,
    ) -> None:
        self.err = err
        self.tty = is_terminal(err) if tty is None else tty
        self.live = live and self.tty
        """Show the live speed line (the caller turns it off when stdout is the same screen)."""
        self.clock = clock
        self._utf8 = "utf" in (getattr(err, "encoding", "") or "").lower()
        self._line: str | None = None  # "bar" or "status" while one is drawn, not erased
        self._phase: str | None = None
        self._phase_started = 0.0
        self._last_draw = float("-inf")
        self._last_fraction: float | None = None

    # ---------------------------------------------------------------- load progress
    def progress(self, event: Progress) -> None:
        """One :class:`Progress` event: redraw the bar (terminal) or name a new phase (log)."""
        now = self.clock()
        new_phase = event.phase != self._phase
        if new_phase:
            self._phase, self._phase_started, self._last_fraction = event.phase, now, None
        if not self.tty:
            if new_phase:
                self.err.write(f"{event.phase}: {event.message}\n" if event.message else f"{event.phase}\n")
                self.err.flush()
            return
        done = event.fraction is not None and event.fraction >= 1.0
        if not (new_phase or done or now - self._last_draw >= REDRAW_S):
            return
        self._draw(self._bar_line(event, now - self._phase_started), "bar")
        self._last_draw, self._last_fraction = now, event.fraction

    @property
    def sep(self) -> str:
        """The separator of a status line's parts (`` · ``, or `` - `` where UTF-8 is not sure)."""
        return " · " if self._utf8 else " - "

    def bar(self, fraction: float) -> str:
        """``[████░░░░]`` for ``fraction`` (0..1)."""
        full, empty = ("█", "░") if self._utf8 else ("#", "-")
        filled = int(round(min(1.0, max(0.0, fraction)) * BAR_WIDTH))
        return f"[{full * filled}{empty * (BAR_WIDTH - filled)}]"

    def _bar_line(self, event: Progress, elapsed: float) -> str:
        sep = self.sep
        parts = [event.phase]
        if event.fraction is not None:
            f = min(1.0, max(0.0, event.fraction))
            parts.append(f"{self.bar(f)} {f * 100:3.0f}%")
            if event.eta_s is not None and f < 1.0:
                parts.append(f"ETA {format_duration(event.eta_s)}")
        elif elapsed >= 1.0:
            parts.append(format_duration(elapsed))
        line = "  ".join(parts)
        return line + (f"{sep}{event.message}" if event.message else "")

    # ---------------------------------------------------------------- streaming
    def streaming(self, live: LiveFigures) -> None:
        """While the answer streams: a live line with tokens so far and speed (throttled)."""
        if not self.live or live.final:
            return
        now = self.clock()
        if now - self._last_draw < LIVE_S:
            return
        self._last_draw = now
        tps = live.tokens_per_s
        sep = " · " if self._utf8 else " - "
        n = live.tokens
        line = f"streaming{sep}{n:,} token{'s' if n != 1 else ''}"
        if tps:
            line += f"{sep}{tps:.1f} tok/s"
        self._draw(line, "status")

    def status(self, line: str) -> None:
        """Show one status line (a retry's countdown) in place, on a terminal only."""
        if self.tty:
            self._draw(line, "status")

    def reasoning_started(self) -> None:
        """A thinking model's reasoning goes to stderr now: no live line over it."""
        self.clear()
        self.live = False

    # ---------------------------------------------------------------- drawing
    @property
    def drawing_bar(self) -> bool:
        """True while a progress bar is on the screen."""
        return self._line == "bar"

    def _draw(self, line: str, kind: str) -> None:
        width = _columns(self.err)
        if len(line) >= width:
            line = line[: max(1, width - 2)] + ("…" if self._utf8 else ">")
        self.err.write(f"\r{line}{ERASE}")
        self.err.flush()
        self._line = kind

    def clear(self) -> None:
        """Erase the bar or status line (terminal), so what follows starts clean."""
        if self._line:
            self.err.write(f"\r{ERASE}")
            self.err.flush()
            self._line = None

    # ---------------------------------------------------------------- closing line
    def summary(self, result: GenerationResult) -> str:
        """``31.2 tok/s · first token 0.21 s · 128 tokens`` (with ``loaded in 19.7 s`` first
        when a model was loaded for this answer)."""
        sep = " · " if self._utf8 else " - "
        parts: list[str] = []
        ttft = result.ttft_s  # from the end of a model load: the load is named apart
        load = result.load_s
        if load is not None and load >= 0.05:
            parts.append(f"loaded in {format_duration(load)}")
        if result.tokens_per_s:
            parts.append(f"{result.tokens_per_s:.1f} tok/s")
        if ttft is not None:
            parts.append(f"first token {format_duration(ttft)}")
        tokens = result.usage.completion_tokens
        approx = "~" if result.usage.estimated else ""
        parts.append(f"{approx}{tokens:,} token{'s' if tokens != 1 else ''}")
        return sep.join(parts)

    def finish(self, result: GenerationResult) -> None:
        """After a successful answer: erase the live line, print the speed line (terminal)."""
        self.clear()
        if not self.tty:
            return
        self.err.write(f"{DIM}{self.summary(result)}{RESET}\n")
        self.err.flush()


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80
    return max(20, columns) if columns > 0 else 80  # 0: a terminal that does not know
