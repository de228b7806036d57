"""The one thread that owns all local model state.

Jobs are plain callables run one at a time, in order, on the worker thread; each
:meth:`ModelWorker.submit` returns an asyncio future of the caller's loop. While no job is
queued the worker runs its idle task (:meth:`ModelWorker.set_idle`) one short slice at a time,
so a job waits for one slice at most; :meth:`ModelWorker.wait_idle` waits until nothing is left. Streaming jobs
push their events back with :class:`LoopSink` (``loop.call_soon_threadsafe`` into an
``asyncio.Queue``). Nothing here imports torch: the jobs do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
WORKER_KEY = "model_worker"
IdleTask = Callable[[], bool]
"""One slice of background work (a short step); returns False when nothing is left to do."""


def default_threads(setting: int | None = None) -> int:
    """Torch threads for generation: the setting, else all cores but one (kept for the UI)."""
    if setting:
        return setting
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass
class _Job:
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


def _resolve(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class ModelWorker:
    """A single daemon thread running submitted jobs in order.

    ``state`` is a free-form dict that only jobs (running on this thread) may touch; the
    local providers keep their runtime (model, tokenizer, adapters) there.
    """

    def __init__(self, threads: int | None = None, name: str = "model-worker") -> None:
        self.threads = default_threads(threads)
        self.state: dict[str, Any] = {}
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._idle: IdleTask | None = None
        self._pending = 0  # jobs queued or running
        self._quiet = threading.Condition()

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread once started."""
        return self._thread

    def on_worker_thread(self) -> bool:
        """True when called from the worker thread."""
        return threading.current_thread() is self._thread

    def _ensure_started(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("The model worker is closed.")
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
                self._thread.start()

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn`` and return a future of the running loop with its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._ensure_started()
        self._put(_Job(fn, loop, fut))
        return fut

    def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``fn`` on the worker and block until it returns (scripts and benchmarks)."""
        if self.on_worker_thread():
            return fn()
        self._ensure_started()
        job = _Job(fn, None, None)
        self._put(job)
        if not job.done.wait(timeout):
            raise TimeoutError("The model worker did not answer in time.")
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _put(self, job: _Job) -> None:
        with self._quiet:
            self._pending += 1
        self._queue.put(job)

    def set_idle(self, task: IdleTask | None) -> None:
        """Run ``task`` (replacing the previous one; None: none) while no job is queued, a slice
        per call, until it returns False or raises. Worker thread only (a job sets it)."""
        with self._quiet:
            self._idle = task
            self._quiet.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running and the idle task is done; False on timeout
        (benchmarks, and tests: a user reads an answer before asking the next question)."""
        if self.on_worker_thread():
            raise RuntimeError("wait_idle() on the model worker would wait for itself.")
        with self._quiet:
            return self._quiet.wait_for(lambda: self._pending == 0 and self._idle is None, timeout)

    def _run_idle(self, task: IdleTask) -> None:
        try:
            more = task()
        except Exception:  # background work only: nothing waits on it
            log.exception("model worker idle task failed")
            more = False
        if not more:
            with self._quiet:
                if self._idle is task:
                    self._idle = None
                self._quiet.notify_all()

    def _next(self) -> _Job | None:
        """The next job; while none is queued, the idle task's slices run in between."""
        while True:
            task = self._idle
            if task is None:
                return self._queue.get()
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                self._run_idle(task)

    def _main(self) -> None:
        try:
            import torch

            torch.set_num_threads(self.threads)
        except ImportError:  # the lite flavour: jobs will report the missing library
            pass
        while True:
            job = self._next()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                with self._quiet:
                    self._pending -= 1
                    self._quiet.notify_all()
            del job  # drop references to results (a model must be freeable at once)

    @staticmethod
    def _run(job: _Job) -> None:
        if job.future is not None and job.future.cancelled():
            return
        try:
            job.result = job.fn()
        except BaseException as exc:  # handed to the caller, never lost
            job.error = exc
        job.done.set()
        if job.loop is not None and job.future is not None:
            try:
                job.loop.call_soon_threadsafe(_resolve, job.future, job.result, job.error)
            except RuntimeError:  # the caller's loop is closed: nobody waits any more
                log.debug("model worker result dropped: loop closed")

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after the queued jobs (state is cleared by a final job)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._put(_Job(self._clear, None, None))
            self._queue.put(None)
            thread.join(timeout)


    def _clear(self) -> None:
        self.set_idle(None)
        self.state.clear()


class LoopSink:
    """Delivers items from the worker thread into an ``asyncio.Queue`` of one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        """Thread-safe put; silently dropped when the loop is closed."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:
            pass


def worker_for(extra: dict[str, object], threads: int | None = None) -> ModelWorker:
    """The one :class:`ModelWorker` of a provider context (created on first use)."""
    worker = extra.get(WORKER_KEY)
    if not isinstance(worker, ModelWorker):
        worker = ModelWorker(threads)
        extra[WORKER_KEY] = worker
    return worker
