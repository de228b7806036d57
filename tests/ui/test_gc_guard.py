"""Cyclic garbage is collected on the GUI thread, never by the model worker thread."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

from app.ui.gc_guard import FULL_WAIT_MAX_S, GuiThreadCollector


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_collection_happens_on_the_gui_thread_only(qloop: Any) -> None:
    was_enabled = gc.isenabled()
    threads: set[str] = set()

    def _seen(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            threads.add(threading.current_thread().name)

    collector = GuiThreadCollector(interval_ms=10)
    gc.callbacks.append(_seen)
    try:
        assert not gc.isenabled()

        def worker() -> None:  # allocates far past gen-0's threshold, as generation does
            junk = [[_Node()] for _ in range(5 * gc.get_threshold()[0])]
            del junk

        t = threading.Thread(target=worker, name="model-worker")
        t.start()
        t.join(10)
        node = _Node()
        ref = weakref.ref(node)
        del node
        assert "model-worker" not in threads

        async def until_collected() -> None:
            while ref() is not None or gc.get_count()[0] > gc.get_threshold()[0]:
                await asyncio.sleep(0.01)

        qloop.run_until_complete(asyncio.wait_for(until_collected(), 10))
        assert ref() is None and collector.collections > 0
        assert threads == {threading.main_thread().name}
    finally:
        gc.callbacks.remove(_seen)
        collector.stop()
    assert gc.isenabled() == was_enabled


def test_a_start_up_run_with_collection_off_is_frozen_and_given_back(qloop: Any) -> None:
    """The launcher turns collection off before its imports and hands the collector the state
    it found: what the start-up made is frozen (never walked again), later cycles are still
    collected, and stop() gives back both the frozen objects and automatic collection."""
    was_enabled = gc.isenabled()
    gc.disable()  # as launch.main does before importing the window
    collector = GuiThreadCollector(interval_ms=10, was_enabled=True)
    try:
        collector.freeze_start()
        assert gc.get_freeze_count() > 0
        later = _Node()
        ref = weakref.ref(later)
        del later
        for _ in range(3 * gc.get_threshold()[0]):  # enough allocations for the timer to collect
            _Node()

        async def until_collected() -> None:
            while ref() is not None:
                await asyncio.sleep(0.01)

        qloop.run_until_complete(asyncio.wait_for(until_collected(), 10))
    finally:
        collector.stop()
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()  # the state the launcher found, not the one it made
    if not was_enabled:
        gc.disable()


def test_a_full_collection_waits_while_an_answer_streams_but_not_for_long(qapp: Any) -> None:
    now = [0.0]
    busy = [True]
    passes: list[int] = []

    def _seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    collector = GuiThreadCollector(interval_ms=60_000, clock=lambda: now[0])
    collector.busy = lambda: busy[0]
    gc.callbacks.append(_seen)
    try:
        def full_due() -> None:
            while gc.get_count()[2] <= gc.get_threshold()[2]:
                gc.collect(1)
            passes.clear()

        full_due()
        collector.check()
        now[0] += FULL_WAIT_MAX_S - 1
        collector.check()
        assert 2 not in passes  # it waits while the answer streams (the younger ones may go on)
        now[0] += 1
        collector.check()
        assert passes[-1] == 2  # but never longer than the bound
        full_due()
        busy[0] = False
        collector.check()
        assert passes == [2]  # nothing streams: at once
    finally:
        gc.callbacks.remove(_seen)
        collector.stop()
