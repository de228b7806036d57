"""The run scheduler: many generation requests at once, each a *run* with an id, typed events
(:mod:`app.core.run_events`), cancel-one and cancel-all. The CLI, ``LLMModel``, the window and
the Workbench all go through it; each run goes through the :class:`~app.core.engine.Engine`,
so every one is timed, priced and recorded in the ledger.

Runs wait in *lanes*:

- a remote endpoint's lane (``openai:`` models, per base URL) runs up to N requests at once
  (``settings.max_concurrent_per_endpoint``, default 4); a 429 holds back that endpoint's
  lane only, for as long as the server asked;
- the ``mock`` provider has a lane of its own, bounded the same way;
- in-process models (``local:``, ``huggingface:``) share one lane of width 1: the model
  worker. Waiting runs for the model that is loaded go first, so a model is loaded once for a
  group of runs and only its adapters are hot-swapped between them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core.engine import Engine, Generation, GenerationResult, LiveStats
from app.core.errors import AppError, ConfigError, RateLimited, StreamInterrupted, redact
from app.core.events import (
    Notice,
    Progress,
    ReasoningDelta,
    Retrying,
    StreamEvent,
    TextDelta,
)
from app.core.lanes import Lane, Ticket
from app.core.run_events import (
    LiveFigures,
    RunCancelled,
    RunEnded,
    RunEvent,
    RunFailed,
    RunFinished,
    RunInfo,
    RunNotice,
    RunProgress,
    RunQueued,
    RunReasoning,
    RunRetrying,
    RunStarted,
    RunStats,
    RunText,
)
from app.core.types import GenerationRequest

log = logging.getLogger(__name__)

RunListener = Callable[[RunEvent], None]
RunStatus = Literal["queued", "running", "finished", "failed", "cancelled"]
STATS_INTERVAL_S = 0.1
LOCAL_LANE = "local"
DEFAULT_BACKOFF_S = 5.0
"""How long a lane holds back after a 429 that named no Retry-After."""


async def _next_turn() -> None:
    """Let the event loop turn once. A stop that comes meanwhile is too late: the answer is
    complete (and recorded so), and it ends as finished."""
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()


def new_run_id() -> str:
    """A short unique run id."""
    return uuid.uuid4().hex[:12]


@dataclass(eq=False)
class Run:
    """One submitted request. ``await run`` gives its :class:`GenerationResult` (or raises its
    :class:`AppError` / ``CancelledError``); :meth:`wait` gives its final event, never raising."""

    info: RunInfo
    on_event: RunListener | None = None
    status: RunStatus = "queued"
    generation: Generation = field(init=False)
    ended: RunEnded | None = None
    task: asyncio.Task[None] | None = None
    stats_at: float = 0.0
    """When live figures were last sent (the scheduler throttles them)."""

    def __post_init__(self) -> None:
        self.generation = Generation(self.info.request)

    @property
    def id(self) -> str:
        """The run id."""
        return self.info.run_id

    @property
    def request(self) -> GenerationRequest:
        """What the run sends."""
        return self.info.request

    @property
    def text(self) -> str:
        """The answer so far (the partial text of a failed or cancelled run)."""
        return self.generation.text

    def done(self) -> bool:
        """True once the run ended (finished, failed or cancelled)."""
        return self.ended is not None

    def cancel(self) -> None:
        """Stop the run (waiting or streaming); its partial text is kept."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def wait(self) -> RunEnded:
        """The run's final event (waits for it; cancelling the waiter does not cancel the run)."""
        if self.task is not None and not self.task.done():
            await asyncio.wait([self.task])
        if self.ended is None:  # cancelled before it ever ran; its final event is still to come
            return RunCancelled(self.id)  # (not kept: the scheduler ends it and says so once)
        return self.ended

    def __await__(self) -> Generator[Any, None, GenerationResult]:
        ended = yield from self.wait().__await__()
        if isinstance(ended, RunFinished):
            return ended.result
        if isinstance(ended, RunFailed):
            raise ended.error
        raise asyncio.CancelledError()


class RunScheduler:
    """Runs generation requests concurrently in lanes (see the module doc). Qt-free.

    Listeners added with :meth:`subscribe` see every run's events; a run's own ``on_event``
    sees its own first. An exception from a run's ``on_event`` stops that run (the CLI stops
    generating when stdout closes); one from a subscriber is logged and ignored.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        per_endpoint: int | Callable[[], int] | None = None,
        stats_interval_s: float = STATS_INTERVAL_S,
    ) -> None:
        self.engine = engine
        if per_endpoint is None:
            settings = engine.registry.context.settings
            self._per_endpoint: Callable[[], int] = lambda: settings.max_concurrent_per_endpoint
        elif isinstance(per_endpoint, int):
            self._per_endpoint = lambda: per_endpoint
        else:
            self._per_endpoint = per_endpoint
        self.stats_interval_s = stats_interval_s
        self._lanes: dict[str, Lane] = {}
        self._runs: dict[str, Run] = {}
        self._listeners: list[RunListener] = []

    # -- listening -------------------------------------------------------------------------
    def subscribe(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener`` with every run's events; returns the function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, run: Run, event: RunEvent) -> None:
        if run.on_event is not None:
            run.on_event(event)
        self._broadcast(event)

    def _broadcast(self, event: RunEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the run
                log.exception("a run listener failed on %s", type(event).__name__)

    # -- runs ------------------------------------------------------------------------------
    def submit(  # fmt: skip
        self, request: GenerationRequest, *, on_event: RunListener | None = None, conversation_id: str | None = None,
        message_id: int | None = None, tag: str | None = None, run_id: str | None = None,
    ) -> Run:
        """Queue ``request`` as a run and return it at once (it starts when its lane is free).
        Must be called on the running event loop."""
        info = RunInfo(run_id or new_run_id(), request, conversation_id, message_id, tag)
        run = Run(info, on_event)
        self._runs[run.id] = run
        run.task = asyncio.ensure_future(self._execute(run))
        run.task.add_done_callback(lambda _t: self._finalize(run, RunCancelled(run.id)))
        self._broadcast(RunQueued(run.id, info))
        return run

    async def run(self, request: GenerationRequest, **kwargs: Any) -> GenerationResult:
        """Submit ``request`` and wait for its result (raises its error; see :meth:`submit`)."""
        return await self.submit(request, **kwargs)

    def get(self, run_id: str) -> Run | None:
        """A run that has not ended yet, by id."""
        return self._runs.get(run_id)

    def active(self, tag: str | None = None) -> list[Run]:
        """Runs that have not ended (with ``tag``, only those)."""
        return [r for r in self._runs.values() if tag is None or r.info.tag == tag]

    def busy(self, tag: str | None = None) -> bool:
        """True while a run (with ``tag``) is queued or running."""
        return bool(self.active(tag))

    def cancel(self, run_id: str) -> bool:
        """Stop one run; False when no such run is active."""
        run = self._runs.get(run_id)
        if run is None:
            return False
        run.cancel()
        return True

    def cancel_all(self, tag: str | None = None) -> int:
        """Stop every active run (with ``tag``, only those); returns how many."""
        runs = self.active(tag)
        for run in runs:
            run.cancel()
        return len(runs)

    def lane_key(self, request: GenerationRequest) -> str:
        """The lane a request waits in: the model worker, the mock, or its endpoint's URL."""
        ref = request.model
        if ref.in_process:
            return LOCAL_LANE
        if not ref.caps.endpoints:
            return ref.provider
        try:
            return "endpoint:" + self.engine.registry.context.settings.resolve_endpoint(request.endpoint).base_url
        except ConfigError:  # the run itself reports the unknown endpoint
            return "endpoint:" + (request.endpoint or "")

    def lane(self, key: str) -> Lane:
        """The lane called ``key`` (made on first use)."""
        lane = self._lanes.get(key)
        if lane is None:
            if key == LOCAL_LANE:
                lane = Lane(key, lambda: 1, grouped=True)
            else:
                lane = Lane(key, self._per_endpoint)
            self._lanes[key] = lane
        return lane

    async def aclose(self) -> None:
        """Cancel every run and wait for them to end (bounded)."""
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    # -- one run ---------------------------------------------------------------------------
    async def _execute(self, run: Run) -> None:
        lane = self.lane(self.lane_key(run.request))
        final: RunEnded
        try:
            await lane.acquire(Ticket(run.info.model))
            try:
                run.status = "running"
                run.generation.restart_clock()  # the wait in the lane is not the model's time
                self._emit(run, RunStarted(run.id, run.info))
                result = await self.engine.run(
                    run.request,
                    lambda event, stats: self._on_engine_event(run, lane, event, stats),
                    conversation_id=run.info.conversation_id,
                    generation=run.generation,
                    tag=run.info.tag,
                )
            except RateLimited as exc:  # hold the endpoint back before the next run starts
                lane.pause(exc.retry_after if exc.retry_after is not None else DEFAULT_BACKOFF_S)
                raise
            finally:
                lane.release()
            await _next_turn()  # the end's handlers get a loop turn of their own, apart from the last tokens'
            run.status = "finished"
            self._final_stats(run, result)
            final = RunFinished(run.id, result)
        except asyncio.CancelledError:
            final = RunCancelled(run.id, run.text, run.generation.reasoning)
        except AppError as exc:
            run.status = "failed"
            partial = exc.partial_text if isinstance(exc, StreamInterrupted) and exc.partial_text else run.text
            final = RunFailed(run.id, exc, partial, run.generation.reasoning)
        except Exception as exc:  # a bug must never leave a run (or the UI) stuck
            log.exception("run %s failed", run.id)
            run.status = "failed"
            error = StreamInterrupted(redact(f"Unexpected error: {type(exc).__name__}: {exc}"), partial_text=run.text)
            final = RunFailed(run.id, error, run.text, run.generation.reasoning)
        self._finalize(run, final)

    def _finalize(self, run: Run, final: RunEnded) -> None:
        """End ``run`` with ``final`` (once; a run cancelled before it ran ends here too)."""
        if run.ended is not None:
            return
        run.ended = final
        if isinstance(final, RunCancelled):
            if run.status == "queued":  # stopped before it was sent: recorded as such, at no cost
                self.engine.record_unsent(run.request, "cancelled", conversation_id=run.info.conversation_id,
                                          tag=run.info.tag)
            run.status = "cancelled"
        self._runs.pop(run.id, None)  # before the final event: its handlers may submit again
        try:
            self._emit(run, final)
        except Exception:  # the run is over; a failing callback must not hide that
            log.exception("the final event of run %s failed in its callback", run.id)

    def _on_engine_event(self, run: Run, lane: Lane, event: StreamEvent, stats: LiveStats) -> None:
        """Engine event -> run events (hot path: one call per streamed token)."""
        if isinstance(event, TextDelta):
            self._emit(run, RunText(run.id, event.text, event.tokens))
        elif isinstance(event, ReasoningDelta):
            self._emit(run, RunReasoning(run.id, event.text))
        elif isinstance(event, Progress):
            self._emit(run, RunProgress(run.id, event))
            return
        elif isinstance(event, Notice):
            self._emit(run, RunNotice(run.id, event.message))
            return
        elif isinstance(event, Retrying):
            left = event.delay_s if event.seconds_left is None else event.seconds_left
            if event.rate_limited:
                lane.pause(left)
            self._emit(run, RunRetrying(run.id, event.attempt, event.delay_s, event.message, left))
            return
        else:
            return
        now = time.perf_counter()
        if now - run.stats_at >= self.stats_interval_s:
            run.stats_at = now
            self._emit(run, RunStats(run.id, self._live(run, stats, now)))

    def _live(self, run: Run, stats: LiveStats, now: float) -> LiveFigures:
        gen, engine = run.generation, self.engine
        return LiveFigures(tokens=stats.chunks, tokens_per_s=stats.tokens_per_s(now=now), ttft_s=stats.ttft_s,
                           cost_usd=engine.live_cost(gen), elapsed_s=now - stats.created,
                           reasoning_tokens=stats.reasoning_chunks, prompt_tokens=engine.prompt_estimate(gen))

    def _final_stats(self, run: Run, result: GenerationResult) -> None:
        stats = run.generation.stats
        figures = LiveFigures(tokens=result.usage.completion_tokens, tokens_per_s=result.tokens_per_s,
                              ttft_s=result.ttft_s, cost_usd=result.cost_usd,
                              elapsed_s=time.perf_counter() - stats.created,
                              reasoning_tokens=stats.reasoning_chunks, prompt_tokens=result.usage.prompt_tokens,
                              final=True)
        try:
            self._emit(run, RunStats(run.id, figures))
        except Exception:
            log.exception("the final figures of run %s failed in its callback", run.id)
