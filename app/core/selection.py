"""The model a front end talks to: the chosen model and endpoint, its load, and the LoRA
adapters loaded onto it (with their scale and on/off state). Qt-free: the window's
``BackendManager`` turns its events into signals.

The choice is authoritative at once: :meth:`ModelSelection.select` makes the model current
before it has loaded, so a request built meanwhile goes to it (and waits for its load on the
model worker), never to the previous model. When the load fails, the previous model comes
back and a :class:`ModelLoadFailed` says why.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import AdapterError, AppError, redact
from app.core.events import Progress
from app.core.provider import LocalModelProvider, ProviderRegistry, as_local
from app.core.types import (
    AdapterInfo,
    AdapterSpec,
    ChatMessage,
    GenerationParams,
    GenerationRequest,
    ModelRef,
)

log = logging.getLogger(__name__)


def _ignore(*_args: object) -> None:
    """A hook nobody listens to."""


@dataclass
class SelectionHooks:
    """Who is told what (the window passes its Qt signals' ``emit``; by default nobody)."""

    changed: Callable[[str], None] = _ignore  # the current model id (or its endpoint) changed
    loading: Callable[[str, Progress], None] = _ignore  # a model is loading (fraction None: unknown)
    loaded: Callable[[str], None] = _ignore  # a model finished loading
    load_failed: Callable[[str, str], None] = _ignore  # (model id, message); the previous model is back
    adapters: Callable[[tuple[AdapterInfo, ...]], None] = _ignore  # the loaded adapters, scale, on/off
    adapter_failed: Callable[[str], None] = _ignore  # loading or unloading an adapter failed
    notice: Callable[[str], None] = _ignore  # worth telling (adapters dropped with their base model)


def _message(exc: BaseException) -> str:
    return exc.user_message() if isinstance(exc, AppError) else redact(f"{type(exc).__name__}: {exc}")


class ModelSelection:
    """The current model, its load and its adapters; reports changes through ``hooks``."""

    def __init__(self, registry: ProviderRegistry, model_id: str, hooks: SelectionHooks | None = None) -> None:
        self.registry = registry
        self.model_id = model_id
        self.endpoint: str | None = None
        self.hooks = hooks or SelectionHooks()
        self.loading: str | None = None
        """The model being loaded now, or None."""
        self._loaded: set[str] = set()
        self._adapters: dict[str, AdapterInfo] = {}


    # -- the model ---------------------------------------------------------------------------
    def ref(self, model_id: str | None = None) -> ModelRef:
        """The parsed id of ``model_id`` (default: the current model)."""
        return ModelRef.parse(model_id or self.model_id)

    def is_remote(self, model_id: str | None = None) -> bool:
        """True for models served over HTTP (adapters do not apply)."""
        try:
            return self.ref(model_id).caps.endpoints
        except AppError:
            return False

    def needs_load(self, model_id: str | None = None) -> bool:
        """True when ``model_id`` is an in-process model that is not loaded yet."""
        mid = model_id or self.model_id
        return self.ref(mid).in_process and mid not in self._loaded

    def choose(self, model_id: str, endpoint: str | None = None) -> tuple[str, str | None] | None:
        """Make ``model_id`` current now. Returns the previous (model, endpoint) when the new
        model still has to be loaded (then call :meth:`finish_choice`), else None. A malformed
        id changes nothing (a :class:`ModelLoadFailed` says why)."""
        try:
            ref = ModelRef.parse(model_id)
        except AppError as exc:
            self.hooks.load_failed(model_id, exc.user_message())
            return None
        previous = (self.model_id, self.endpoint)
        self._make_current(model_id, endpoint)
        if not ref.in_process or model_id in self._loaded:
            return None
        return previous

    async def finish_choice(self, model_id: str, previous: tuple[str, str | None]) -> bool:
        """Load the chosen ``model_id``; when that fails, ``previous`` is current again (unless
        another model was chosen meanwhile), then :class:`ModelLoadFailed` says why."""
        problem = await self._load(model_id)
        if problem is None:
            return True
        if self.model_id == model_id:
            self._make_current(*previous)
        self.hooks.load_failed(model_id, problem)
        return False

    async def select(self, model_id: str, endpoint: str | None = None) -> bool:
        """:meth:`choose` and, for an in-process model, load it. False when the id is bad or
        the load failed (the previous model is current again)."""
        previous = self.choose(model_id, endpoint)
        if previous is None:
            return self.model_id == model_id
        return await self.finish_choice(model_id, previous)

    async def load(self, model_id: str | None = None) -> bool:
        """Load an in-process model now (progress as :class:`ModelLoading`; a failure as
        :class:`ModelLoadFailed`)."""
        mid = model_id or self.model_id
        problem = await self._load(mid)
        if problem is not None:
            self.hooks.load_failed(mid, problem)
        return problem is None

    async def _load(self, mid: str) -> str | None:
        """Load ``mid``; the user message of what went wrong, or None."""
        provider = self._local_for(mid)
        if provider is None:
            return None
        self.loading = mid
        self.hooks.loading(mid, Progress("starting"))
        try:
            await provider.load(self.ref(mid).name, on_progress=lambda p: self.hooks.loading(mid, p))
        except Exception as exc:  # a failed load keeps the previous model
            message = _message(exc)
            log.warning("loading %s failed: %s", mid, message)
            return message
        finally:
            self.loading = None
        self._loaded = {mid}
        self.hooks.loaded(mid)
        return None

    def mark_loaded(self, model_id: str) -> None:
        """A run loaded ``model_id`` on the worker (the worker holds one model at a time)."""
        if self.ref(model_id).in_process:
            self._loaded = {model_id}

    def _make_current(self, model_id: str, endpoint: str | None) -> None:
        if (model_id, endpoint) == (self.model_id, self.endpoint):
            return
        base_changed = model_id != self.model_id
        self.model_id, self.endpoint = model_id, endpoint
        if base_changed and self._adapters:  # adapters belong to the base they were loaded on
            names = ", ".join(self._adapters)
            self._adapters.clear()
            self.hooks.adapters(())
            self.hooks.notice(f"LoRA adapters {names} were unloaded: they were made for the previous model. "
                              "Load adapters for this model in the LoRA panel.")
        self.hooks.changed(model_id)

    def _local_for(self, model_id: str) -> LocalModelProvider | None:
        ref = self.ref(model_id)
        return as_local(self.registry.get(ref.provider)) if ref.in_process else None

    # -- adapters ----------------------------------------------------------------------------
    def adapters(self) -> list[AdapterInfo]:
        """Loaded adapters with their current scale and on/off state."""
        return list(self._adapters.values())

    def active_adapters(self) -> tuple[AdapterSpec, ...]:
        """The adapters the next request of the current model uses."""
        if self.is_remote():
            return ()
        return tuple(a.spec() for a in self._adapters.values() if a.active)

    def _require_local(self) -> LocalModelProvider:
        provider = self._local_for(self.model_id) if self.ref().takes_adapters else None
        if provider is None:
            raise AdapterError("Adapters work with local models only.",
                               hint="Pick a Hugging Face or local model first; remote models cannot take a LoRA.")  # fmt: skip
        return provider

    async def load_adapter(self, path: str) -> AdapterInfo | None:
        """Validate and load an adapter onto the current model (loading it first) and switch it
        on; None (and an :class:`AdapterFailed`) when that fails."""
        try:
            provider = self._require_local()
            if self.needs_load() and not await self.load():
                raise AdapterError("The model could not be loaded, so the adapter was not loaded.")
            info = await provider.load_adapter(path)
        except Exception as exc:  # unexpected ones too: plain words, the app stays usable
            if not isinstance(exc, AppError):
                log.exception("loading adapter %s failed", path)
            self.hooks.adapter_failed(_message(exc) if isinstance(exc, AppError)
                                      else redact(f"The adapter could not be loaded: {exc}"))
            return None
        info = dataclasses.replace(info, active=True)
        self._adapters[info.name] = info
        self.hooks.adapters(tuple(self._adapters.values()))
        return info

    async def unload_adapter(self, name: str) -> None:
        """Unload an adapter from the model."""
        self._adapters.pop(name, None)
        try:
            await self._require_local().unload_adapter(name)
        except AppError as exc:
            self.hooks.adapter_failed(exc.user_message())
        self.hooks.adapters(tuple(self._adapters.values()))

    def set_adapter(self, name: str, *, enabled: bool | None = None, scale: float | None = None) -> None:
        """Switch an adapter on/off and/or set its scale, for the next requests."""
        info = self._adapters.get(name)
        if info is None:
            return
        if enabled is not None:
            info = dataclasses.replace(info, active=bool(enabled))
        if scale is not None:
            info = dataclasses.replace(info, scale=float(scale))
        self._adapters[name] = info
        self.hooks.adapters(tuple(self._adapters.values()))

    async def restore(self, model_id: str, endpoint: str | None,
                      adapters: Sequence[AdapterSpec] | None) -> list[str]:
        """Bring back a stored state: make ``model_id`` at ``endpoint`` current (loading an
        in-process model), attach ``adapters`` (loading those not loaded yet, at their scale)
        and switch the other adapters off; ``adapters`` None leaves them as they are. Returns
        what the user should know: an adapter file missing, or changed since (its sha256)."""
        if (model_id, endpoint) != (self.model_id, self.endpoint) or self.needs_load(model_id):
            if not await self.select(model_id, endpoint):
                return []  # a ModelLoadFailed said why; the previous model is current again
        if adapters is None or not self.ref().takes_adapters:
            return []
        notes: list[str] = []
        wanted: set[str] = set()
        for spec in adapters:
            label = spec.name or Path(spec.path).name
            if not Path(spec.path).expanduser().exists():
                notes.append(f"The adapter {label} is missing ({spec.path}): the answer was made with it, "
                             "now it is not attached. Load it again in the LoRA panel.")
                continue
            info = self._loaded_from(spec.path) or await self.load_adapter(spec.path)
            if info is None:  # an AdapterFailed said why
                continue
            if spec.sha256 and info.sha256 and spec.sha256 != info.sha256:
                notes.append(f"The adapter {info.name} changed since this conversation used it (sha256 "
                             f"{spec.sha256[:12]}\u2026 then, {info.sha256[:12]}\u2026 now): answers may differ.")
            self.set_adapter(info.name, enabled=True, scale=spec.scale)
            wanted.add(info.name)
        for info in list(self._adapters.values()):
            if info.active and info.name not in wanted:
                self.set_adapter(info.name, enabled=False)
        return notes

    def _loaded_from(self, path: str) -> AdapterInfo | None:
        target = Path(path).expanduser().resolve()
        if target.is_file():  # its adapter_config.json
            target = target.parent
        return next((a for a in self._adapters.values() if Path(a.path).resolve() == target), None)

    # -- requests ----------------------------------------------------------------------------
    def request(self, messages: Sequence[ChatMessage], params: GenerationParams, *, model_id: str | None = None,
                endpoint: str | None = None, adapters: Sequence[AdapterSpec] | None = None) -> GenerationRequest:
        """A request for ``model_id`` (default: the current model, at its endpoint, with the active
        adapters). Raises :class:`AppError` for a malformed id."""
        mid = model_id or self.model_id
        ref = self.ref(mid)
        ep = endpoint if endpoint is not None else (self.endpoint if mid == self.model_id else None)
        if adapters is None:
            adapters = self.active_adapters() if mid == self.model_id else ()
        return GenerationRequest(ref, tuple(messages), params, ep if ref.caps.endpoints else None,
                                 tuple(adapters) if ref.takes_adapters else ())
