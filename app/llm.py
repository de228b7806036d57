"""``LLMModel``: the seed's small synchronous API, as a thin facade over the same core.

Every call runs through the run scheduler (:class:`app.core.runs.RunScheduler`) and the
engine on a private event loop, so usage and cost land in the usage ledger exactly as they do
for the CLI and the window::

    with LLMModel("echo", "mock") as llm:
        print(llm.generate_response("hello"))
        print(llm.get_token_usage_stats())
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import functools
import weakref
from collections.abc import Coroutine
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from app.core.errors import AdapterError, ModelNotFound, register_secret
from app.core.provider import (
    EndpointProvider,
    LocalModelProvider,
    Provider,
    ProviderContext,
    ProviderRegistry,
    as_local,
)
from app.core.registry import provider_ids
from app.core.types import (
    AdapterSpec,
    ChatMessage,
    GenerationParams,
    GenerationRequest,
    ModelRef,
)

if TYPE_CHECKING:
    from app.core.engine import GenerationResult
    from app.core.runs import RunScheduler
    from app.core.secrets import SecretStore
    from app.core.services import Services

T = TypeVar("T")


def _model_type_names() -> dict[str, str]:
    """Every registered provider id as a member name, then its upper-case alias."""
    ids = provider_ids()
    return {**{pid: pid for pid in ids}, **{pid.upper(): pid for pid in ids}}


ModelType = StrEnum("ModelType", _model_type_names())  # type: ignore[misc]
ModelType.__doc__ = """The kinds of model the facade can drive: the registry's provider ids.

The seed's upper-case names (``ModelType.MOCK``, ...) are aliases of the same members:
``ModelType.MOCK is ModelType.mock``."""


class SessionKeySecrets:
    """A secret store that answers every lookup with one in-memory key (never persisted).

    Only this facade's private providers see it; writes go nowhere (the key lives in memory).
    """

    def __init__(self, api_key: str, base: Any = None) -> None:
        self._key = api_key
        self._base = base
        register_secret(api_key)

    def get(self, name: str) -> str | None:
        """The instance's key, whatever the name."""
        return self._key

    def set(self, name: str, value: str) -> None:
        """Replace the in-memory key (never written to the keyring or disk)."""
        register_secret(value)
        self._key = value

    def delete(self, name: str) -> None:
        """Forget nothing persistent; the in-memory key stays for this instance."""

    def names(self) -> list[str]:
        """No stored names: the key is session-only."""
        return []

    def available(self) -> bool:
        """Always usable (memory)."""
        return True

    def source(self, name: str) -> str:
        """Where the key comes from."""
        return "session"

    def __getattr__(self, attr: str) -> Any:  # anything else: the real store, if any
        if self._base is None:
            raise AttributeError(attr)
        return getattr(self._base, attr)


def _close_at_exit(ref: weakref.ReferenceType[LLMModel]) -> None:
    """Close a model its script left open, while the interpreter can still do it: a local
    model's worker thread left running into the interpreter's exit aborted the process
    (SIGABRT, "terminate called without an active exception") after the script's work."""
    model = ref()
    if model is not None:
        with contextlib.suppress(Exception):  # exiting anyway: nothing to tell the script
            model.close()


class LLMModel:
    """A model you can call synchronously: generate, count tokens, switch, load LoRA, usage.

    ``model_name`` is the provider's model name (``gpt-4o-mini``, ``echo``, ``smollm2``,
    a hub id or a path); ``model_type`` the provider. ``endpoint`` (a settings endpoint name
    or a base URL) points OpenAI models at any OpenAI-compatible server. ``api_key`` is kept
    in memory for this instance only. ``services`` defaults to a private
    :meth:`Services.create`, closed by :meth:`close`.
    """

    def __init__(
        self,
        model_name: str,
        model_type: ModelType | str,
        api_key: str | None = None,
        *,
        services: Services | None = None,
        endpoint: str | None = None,
    ) -> None:
        self._type = _model_type(model_type)
        self._loop = asyncio.new_event_loop()
        self._own_services = services is None
        if services is None:
            from app.core.services import Services

            services = Services.create()
        self.services: Services = services
        self.endpoint = endpoint
        self._results: list[GenerationResult] = []
        self._adapters: tuple[AdapterSpec, ...] = ()
        self._closed = False
        if api_key:
            self.registry, self.scheduler = self._private_scheduler(api_key)
        else:
            self.registry, self.scheduler = services.registry, services.scheduler
        self.ref = self._ref(model_name)
        self._at_exit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._at_exit)

    # -- model selection -------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """The current model as ``provider:model``."""
        return str(self.ref)

    def switch_model(self, model_name: str) -> None:
        """Use ``model_name`` from now on (``provider:model`` switches provider too).

        A local model that was loaded is unloaded first; active adapters are dropped.
        """
        new = self._ref(model_name)
        if new == self.ref:
            return
        old = self.ref
        self._unload(old)
        self.ref = new
        self._type = ModelType(new.provider)
        self._adapters = ()

    def load_model(self) -> None:
        """Local models: load now (instead of on the first answer). Remote: check it exists."""
        provider = self._provider()
        local = as_local(provider)
        if local is not None:
            self._run(local.load(self.ref.name))
            return
        if self.ref.caps.endpoints:
            models = self._run(self._list_remote(provider))
            if models is not None and self.ref.name not in models:
                raise ModelNotFound(
                    f"The server has no model '{self.ref.name}'.",
                    hint="Pick one of: " + ", ".join(sorted(models)[:20]) + ".",
                )
            return
        provider.model_info(self.ref.name)  # raises ModelNotFound for unknown models

    async def _list_remote(self, provider: Provider) -> set[str] | None:
        if self.endpoint and isinstance(provider, EndpointProvider):
            return {m.ref.name for m in await provider.list_endpoint_models(self.endpoint)}
        return {m.ref.name for m in await provider.list_models()}

    # -- generation ------------------------------------------------------------------------

    def generate_response(
        self,
        prompt: str,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        model_name: str | None = None,
    ) -> str:
        """The model's answer to ``prompt`` (recorded in the usage ledger).

        ``model_name`` uses another model for this one call. Raises :class:`AppError`
        subclasses with a clear message (e.g. :class:`InvalidParams`, :class:`AuthError`).
        """
        ref = self._ref(model_name) if model_name else self.ref
        params = GenerationParams(temperature=temperature, max_tokens=max_new_tokens).validated()
        request = GenerationRequest(
            model=ref,
            messages=(ChatMessage("user", prompt),),
            params=params,
            endpoint=self.endpoint if ref.caps.endpoints else None,
            adapters=self._adapters if ref == self.ref else (),
        )
        result = self._run(self.scheduler.run(request))
        self._results.append(result)
        return result.text

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the current model (exact where the tokenizer is known)."""
        provider = self._provider()
        full = provider.count_tokens(self.ref.name, [ChatMessage("user", text)])
        empty = provider.count_tokens(self.ref.name, [ChatMessage("user", "")]).tokens
        tokens = max(0, full.tokens - empty)
        return max(1, tokens) if text and not full.exact else tokens  # an estimate is never 0

    def get_model_info(self) -> dict[str, Any]:
        """The current model's info: the same keys for every provider."""
        info = self._provider().model_info(self.ref.name)
        data = info.to_dict()
        if data.get("endpoint") is None and self.ref.caps.endpoints and self.endpoint:
            data["endpoint"] = self.endpoint
        return data

    # -- adapters --------------------------------------------------------------------------

    def apply_lora_adapter(self, adapter_path: str, scale: float = 1.0) -> dict[str, Any]:
        """Load a LoRA adapter and use it for later answers (local models only).

        Returns what the provider reports about the adapter. Raises :class:`AdapterError`
        for remote models or an adapter that does not fit.
        """
        local = self._local()
        if local is None:
            raise AdapterError(
                f"LoRA adapters cannot be applied to {self.ref} ({self.ref.provider} models run "
                "remotely or do not support adapters).",
                hint="Use a local or Hugging Face model (e.g. LLMModel('smollm2', 'local')).",
            )
        self.load_model()  # adapters attach to the loaded model
        info = self._run(local.load_adapter(str(adapter_path)))
        spec = dataclasses.replace(info.spec(), scale=scale)
        self._adapters = (*(a for a in self._adapters if a.path != spec.path), spec)
        data: dict[str, Any] = dataclasses.asdict(info)
        data.update(scale=scale, active=True)
        return data

    @property
    def active_adapters(self) -> tuple[AdapterSpec, ...]:
        """The adapters used for this instance's next answers (local models)."""
        return self._adapters

    # -- usage -----------------------------------------------------------------------------

    def get_token_usage_stats(self) -> dict[str, Any]:
        """Requests, tokens and cost of this instance's session and of all time (ledger).

        The top-level figures are this instance's answered requests (what the ledger
        recorded for them); ``all_time`` holds the ledger's totals over every generation.
        """
        ledger = self.services.ledger
        # this instance's rows, exactly as the engine wrote them to the ledger
        session = _sum_records([r.record for r in self._results])
        totals = ledger.totals()
        all_time = {
            "requests": int(totals.requests),
            "prompt_tokens": int(totals.prompt_tokens),
            "completion_tokens": int(totals.completion_tokens),
            "total_tokens": int(totals.prompt_tokens) + int(totals.completion_tokens),
            "cost_usd": float(totals.cost_usd or 0),
        }
        return {"model": self.model_id, **session, "session": dict(session), "all_time": all_time}

    def _get_token_usage_stats(self) -> dict[str, Any]:
        """The seed's name of :meth:`get_token_usage_stats` (kept for its callers)."""
        return self.get_token_usage_stats()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close this instance's providers (unloading local models) and the services it built.

        Shared ``services`` passed in stay open (and keep their models) for their owner.
        """
        if self._closed:
            return
        atexit.unregister(self._at_exit)
        try:
            if self.registry is not self.services.registry:
                self._loop.run_until_complete(self.scheduler.aclose())
                self._loop.run_until_complete(self.registry.aclose())
            if self._own_services:
                self._loop.run_until_complete(self.services.aclose())
        finally:
            self._closed = True
            try:
                _drain_loop(self._loop)
            finally:
                self._loop.close()

    def __enter__(self) -> LLMModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _ref(self, model_name: str) -> ModelRef:
        prefix, sep, rest = model_name.partition(":")
        if sep and prefix.strip().lower() in provider_ids() and rest.strip():
            return ModelRef.parse(model_name)
        return ModelRef(self._type.value, model_name.strip())

    def _provider(self) -> Provider:
        return self.registry.get(self.ref.provider)

    def _local(self) -> LocalModelProvider | None:
        return as_local(self._provider()) if self.ref.takes_adapters else None

    def _unload(self, ref: ModelRef) -> None:
        provider = self.registry.loaded().get(ref.provider)
        local = as_local(provider) if provider is not None else None
        if local is not None:
            self._run(local.unload())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("This LLMModel is closed.")
        return self._loop.run_until_complete(coro)

    def _private_scheduler(self, api_key: str) -> tuple[ProviderRegistry, RunScheduler]:
        from app.core.engine import Engine
        from app.core.runs import RunScheduler

        base = self.services.registry.context
        context = ProviderContext(
            settings=base.settings,
            secrets=cast("SecretStore", SessionKeySecrets(api_key, base.secrets)),
            paths=base.paths,
            extra=dict(base.extra),
        )
        registry = ProviderRegistry(context)
        return registry, RunScheduler(Engine(registry, self.services.prices, self.services.ledger))


def _drain_loop(loop: asyncio.AbstractEventLoop, timeout: float = 5.0) -> None:
    """Before the private loop closes, do what :func:`asyncio.run` does: let pending tasks
    finish (the openai SDK leaves its HTTP stream's async generators suspended; their
    finalisers schedule ``aclose()`` tasks that would otherwise be destroyed pending), cancel
    what is left after ``timeout``, close the remaining async generators and the executor."""
    pending = asyncio.all_tasks(loop)
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=timeout))
        leftover = [t for t in pending if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


def _model_type(value: ModelType | str) -> ModelType:
    try:
        return value if isinstance(value, ModelType) else ModelType(str(value).strip().lower())
    except ValueError:
        from app.core.errors import InvalidModelId

        raise InvalidModelId(
            f"Unknown model type '{value}'.",
            hint="Use one of: " + ", ".join(t.value for t in ModelType) + ".",
        ) from None


def _sum_records(records: list[Any]) -> dict[str, Any]:
    prompt = sum(int(r.prompt_tokens) for r in records)
    completion = sum(int(r.completion_tokens) for r in records)
    cost = sum(float(r.cost_usd) for r in records if r.cost_usd is not None)
    return {
        "requests": len(records),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost_usd": cost,
    }
