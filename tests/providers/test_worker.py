"""The model worker: one thread, jobs in order, results as asyncio futures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.providers.worker import LoopSink, ModelWorker, default_threads, worker_for


@pytest.fixture
def worker() -> Iterator[ModelWorker]:
    w = ModelWorker(threads=1)
    yield w
    w.close()


def test_jobs_run_on_the_worker_thread_not_the_loop(worker: ModelWorker, run: Callable[..., Any]) -> None:
    async def scenario() -> tuple[threading.Thread, threading.Thread]:
        job_thread = await worker.submit(threading.current_thread)
        return job_thread, threading.current_thread()

    job_thread, loop_thread = run(scenario(), timeout=10)
    assert job_thread is worker.thread
    assert job_thread is not loop_thread


def test_jobs_run_one_at_a_time_in_order(worker: ModelWorker, run: Callable[..., Any]) -> None:
    release = threading.Event()
    order: list[str] = []

    def first() -> str:
        release.wait(10)
        order.append("first")
        return "first"

    def second() -> str:
        order.append("second")
        return "second"

    async def scenario() -> list[str]:
        f1 = worker.submit(first)
        f2 = worker.submit(second)
        await asyncio.sleep(0)  # give the worker a chance to (wrongly) run the second job
        assert not f2.done()
        release.set()
        return list(await asyncio.gather(f1, f2))

    assert run(scenario(), timeout=10) == ["first", "second"]
    assert order == ["first", "second"]


def test_errors_reach_the_caller_and_the_worker_keeps_going(worker: ModelWorker, run: Callable[..., Any]) -> None:
    def boom() -> None:
        raise ValueError("bad")

    async def scenario() -> int:
        with pytest.raises(ValueError, match="bad"):
            await worker.submit(boom)
        return await worker.submit(lambda: 42)

    assert run(scenario(), timeout=10) == 42


def test_the_worker_outlives_event_loops(worker: ModelWorker, run: Callable[..., Any]) -> None:
    worker.state["n"] = 0

    def bump() -> int:
        worker.state["n"] += 1
        return int(worker.state["n"])

    async def via_loop() -> int:
        return await worker.submit(bump)

    assert run(via_loop(), timeout=10) == 1
    assert run(via_loop(), timeout=10) == 2
    assert worker.call(bump, timeout=10) == 3


def test_loop_sink_delivers_items_in_order(worker: ModelWorker, run: Callable[..., Any]) -> None:
    async def scenario() -> list[int]:
        sink = LoopSink(asyncio.get_running_loop())

        def produce() -> None:
            for i in range(100):
                sink.put(i)
            sink.put(None)

        worker.submit(produce)
        got = []
        while (item := await sink.queue.get()) is not None:
            got.append(item)
        return got

    assert run(scenario(), timeout=10) == list(range(100))


def test_close_clears_state_and_refuses_new_jobs(run: Callable[..., Any]) -> None:
    w = ModelWorker(threads=1)
    w.state["model"] = object()
    w.call(lambda: None, timeout=10)
    w.close()
    assert w.state == {}
    assert w.thread is not None and not w.thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        w.call(lambda: None)


def test_one_worker_per_context_and_thread_default() -> None:
    extra: dict[str, object] = {}
    w = worker_for(extra)
    assert worker_for(extra) is w
    assert default_threads(3) == 3
    assert default_threads(None) >= 1
    w.close()


def test_idle_work_runs_between_jobs_and_a_job_waits_one_slice_at_most(worker: ModelWorker,
                                                                        run: Callable[..., Any]) -> None:  # fmt: skip
    """An idle task runs a slice at a time while nothing is queued; a job queued during a slice
    runs right after that slice; then the task goes on until it says it is done."""
    slices: list[int] = []
    in_slice, queued = threading.Event(), threading.Event()

    def task() -> bool:
        slices.append(len(slices))
        if len(slices) == 2:  # the job is queued while this slice runs
            in_slice.set()
            assert queued.wait(10)
        return len(slices) < 6

    async def scenario() -> int:
        await worker.submit(lambda: worker.set_idle(task))
        assert await asyncio.to_thread(in_slice.wait, 10)
        job = worker.submit(lambda: len(slices))
        queued.set()
        return await asyncio.wait_for(job, 10)

    assert run(scenario(), timeout=20) == 2  # no slice ran after the one in flight
    assert worker.wait_idle(10)
    assert slices == list(range(6))  # it went on after the job, to its end


def test_an_idle_task_that_fails_or_is_replaced_stops(worker: ModelWorker) -> None:
    calls: list[str] = []

    def boom() -> bool:
        calls.append("boom")
        raise RuntimeError("bad")

    def forever() -> bool:
        calls.append("forever")
        return True

    worker.call(lambda: worker.set_idle(boom))
    assert worker.wait_idle(10) and calls == ["boom"]  # logged, then dropped
    worker.call(lambda: worker.set_idle(forever))
    worker.call(lambda: worker.set_idle(None))  # replaced: it never runs again
    assert worker.wait_idle(10)
    n = len(calls)
    assert worker.call(lambda: len(calls)) == n
    with pytest.raises(RuntimeError, match="wait for itself"):
        worker.call(lambda: worker.wait_idle(1))


def test_wait_idle_times_out_while_a_job_runs(worker: ModelWorker, run: Callable[..., Any]) -> None:
    release = threading.Event()

    async def scenario() -> tuple[bool, bool]:
        job = worker.submit(lambda: release.wait(10))
        busy = await asyncio.to_thread(worker.wait_idle, 0.05)
        release.set()
        await asyncio.wait_for(job, 10)
        return busy, await asyncio.to_thread(worker.wait_idle, 10)

    assert run(scenario(), timeout=20) == (False, True)
