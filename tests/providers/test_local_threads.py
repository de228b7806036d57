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


def test_thread_tuner_probes_again_during_a_long_generation() -> None:
    """A choice made on the early steps is checked again every RECHECK steps: a core that was
    busy then and is free now (or the other way round) changes the count mid-generation."""
    from app.providers.local_threads import ThreadTuner

    tuner = ThreadTuner(cpu_count=2, others=lambda: 0.0)
    tuner.start()
    seconds = {1: 0.020, 2: 0.0205}  # early steps: two threads no faster (a disturbance)
    chosen = []
    for step in range(ThreadTuner.SKIP + 2 * ThreadTuner.RECHECK):
        if step == ThreadTuner.SKIP + ThreadTuner.RECHECK // 2:
            seconds = {1: 0.020, 2: 0.012}  # the disturbance is over
        threads = tuner.threads_for(step)
        tuner.record(step, threads, seconds[threads])
        chosen.append(threads)
    after_first = ThreadTuner.SKIP + 2 * ThreadTuner.PROBE_ROUNDS
    assert set(chosen[after_first : ThreadTuner.SKIP + ThreadTuner.RECHECK]) == {1}
    assert set(chosen[ThreadTuner.SKIP + ThreadTuner.RECHECK + after_first - ThreadTuner.SKIP :]) == {2}
    assert len(tuner.history) == 2
    assert chosen[: ThreadTuner.SKIP] == [1] * ThreadTuner.SKIP  # the early steps: the last choice


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
    clock[0], own[0] = 1.0, 1.5  # 1 s: we used 1.5 cores ...
    machine(1000 + 150, 5000 + 50)  # ... and the machine was 1.5 cores busy: only us
    assert load() == pytest.approx(0.0)
    clock[0], own[0] = 2.0, 2.0  # next 1 s: us 0.5 cores, the machine 1.5: another process on one
    machine(1150 + 150, 5050 + 50)
    assert load() == pytest.approx(1.0)
    clock[0] = 2.05  # too short a window: the last figure
    assert load() == pytest.approx(1.0)
    assert ThreadTuner(cpu_count=2, others=load).free_cores() == 1  # the tuner's view of it
    clock[0] = 2.0 + OtherLoad.STALE_S + 1  # the other process was busy, but seconds ago: no figure
    machine(1300 + 600, 5100 + 0)
    assert load() == 0.0
    assert ThreadTuner(cpu_count=2, others=load).free_cores() == 2
    clock[0], own[0] = clock[0] + 1, 2.5  # a fresh window counts again
    machine(1900 + 200, 5100 + 0)
    assert load() == pytest.approx(1.5)
    stat.unlink()  # no /proc/stat: the load average minus our share, or no figure at all
    clock[0], own[0] = clock[0] + 1, 2.5
    if hasattr(os, "getloadavg"):
        assert load() >= 0.0
