"""Thread counts for the lean step: the load of other processes, probing counts by timing steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_thread_tuner_measures_each_count_and_prefers_fewer_threads() -> None:
    from app.providers.local_threads import ThreadTuner

    load = [0.2]  # cores other processes keep busy
    tuner = ThreadTuner(cpu_count=2, others=lambda: load[0])
    assert tuner.candidates == [1, 2] and tuner.start() == 1  # the first prefill: the fewest

    def generation(seconds: dict[int, float]) -> int:
        tuner.start()
        for step in range(10):
            threads = tuner.threads_for(step)
            tuner.record(step, threads, seconds[threads])
        return tuner.threads_for(10)

    assert generation({1: 0.020, 2: 0.012}) == 2  # idle machine: two threads win
    assert generation({1: 0.020, 2: 0.0195}) == 1  # within 5%: keep a core free
    assert generation({1: 0.020, 2: 0.200}) == 1  # the other core is busy: two collapse...
    probed = []
    for _ in range(ThreadTuner.BACKOFF + 1):  # ...and are not tried again for a few generations
        tuner.start()
        probed.append(sorted({tuner.threads_for(step) for step in range(10)}))
    assert probed[:-1] == [[1]] * ThreadTuner.BACKOFF and probed[-1] == [1, 2]
    load[0] = 2.5  # other processes keep both cores busy: two threads are not even tried
    assert generation({1: 0.020, 2: 0.012}) == 1
    load[0] = 1.2  # another process on one core: one is left, for our generation
    assert generation({1: 0.020, 2: 0.012}) == 1
    load[0] = 0.3  # a little: the second core is free
    assert generation({1: 0.020, 2: 0.012}) == 2
    assert ThreadTuner(cpu_count=16).candidates == [8, 15, 16]
    assert ThreadTuner(cpu_count=16, others=lambda: 8.0).free_cores() == 8
    assert ThreadTuner(cpu_count=1).candidates == [1]


def test_other_load_leaves_out_our_own_cpu_time(tmp_path: Path) -> None:
    """Busy cores of other processes: the machine's busy time since the last call minus ours."""
    from app.providers.local_threads import OtherLoad, ThreadTuner

    stat = tmp_path / "stat"
    clock, own = [0.0], [0.0]

    def machine(busy_ticks: int, idle_ticks: int) -> None:  # user nice system idle iowait irq softirq steal
        stat.write_text(f"cpu  {busy_ticks} 0 0 {idle_ticks} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")

    machine(1000, 5000)
    load = OtherLoad(str(stat), clock=lambda: clock[0], own=lambda: own[0])
    load.tick = 100.0
    assert load() == 0.0  # no window yet
    clock[0], own[0] = 10.0, 15.0  # 10 s: we used 1.5 cores ...
    machine(1000 + 1500, 5000 + 500)  # ... and the machine was 1.5 cores busy: only us
    assert load() == pytest.approx(0.0)
    clock[0], own[0] = 20.0, 20.0  # next 10 s: us 0.5 cores, the machine 1.5: another process on one
    machine(2500 + 1500, 5500 + 500)
    assert load() == pytest.approx(1.0)
    clock[0] = 20.05  # too short a window: the last figure
    assert load() == pytest.approx(1.0)
    assert ThreadTuner(cpu_count=2, others=load).free_cores() == 1  # the tuner's view of it
    stat.unlink()  # no /proc/stat: the load average minus our share, or no figure at all
    clock[0], own[0] = 30.0, 20.0
    if hasattr(os, "getloadavg"):
        assert load() >= 0.0
