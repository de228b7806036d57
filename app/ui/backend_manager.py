"""The window's way to the models: a thin Qt adapter over the core's
:class:`~app.core.selection.ModelSelection` (the current model, its load, its adapters) and
:class:`~app.core.runs.RunScheduler` (the runs). It decides nothing the CLI does not: it turns
their typed events into Qt signals, emitted on the GUI thread (the qasync loop): a run's
events are forwarded as they are, the streamed pieces in one signal and the rest in another.

Signals:
    run_delta(RunText | RunReasoning event): a piece of a run's answer (with its tokens'
        probabilities when asked for) or of its reasoning, apart from run_event so that only
        who shows text pays for them. Deltas come one per streamed token, except those with
        tokens: a run's consecutive ones of one loop turn come merged (:mod:`app.ui.delta_batch`).
    run_event(RunEvent event): every other event of this window's runs, as the scheduler
        typed it (:mod:`app.core.run_events`): RunStarted, RunNotice, RunStats (at most ~10 per
        second, plus one final), RunRetrying, RunProgress, then exactly one of RunFinished /
        RunFailed / RunCancelled. Receivers dispatch on the event's type.
    busy_changed(bool busy): this window's runs started / all ended.
    model_changed(str model_id)
    model_loading(str model_id, Progress progress): ``progress.fraction`` None when unknown.
    model_loaded(str model_id)
    model_load_failed(str model_id, str message)
    models_listed(ModelListing listing)
    adapters_changed(tuple[AdapterInfo, ...] adapters): with the current scale / on-off.
    adapter_failed(str message)
    state_restored(list[str] notes): :meth:`BackendManager.restore` ended (notes: adapters
        missing or changed).
    ledger_changed(): after each recorded generation.
    error_occurred(str message): anything else worth showing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from types import ModuleType
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QObject, Signal

from app.core.engine import GenerationResult
from app.core.errors import AppError, redact
from app.core.figures import MessageFigures
from app.core.lazy_events import run_events
from app.core.selection import ModelSelection, SelectionHooks
from app.core.services import Services
from app.core.types import (
    AdapterInfo,
    AdapterSpec,
    ChatMessage,
    GenerationParams,
    GenerationRequest,
)
from app.ui.delta_batch import DeltaBatch

if TYPE_CHECKING:  # the runs' modules load with the first run (~14 dataclasses not needed at start)
    from app.core.run_events import RunCancelled, RunEvent, RunFailed, RunFinished, RunText
    from app.core.runs import Run, RunListener, RunScheduler

log = logging.getLogger(__name__)
ENDED_KEPT = 32
"""How many ended runs' figures are kept for :meth:`BackendManager.ended_figures`."""


class BackendManager(QObject):
    """Qt signals over the model selection and the run scheduler (see the module doc)."""

    run_delta = Signal(object)
    run_event = Signal(object)
    busy_changed = Signal(bool)
    model_changed = Signal(str)
    model_loading = Signal(str, object)
    model_loaded = Signal(str)
    model_load_failed = Signal(str, str)
    models_listed = Signal(object)
    adapters_changed = Signal(object)
    adapter_failed = Signal(str)
    state_restored = Signal(object)
    ledger_changed = Signal()
    error_occurred = Signal(str)

    def __init__(self, services: Services, parent: QObject | None = None, *, model_id: str | None = None) -> None:
        super().__init__(parent)
        self.services = services
        hooks = SelectionHooks(self.model_changed.emit, self.model_loading.emit, self.model_loaded.emit,
                               self.model_load_failed.emit, self.adapters_changed.emit, self.adapter_failed.emit,
                               self.error_occurred.emit)  # fmt: skip
        self.selection = ModelSelection(services.registry, model_id or services.default_model(), hooks)
        self._runs: dict[str, Run] = {}
        self._loading_runs: set[str] = set()
        self._ended_figures: dict[str, MessageFigures] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._listeners: dict[str, RunListener] = {}
        self._held: set[asyncio.Task[object]] = set()
        """Tool loops under way: busy between their steps too (see :meth:`hold`)."""
        self._deltas = DeltaBatch(self._emit_delta)

    @property
    def scheduler(self) -> RunScheduler:
        """The services' run scheduler (built on the first run)."""
        return self.services.scheduler

    # -- tasks ---------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[object, None, object]) -> asyncio.Task[object]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def is_busy(self) -> bool:
        """True while one of this window's runs (an answer or a compare) is queued or running,
        or a tool loop is under way (between its steps too)."""
        return bool(self._runs or self._held)

    def hold(self, task: asyncio.Task[object]) -> None:
        """Stay busy until ``task`` (a tool loop) ends; :meth:`stop` cancels it."""
        was_busy = self.is_busy()
        self._held.add(task)
        task.add_done_callback(self._release)
        if not was_busy:
            self.busy_changed.emit(True)

    def _release(self, task: asyncio.Task[object]) -> None:
        self._held.discard(task)
        if not self.is_busy():
            self.busy_changed.emit(False)

    # -- the model (delegated to the selection) ------------------------------------------------
    def current_model(self) -> str:
        """The current model id (``provider:model``)."""
        return self.selection.model_id

    def current_endpoint(self) -> str | None:
        """The endpoint of the current model (OpenAI-compatible models), or None."""
        return self.selection.endpoint

    def is_remote(self, model_id: str | None = None) -> bool:
        """True for models served over HTTP (adapters do not apply)."""
        return self.selection.is_remote(model_id)

    def needs_load(self, model_id: str | None = None) -> bool:
        """True when ``model_id`` is an in-process model that is not loaded yet."""
        return self.selection.needs_load(model_id)

    def set_model(self, model_id: str, *, endpoint: str | None = None) -> None:
        """Make ``model_id`` current at once (in-process models load in a task; a failed load
        brings the previous model back)."""
        previous = self.selection.choose(model_id, endpoint)
        if previous is not None:
            self._spawn(self.selection.finish_choice(model_id, previous))

    def refresh_models(self) -> None:
        """List every provider's models in a task; emits models_listed."""
        self._spawn(self._refresh())

    async def _refresh(self) -> None:
        try:
            listing = await self.services.list_all_models()
        except Exception as exc:  # list_all_models reports per provider; this is a bug guard
            self.error_occurred.emit(redact(f"Listing models failed: {exc}"))
            return
        self.models_listed.emit(listing)

    # -- adapters (delegated to the selection) -------------------------------------------------
    def load_adapter(self, path: str) -> None:
        """Validate and load an adapter in a task; emits adapters_changed or adapter_failed."""
        self._spawn(self.selection.load_adapter(path))

    def unload_adapter(self, name: str) -> None:
        """Unload an adapter (in a task)."""
        self._spawn(self.selection.unload_adapter(name))

    def set_adapter_enabled(self, name: str, enabled: bool) -> None:
        """Switch an adapter on/off for the next requests."""
        self.selection.set_adapter(name, enabled=enabled)

    def set_adapter_scale(self, name: str, scale: float) -> None:
        """Set an adapter's scale for the next requests."""
        self.selection.set_adapter(name, scale=scale)

    def adapters(self) -> list[AdapterInfo]:
        """Loaded adapters with the current scale and on/off state."""
        return self.selection.adapters()

    def active_adapters(self) -> tuple[AdapterSpec, ...]:
        """The adapters the next request uses."""
        return self.selection.active_adapters()

    def restore(self, model_id: str, endpoint: str | None, adapters: Sequence[AdapterSpec] | None) -> None:
        """Bring back a conversation's or a branch's model and adapters in a task (see
        :meth:`ModelSelection.restore`); emits state_restored with what the user should know."""

        async def _restore() -> None:
            try:
                notes = await self.selection.restore(model_id, endpoint, adapters)
            except Exception as exc:  # a bug guard: the window stays usable
                log.exception("restoring %s failed", model_id)
                notes = [redact(f"The conversation's model could not be restored: {exc}")]
            self.state_restored.emit(notes)

        self._spawn(_restore())

    # -- runs ----------------------------------------------------------------------------------
    def request(self, messages: Sequence[ChatMessage], params: GenerationParams, *, model_id: str | None = None,
                endpoint: str | None = None, adapters: Sequence[AdapterSpec] | None = None) -> GenerationRequest:
        """A request for ``model_id`` (default: the current model, at its endpoint, with the
        active adapters; see :meth:`ModelSelection.request`)."""
        return self.selection.request(messages, params, model_id=model_id, endpoint=endpoint, adapters=adapters)

    def generate(self, request: GenerationRequest, *, conversation_id: str | None = None,
                 message_id: int | None = None, tag: str | None = None) -> str:
        """Start one answer to ``request`` (sent as it is); return its run id. Raises AppError
        while another one runs (nothing is sent then). ``tag``: the ledger row's (a tool loop's id)."""
        self._refuse_when_busy()
        return self._submit(request, conversation_id, message_id, tag)

    def listen(self, run_id: str, listener: RunListener) -> None:
        """Also give ``listener`` every event of the run ``run_id`` (after the signals)."""
        if run_id in self._runs:
            self._listeners[run_id] = listener

    def submit_step(self, request: GenerationRequest, *, on_event: RunListener | None = None,
                    conversation_id: str | None = None, message_id: int | None = None, tag: str | None = None,
                    run_id: str | None = None) -> Run:  # fmt: skip
        """A tool loop's next step (the scheduler's ``submit``): a run of this window (its
        events as signals, then to ``on_event``), even while the loop holds it busy."""
        rid = self._submit(request, conversation_id, message_id, tag, run_id)
        if on_event is not None:
            self._listeners[rid] = on_event
        return self._runs[rid]

    def compare(self, messages: Sequence[ChatMessage], params: GenerationParams,
                adjust: Callable[[GenerationRequest], GenerationRequest] | None = None) -> tuple[str, str]:
        """Answer with the base model and with the active adapters (the model worker runs them
        one after the other); returns the two run ids. ``adjust``: applied to both requests
        (e.g. the Tools panel's tools and schema)."""
        self._refuse_when_busy()
        tuned = self.selection.request(messages, params)
        if adjust is not None:
            tuned = adjust(tuned)
        base = replace(tuned, adapters=())
        return self._submit(base, None, None), self._submit(tuned, None, None)

    def run(self, run_id: str) -> Run | None:
        """One of this window's runs that has not ended, by id."""
        return self._runs.get(run_id)

    def _refuse_when_busy(self) -> None:
        if self._runs:
            raise AppError("A generation is already running.", hint="Press Stop first, or wait for it to finish.")

    def _submit(self, request: GenerationRequest, conversation_id: str | None, message_id: int | None,
                tag: str | None = None, run_id: str | None = None) -> str:
        was_busy = self.is_busy()
        run = self.scheduler.submit(request, on_event=self._on_run_event, conversation_id=conversation_id,
                                    message_id=message_id, tag=tag, run_id=run_id)
        self._runs[run.id] = run
        if not was_busy:
            self.busy_changed.emit(True)
        return run.id

    def stop(self) -> None:
        """Stop this window's runs (their partial text is reported as cancelled) and tool loops."""
        for run in list(self._runs.values()):
            run.cancel()
        for task in list(self._held):
            task.cancel()

    def cancel(self, run_id: str) -> None:
        """Stop one of this window's runs."""
        run = self._runs.get(run_id)
        if run is not None:
            run.cancel()

    def _on_run_event(self, event: RunEvent) -> None:
        ev = run_events()  # not an import per token (see app.core.lazy_events)
        try:
            self._dispatch(event, ev)
        finally:
            listener = self._listeners.get(event.run_id)
            if listener is not None:
                if isinstance(event, ev.RunFinished | ev.RunFailed | ev.RunCancelled):
                    del self._listeners[event.run_id]
                listener(event)

    def _emit_delta(self, event: RunText) -> None:
        if shiboken6.isValid(self):  # merged deltas come a turn later: the window may be gone
            self.run_delta.emit(event)

    def _dispatch(self, event: RunEvent, ev: ModuleType) -> None:
        rid = event.run_id
        if isinstance(event, ev.RunText):  # the hot path: one event per streamed token
            if rid in self._loading_runs:
                self._loaded(rid)
            self._deltas.add(event)
            return
        self._deltas.flush()  # the text before this event, in order
        if isinstance(event, ev.RunReasoning):
            self.run_delta.emit(event)
            return
        if isinstance(event, ev.RunProgress):
            self._loading_runs.add(rid)
            self.model_loading.emit(self._runs[rid].info.model, event.progress)
        elif isinstance(event, ev.RunFinished | ev.RunFailed | ev.RunCancelled):
            self._ended(event)
            return
        self.run_event.emit(event)

    def _loaded(self, run_id: str) -> None:
        self._loading_runs.discard(run_id)
        model = self._runs[run_id].info.model
        self.selection.mark_loaded(model)
        self.model_loaded.emit(model)

    def ended_figures(self, run_id: str) -> MessageFigures | None:
        """The recorded figures of a run that ended lately (a stopped or failed one too), as the
        ledger has them; None when unknown."""
        return self._ended_figures.get(run_id)

    def _ended(self, event: RunFinished | RunFailed | RunCancelled) -> None:
        from app.core.run_events import RunFailed, RunFinished

        rid = event.run_id
        run = self._runs.get(rid)
        figures = run.generation.figures() if run is not None else None
        if figures is not None:
            self._ended_figures[rid] = figures
            while len(self._ended_figures) > ENDED_KEPT:
                del self._ended_figures[next(iter(self._ended_figures))]
        if rid in self._loading_runs:
            if isinstance(event, RunFinished):
                self._loaded(rid)
            else:
                self._loading_runs.discard(rid)
                message = event.message if isinstance(event, RunFailed) else "The load was stopped."
                self.model_load_failed.emit(self._runs[rid].info.model, message)
        self._runs.pop(rid, None)
        if not self.is_busy():  # before the final event, so its handlers may send again
            self.busy_changed.emit(False)
        self.run_event.emit(event)
        self.ledger_changed.emit()

    # -- shutdown ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop this window's runs and tasks and wait for them (bounded)."""
        runs = list(self._runs.values())
        self.stop()
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        waits = [asyncio.ensure_future(r.wait()) for r in runs]
        if tasks or waits:
            await asyncio.wait([*tasks, *waits], timeout=5)


__all__ = ["BackendManager", "GenerationResult"]
