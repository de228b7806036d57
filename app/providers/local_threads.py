"""Torch's thread count for the lean decode step, chosen by timing real steps against the load.

:class:`OtherLoad` measures how many cores other processes keep busy; :class:`ThreadTuner`
probes the candidate counts on early decode steps of a generation, and again every so many
steps, and keeps the fastest.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class OtherLoad:
    """Cores kept busy by *other* processes, averaged since the previous call.

    On Linux it reads the busy CPU time of the whole machine from ``/proc/stat`` and takes
    away this process's own (``time.process_time``, all its threads). The load average,
    the fallback elsewhere, counts our own last generation for a minute after it ends: on a
    2-core machine that kept the next generation on one core (58 vs 76 tok/s measured).
    Windows shorter than ``MIN_WINDOW`` keep the previous figure (the counters tick in 10 ms).
    A window longer than ``STALE_S`` says what ran then, not now (a client's previous request
    seconds ago, a job that has ended since: another process's 3 s decode between two served
    requests kept the next one on one core, 51 vs 70 tok/s measured), so it gives 0: the tuner
    then probes every count and the step timings decide.
    """

    MIN_WINDOW = 0.2
    STALE_S = 2.0

    def __init__(self, stat: str = "/proc/stat", clock: Callable[[], float] = time.monotonic,
                 own: Callable[[], float] = time.process_time) -> None:  # fmt: skip
        self.stat = stat
        self.clock = clock
        self.own = own
        try:
            self.tick = float(os.sysconf("SC_CLK_TCK"))
        except (AttributeError, ValueError, OSError):
            self.tick = 100.0
        self.busy = 0.0
        self._last = self._sample()

    def _machine_busy(self) -> float | None:
        """Busy CPU seconds of all cores since boot, or None without /proc/stat."""
        try:
            with open(self.stat, encoding="ascii") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu" or len(fields) < 5:
            return None
        values = [float(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        return (sum(values) - values[3] - values[4]) / self.tick

    def _sample(self) -> tuple[float, float | None, float]:
        return self.clock(), self._machine_busy(), self.own()

    def __call__(self) -> float:
        """Busy cores of other processes since the previous call (0 on the first, and after
        more than ``STALE_S``)."""
        wall, machine, own = now = self._sample()
        last_wall, last_machine, last_own = self._last
        window = wall - last_wall
        if window < self.MIN_WINDOW:
            return self.busy
        self._last = now
        if window > self.STALE_S:
            self.busy = 0.0
            return self.busy
        if machine is not None and last_machine is not None:
            others = (machine - last_machine) - (own - last_own)
        else:
            loadavg = getattr(os, "getloadavg", None)
            if loadavg is None:  # Windows: no figure; the tuner then probes every count
                raise OSError("no load figures on this system")
            others = loadavg()[0] * window - (own - last_own)
        self.busy = max(0.0, others / window)
        return self.busy


class ThreadTuner:
    """Picks torch's thread count from what is free now, by timing real decode steps.

    Counts above what other processes leave free (:class:`OtherLoad`) are not tried. The first decode steps
    of a generation (after ``SKIP``) run in turn with each remaining candidate count
    (``PROBE_ROUNDS`` each), again every ``RECHECK`` steps; the steps between use the fastest, preferring fewer
    threads when within 5%. On a 2-core machine the candidates are 1 and 2: two threads
    win on an idle machine, one when another process keeps the second core busy (then a
    step on two threads can take 10x longer, so a higher count that lost by more than 30%
    is probed again only after ``BACKOFF`` generations).
    """

    PROBE_ROUNDS = 2
    SKIP = 4  # the first steps after the prefill are not representative (the first token's
    # work everywhere: its event, the ledger row, a served response's headers, its client; on
    # SKIP = 1 a third of the served generations in a bench ran on one thread: 59 vs 76 tok/s)
    RECHECK = 128  # the probe is made again every RECHECK steps: a wrong choice, or a load that
    # came or went, lasts that long at most (two probe steps at the slower count: ~0.5%)
    BACKOFF = 4

    def __init__(self, cpu_count: int | None = None, others: Callable[[], float] | None = None) -> None:
        n = max(1, cpu_count or os.cpu_count() or 1)
        self.cpu_count = n
        self.candidates = sorted({1, n} if n <= 2 else {max(1, n // 2), n - 1, n})
        self.best = self.candidates[0]
        self._others = others or OtherLoad()
        self.history: list[dict[int, float]] = []  # per generation: median seconds per step
        self._samples: dict[int, list[float]] = {}
        self._probe: list[int] = []
        self._rested: dict[int, int] = {}  # candidate -> generations left before probing it again
        self.generations = 0

    def free_cores(self) -> int:
        """Cores that other processes leave free now (our own threads do not count)."""
        try:
            busy = self._others()
        except OSError:
            return self.cpu_count
        return max(1, min(self.cpu_count, round(self.cpu_count - busy)))

    def start(self) -> int:
        """A generation starts: choose what to probe; threads for the prefill (the last choice)."""
        self.generations += 1
        free = self.free_cores()  # never probe more threads than the load leaves cores for
        probe = [c for c in self.candidates
                 if c == self.candidates[0] or (c <= free and (self._rested.get(c, 0) <= 0 or c == self.best))]
        if self.best not in probe:
            self.best = max(probe)
        for c in self.candidates:
            self._rested[c] = max(0, self._rested.get(c, 0) - 1)
        self._probe = probe if len(probe) > 1 else []
        self._samples = {c: [] for c in self._probe}
        return self.best

    def _probe_index(self, step: int) -> int | None:
        """Where decode step ``step`` falls in a probe (0-based), or None outside the probes."""
        rel = step - self.SKIP
        if rel < 0 or not self._probe:
            return None
        rel %= self.RECHECK
        return rel if rel < self.PROBE_ROUNDS * len(self._probe) else None

    def threads_for(self, step: int) -> int:
        """Threads for decode step ``step`` (0-based) of this generation."""
        probe = self._probe_index(step)
        return self.best if probe is None else self._probe[probe % len(self._probe)]

    def record(self, step: int, threads: int, seconds: float) -> None:
        """The time of decode step ``step`` run with ``threads``; decides after each probe."""
        probe = self._probe_index(step)
        if probe is None or threads not in self._samples:
            return
        self._samples[threads].append(seconds)
        if probe < self.PROBE_ROUNDS * len(self._probe) - 1:
            return
        medians = {c: statistics.median(v) for c, v in self._samples.items() if v}
        fastest = min(medians.values())
        self.best = min(c for c, t in medians.items() if t <= fastest * 1.05)
        for c, t in medians.items():
            if c > self.best and t > fastest * 1.3:  # more threads collapsed: rest them a while
                self._rested[c] = self.BACKOFF
        self._probe = [c for c in self._probe if self._rested.get(c, 0) <= 0 or c == self.best]
        if len(self._probe) < 2:
            self._probe = []
        self._samples = {c: [] for c in self._probe}
        self.history.append(medians)
        log.debug("threads: %s -> %d", {c: round(t * 1000, 2) for c, t in medians.items()}, self.best)
