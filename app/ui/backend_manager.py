"""The UI's only way to the models: owns the active model, runs generations as asyncio tasks
on the qasync loop and reports everything through Qt signals (emitted on the GUI thread).

Signals:
    generation_started(str gen_id, object info): info = dict(model, endpoint, adapters,
        conversation_id, message_id).
    token_received(str gen_id, str text): raw deltas (consumers coalesce).
    reasoning_received(str gen_id, str text): a thinking model's raw reasoning deltas (before or
        between the answer's; never part of the answer text; consumers coalesce).
    stats_updated(str gen_id, object live): dict(tokens, tokens_per_s, ttft_s, cost_usd,
        elapsed_s, reasoning_tokens), at most ~10 per second, plus one final update. While
        streaming ``tokens`` are answer tokens (reasoning_tokens apart; ttft_s is the first
        answer token); the final update carries the usage's completion tokens (reasoning included).
    generation_finished(str gen_id, object result): an ``app.core.engine.GenerationResult``.
    generation_failed(str gen_id, str message, str partial_text)
    generation_cancelled(str gen_id, str partial_text)
    busy_changed(bool busy)
    model_changed(str model_id)
    model_loading(str model_id, str phase, float fraction): fraction -1.0 when unknown.
    model_loaded(str model_id)
    model_load_failed(str model_id, str message): the previous model stays selected.
    models_listed(object listing): a ``ModelListing``.
    adapters_changed(object adapters): list of AdapterInfo with the current scale/active.
    adapter_failed(str message)
    ledger_changed(): after each recorded generation.
    error_occurred(str message): anything else worth showing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.engine import GenerationResult, LiveStats
from app.core.errors import AppError, StreamInterrupted, redact
from app.core.events import Progress, ReasoningDelta, StreamEvent, TextDelta, UsageReport
from app.core.services import Services
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef

log = logging.getLogger(__name__)
LOCAL_PROVIDERS = ("local", "huggingface")
STATS_INTERVAL_S = 0.1


class BackendManager(QObject):
    """Owns the active model and runs generations; see the module doc for the signals."""

    generation_started = Signal(str, object)
    token_received = Signal(str, str)
    reasoning_received = Signal(str, str)
    stats_updated = Signal(str, object)
    generation_finished = Signal(str, object)
    generation_failed = Signal(str, str, str)
    generation_cancelled = Signal(str, str)
    busy_changed = Signal(bool)
    model_changed = Signal(str)
    model_loading = Signal(str, str, float)
    model_loaded = Signal(str)
    model_load_failed = Signal(str, str)
    models_listed = Signal(object)
    adapters_changed = Signal(object)
    adapter_failed = Signal(str)
    ledger_changed = Signal()
    error_occurred = Signal(str)

    def __init__(self, services: Services, parent: QObject | None = None, *, model_id: str | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self._model = model_id or services.default_model()
        self._endpoint: str | None = None
        self._loaded: set[str] = set()
        self._gen_task: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._adapters: dict[str, Any] = {}
        self._busy = False
        self._loading: str | None = None
        self._started: set[str] = set()

    # -- tasks ---------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def is_busy(self) -> bool:
        """True while a generation (or a compare) runs."""
        return self._busy

    # -- models --------------------------------------------------------------------------------
    def current_model(self) -> str:
        """The active model id (``provider:model``)."""
        return self._model

    def current_endpoint(self) -> str | None:
        """The endpoint of the active model (OpenAI-compatible models), or None."""
        return self._endpoint

    def is_remote(self, model_id: str | None = None) -> bool:
        """True for models served over HTTP (adapters do not apply)."""
        try:
            return ModelRef.parse(model_id or self._model).provider == "openai"
        except AppError:
            return False

    def needs_load(self, model_id: str | None = None) -> bool:
        """True when ``model_id`` is an in-process model that is not loaded yet."""
        mid = model_id or self._model
        return ModelRef.parse(mid).provider in LOCAL_PROVIDERS and mid not in self._loaded

    def set_model(self, model_id: str, *, endpoint: str | None = None) -> None:
        """Switch the active model. Local models load in a task (progress via model_loading);
        when a load fails the previous model stays active."""
        try:
            ref = ModelRef.parse(model_id)
        except AppError as exc:
            self.model_load_failed.emit(model_id, exc.user_message())
            return
        if ref.provider in LOCAL_PROVIDERS and model_id not in self._loaded:
            self._spawn(self._load(model_id, endpoint))
            return
        self._activate(model_id, endpoint)

    def _activate(self, model_id: str, endpoint: str | None) -> None:
        changed = model_id != self._model or endpoint != self._endpoint
        self._model, self._endpoint = model_id, endpoint
        if changed:
            self._adapters_for_model()
            self.model_changed.emit(model_id)

    def _adapters_for_model(self) -> None:
        """Adapters belong to the base model they were loaded on: another model drops them."""
        if self._adapters:
            names = ", ".join(self._adapters)
            self._adapters.clear()
            self.adapters_changed.emit([])
            self.error_occurred.emit(
                f"LoRA adapters {names} were unloaded: they were made for the previous model. "
                "Load adapters for this model in the LoRA panel."
            )

    async def _load(self, model_id: str, endpoint: str | None) -> bool:
        ref = ModelRef.parse(model_id)
        loop = asyncio.get_running_loop()
        self._loading = model_id

        def on_progress(p: Progress) -> None:
            frac = -1.0 if p.fraction is None else float(p.fraction)
            loop.call_soon_threadsafe(self.model_loading.emit, model_id, p.phase, frac)

        self.model_loading.emit(model_id, "starting", -1.0)
        try:
            provider = self.services.registry.get(ref.provider)
            load = getattr(provider, "load", None)
            if load is not None:
                await load(ref.name, on_progress=on_progress)
        except asyncio.CancelledError:
            self._loading = None
            raise
        except Exception as exc:  # a failed load keeps the previous model
            msg = exc.user_message() if isinstance(exc, AppError) else redact(f"{type(exc).__name__}: {exc}")
            log.warning("loading %s failed: %s", model_id, msg)
            self._loading = None
            self.model_load_failed.emit(model_id, msg)
            return False
        self._loading = None
        self._loaded = {model_id}
        self.model_loaded.emit(model_id)
        self._activate(model_id, endpoint)
        return True

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

    # -- generation ----------------------------------------------------------------------------
    def generate(self, messages: list[ChatMessage], params: GenerationParams, *, conversation_id: str | None = None,
                 endpoint: str | None = None, model_id: str | None = None, message_id: int | None = None) -> str:
        """Start one generation in a task; return its id. Raises AppError when one is running."""
        if self._busy:
            raise AppError("A generation is already running.", hint="Press Stop first, or wait for it to finish.")
        gen_id = uuid.uuid4().hex[:12]
        mid = model_id or self._model
        ep = endpoint if endpoint is not None else (self._endpoint if mid == self._model else None)
        adapters = self.active_adapters() if not self.is_remote(mid) else ()
        self._start([(gen_id, mid, ep, adapters)], messages, params, conversation_id, message_id)
        return gen_id

    def compare(self, messages: list[ChatMessage], params: GenerationParams) -> tuple[str, str]:
        """Answer with the base model, then with the active adapters (sequentially)."""
        if self._busy:
            raise AppError("A generation is already running.", hint="Press Stop first, or wait for it to finish.")
        a, b = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        runs = [(a, self._model, self._endpoint, ()), (b, self._model, self._endpoint, self.active_adapters())]
        self._start(runs, messages, params, None, None)
        return a, b

    def _start(self, runs: list[tuple[str, str, str | None, tuple[AdapterSpec, ...]]], messages: list[ChatMessage],
               params: GenerationParams, conversation_id: str | None, message_id: int | None) -> None:
        self._set_busy(True)
        task = self._spawn(self._run_all(runs, messages, params, conversation_id, message_id))
        self._gen_task = task

        def done(t: asyncio.Task[Any]) -> None:  # also runs when cancelled before it started
            if self._gen_task is task:
                self._gen_task = None
                self._set_busy(False)
            if t.cancelled() and runs[0][0] not in self._started:  # stopped before it began
                self.generation_cancelled.emit(runs[0][0], "")
            for r in runs:
                self._started.discard(r[0])

        task.add_done_callback(done)

    def stop(self) -> None:
        """Cancel the running generation (its partial text is reported as cancelled)."""
        if self._gen_task is not None and not self._gen_task.done():
            self._gen_task.cancel()

    async def _run_all(self, runs: list[tuple[str, str, str | None, tuple[AdapterSpec, ...]]],
                       messages: list[ChatMessage], params: GenerationParams,
                       conversation_id: str | None, message_id: int | None) -> None:
        for i, (gen_id, mid, ep, adapters) in enumerate(runs):
            ok, final = await self._run_one(gen_id, mid, ep, adapters, messages, params, conversation_id, message_id)
            if not ok or i == len(runs) - 1:
                self._gen_task = None
                self._set_busy(False)  # before the final signal, so its handlers may send again
                final()
                return
            final()

    async def _run_one(self, gen_id: str, model_id: str, endpoint: str | None, adapters: tuple[AdapterSpec, ...],
                       messages: list[ChatMessage], params: GenerationParams, conversation_id: str | None,
                       message_id: int | None) -> tuple[bool, Callable[[], None]]:
        """Run one generation; return (finished ok, the deferred final emission)."""
        parts: list[str] = []
        info = {
            "model": model_id,
            "endpoint": endpoint,
            "adapters": [self._adapter_dict(a) for a in adapters],
            "conversation_id": conversation_id,
            "message_id": message_id,
        }
        self._started.add(gen_id)
        self.generation_started.emit(gen_id, info)
        try:
            ref = ModelRef.parse(model_id)
            if self.needs_load(model_id) and not await self._load(model_id, endpoint):
                raise AppError(f"The model {model_id} could not be loaded.", hint="Pick another model.")
            request = GenerationRequest(ref, tuple(messages), params, endpoint, adapters)
            live = _LiveCost(self, gen_id, request)
            result = await self.services.engine.run(
                request, lambda ev, st: live.on_event(ev, st, parts), conversation_id=conversation_id
            )
            live.emit(result.ttft_s, result.tokens_per_s, result.usage.completion_tokens, result.cost_usd,
                      live.reasoning_tokens)
        except asyncio.CancelledError:
            partial = "".join(parts)
            return False, lambda: self._final(self.generation_cancelled.emit, gen_id, partial)
        except StreamInterrupted as exc:
            msg, partial = exc.user_message(), exc.partial_text or "".join(parts)
            return False, lambda: self._final(self.generation_failed.emit, gen_id, msg, partial)
        except Exception as exc:  # AppError, or a bug: never leave the UI stuck in "generating"
            if isinstance(exc, AppError):
                msg = exc.user_message()
            else:
                log.exception("generation %s failed", gen_id)
                msg = redact(f"Unexpected error: {type(exc).__name__}: {exc}")
            partial = "".join(parts)
            return False, lambda: self._final(self.generation_failed.emit, gen_id, msg, partial)
        return True, lambda: self._final(self.generation_finished.emit, gen_id, result)

    def _final(self, emit: Callable[..., None], *args: Any) -> None:
        emit(*args)
        self.ledger_changed.emit()

    def _adapter_dict(self, spec: AdapterSpec) -> dict[str, Any]:
        info = self._adapters.get(spec.name or "")
        return {"name": spec.name, "path": spec.path, "scale": spec.scale,
                "sha256": getattr(info, "sha256", None)}

    # -- adapters ------------------------------------------------------------------------------
    def _local_provider(self) -> Any:
        ref = ModelRef.parse(self._model)
        if ref.provider not in LOCAL_PROVIDERS:
            raise AppError("Adapters work with local models only.",
                           hint="Pick a Hugging Face or local model first; remote models cannot take a LoRA.")
        return self.services.registry.get(ref.provider)

    def load_adapter(self, path: str) -> None:
        """Validate and load an adapter in a task; emits adapters_changed or adapter_failed."""
        self._spawn(self._load_adapter(path))

    async def _load_adapter(self, path: str) -> None:
        try:
            provider = self._local_provider()
            if self.needs_load() and not await self._load(self._model, self._endpoint):
                raise AppError("The model could not be loaded, so the adapter was not loaded.")
            info = await provider.load_adapter(path)
        except AppError as exc:
            self.adapter_failed.emit(exc.user_message())
            return
        except Exception as exc:  # unexpected: show it in plain words, keep the app usable
            log.exception("loading adapter %s failed", path)
            self.adapter_failed.emit(redact(f"The adapter could not be loaded: {exc}"))
            return
        self._adapters[info.name] = dataclasses.replace(info, active=True)
        self.adapters_changed.emit(self.adapters())

    def unload_adapter(self, name: str) -> None:
        """Unload an adapter (in a task)."""
        self._spawn(self._unload_adapter(name))

    async def _unload_adapter(self, name: str) -> None:
        self._adapters.pop(name, None)
        try:
            await self._local_provider().unload_adapter(name)
        except AppError as exc:
            self.adapter_failed.emit(exc.user_message())
        self.adapters_changed.emit(self.adapters())

    def set_adapter_enabled(self, name: str, enabled: bool) -> None:
        """Switch an adapter on/off for the next requests."""
        if name in self._adapters:
            self._adapters[name] = dataclasses.replace(self._adapters[name], active=bool(enabled))
            self.adapters_changed.emit(self.adapters())

    def set_adapter_scale(self, name: str, scale: float) -> None:
        """Set an adapter's scale for the next requests."""
        if name in self._adapters:
            self._adapters[name] = dataclasses.replace(self._adapters[name], scale=float(scale))
            self.adapters_changed.emit(self.adapters())

    def adapters(self) -> list[Any]:
        """Loaded adapters (AdapterInfo) with the current scale and on/off state."""
        return list(self._adapters.values())

    def active_adapters(self) -> tuple[AdapterSpec, ...]:
        """The adapters the next request uses."""
        return tuple(AdapterSpec(a.path, a.scale, a.name) for a in self._adapters.values() if a.active)

    # -- shutdown ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Cancel every task and wait for them (bounded)."""
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


class _LiveCost:
    """Turns engine events into throttled stats_updated emissions (and token_received)."""

    def __init__(self, backend: BackendManager, gen_id: str, request: GenerationRequest) -> None:
        self.backend = backend
        self.gen_id = gen_id
        self.request = request
        self.prompt_tokens = 0
        try:
            provider = backend.services.registry.get(request.model.provider)
            self.prompt_tokens = provider.count_tokens(request.model.name, list(request.messages)).tokens
        except Exception:  # counting is best effort for the live figure
            log.debug("prompt count failed", exc_info=True)
        self.started = time.perf_counter()
        self.last = 0.0
        self.reasoning_tokens = 0

    def on_event(self, event: StreamEvent, stats: LiveStats, parts: list[str]) -> None:
        if isinstance(event, TextDelta):
            parts.append(event.text)
            self.backend.token_received.emit(self.gen_id, event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning_tokens = stats.reasoning_chunks
            self.backend.reasoning_received.emit(self.gen_id, event.text)
        else:
            return
        now = time.perf_counter()
        if now - self.last >= STATS_INTERVAL_S:
            self.last = now
            generated = stats.chunks + stats.reasoning_chunks  # reasoning is billed as completion
            cost = self.backend.services.engine.cost(
                self.request.model, UsageReport(self.prompt_tokens, generated, estimated=True), self.request.endpoint
            )
            self.emit(stats.ttft_s, stats.tokens_per_s(), stats.chunks, cost, stats.reasoning_chunks)

    def emit(self, ttft: float | None, tps: float | None, tokens: int, cost: Any, reasoning_tokens: int = 0) -> None:
        self.backend.stats_updated.emit(self.gen_id, {
            "tokens": tokens, "tokens_per_s": tps, "ttft_s": ttft, "cost_usd": cost,
            "elapsed_s": time.perf_counter() - self.started, "reasoning_tokens": reasoning_tokens,
        })


__all__ = ["BackendManager", "GenerationResult"]
