"""The provider contract and the registry that builds providers lazily by id."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from app.core.errors import InvalidModelId
from app.core.events import Progress, StreamEvent
from app.core.registry import providers
from app.core.types import (
    AdapterInfo,
    ChatMessage,
    GenerationRequest,
    ModelInfo,
    TokenCount,
)

if TYPE_CHECKING:
    from app.core.paths import AppPaths
    from app.core.secrets import SecretStore
    from app.core.settings import EndpointConfig, Settings


@runtime_checkable
class Provider(Protocol):
    """What every provider implements. Heavy imports happen inside the provider module.

    - ``stream`` raises :mod:`app.core.errors` types out of the iterator.
    - Cancelling the consuming task releases sockets/threads in ``finally``.
    - A finished stream ends with a ``UsageReport`` and then ``Finished(reason)``.
    """

    id: str

    async def list_models(self) -> list[ModelInfo]:
        """Models this provider can serve now (remote: from the server)."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Stream one answer as events."""
        ...

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        """Token count of a whole chat request (with per-message overhead)."""
        ...

    def model_info(self, model: str) -> ModelInfo:
        """Static info about one model."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and model memory."""
        ...


ProgressCallback = Callable[[Progress], None]


@runtime_checkable
class LocalModelProvider(Provider, Protocol):
    """What in-process providers (``local``, ``huggingface``) add to :class:`Provider`:
    one loaded model on the model worker, and LoRA adapters loaded onto it by name.

    ``stream`` loads the request's model when it is not loaded (yielding ``Progress``) and
    makes exactly the request's adapters active (hot-swapped, never reloading the base).
    """

    async def load(self, model: str, on_progress: ProgressCallback | None = None) -> ModelInfo:
        """Load ``model`` (the previous one is unloaded only after success)."""
        ...

    async def loaded_model(self) -> str | None:
        """The id of the loaded model (``local:...``), or None."""
        ...

    async def unload(self) -> None:
        """Unload the model and free its memory."""
        ...

    async def load_adapter(self, path: str, name: str | None = None) -> AdapterInfo:
        """Validate ``path`` against the loaded model and load it (not activated)."""
        ...

    async def unload_adapter(self, name: str) -> None:
        """Delete a loaded adapter."""
        ...

    async def list_adapters(self) -> list[AdapterInfo]:
        """The loaded adapters."""
        ...

    async def score(self, request: GenerationRequest, token_ids: Sequence[int]) -> list[float]:
        """The log-probability of each of ``token_ids`` (the model's own token ids, e.g. an
        answer's ``TokenLogprob.token_id``) as the continuation of ``request``'s prompt and
        prefix, with exactly ``request.adapters`` active (none: the base model), in one pass."""
        ...


@runtime_checkable
class EndpointProvider(Provider, Protocol):
    """What a provider with the ``endpoints`` capability (``openai``) adds to :class:`Provider`:
    named OpenAI-compatible endpoints that can be listed, tested and counted against one by one."""

    def endpoint_errors(self) -> dict[str, str]:
        """Endpoint name -> why it failed in the last :meth:`list_models` (the others listed)."""
        ...

    def count_request(self, endpoint: str | None, model: str, messages: Sequence[ChatMessage]) -> TokenCount | None:
        """The before-sending count of a request to ``endpoint`` by the server's own tokenizer
        and chat template (blocking: call it off the GUI thread), or None when it cannot."""
        ...

    async def list_endpoint_models(self, endpoint_name_or_url: str | None) -> list[ModelInfo]:
        """The models one endpoint serves (GET /models); raises translated errors."""
        ...

    async def test_connection(self, endpoint_name: str) -> str:
        """List the endpoint's models and return a one-line summary (raises on failure)."""
        ...

    def build_body(self, request: GenerationRequest, ep: EndpointConfig) -> dict[str, Any]:
        """The Chat Completions request body the provider sends for ``request`` at ``ep``."""
        ...


def as_local(provider: Provider) -> LocalModelProvider | None:
    """``provider`` as a :class:`LocalModelProvider`, or None when it is a remote one."""
    return provider if isinstance(provider, LocalModelProvider) else None


def as_endpoints(provider: Provider | None) -> EndpointProvider | None:
    """``provider`` as an :class:`EndpointProvider`, or None when it serves no endpoints."""
    return provider if isinstance(provider, EndpointProvider) else None


@dataclass
class ProviderContext:
    """What a provider factory receives: settings, secrets and paths (no globals)."""

    settings: Settings
    secrets: SecretStore
    paths: AppPaths
    extra: dict[str, object] = field(default_factory=dict)


ProviderFactory = Callable[[ProviderContext], Provider]

def default_factories() -> dict[str, str]:
    """Provider id -> ``"module:attribute"`` from the registry (modules import lazily, so heavy
    libraries load on first use)."""
    return {p.id: p.factory for p in providers()}


class ProviderRegistry:
    """Builds each provider once, on first use, and closes them all on ``aclose``."""

    def __init__(self, context: ProviderContext, factories: dict[str, str | ProviderFactory] | None = None) -> None:
        self.context = context
        self._factories: dict[str, str | ProviderFactory] = dict(default_factories())
        if factories:
            self._factories.update(factories)
        self._instances: dict[str, Provider] = {}

    @property
    def ids(self) -> list[str]:
        """Registered provider ids."""
        return list(self._factories)

    def register(self, provider_id: str, factory: str | ProviderFactory) -> None:
        """Register (or replace) a provider factory."""
        self._factories[provider_id] = factory
        self._instances.pop(provider_id, None)

    def get(self, provider_id: str) -> Provider:
        """The provider for ``provider_id``, built on first call."""
        if provider_id in self._instances:
            return self._instances[provider_id]
        factory = self._factories.get(provider_id)
        if factory is None:
            raise InvalidModelId(
                f"No provider '{provider_id}'.", hint="Use one of: " + ", ".join(self._factories) + "."
            )
        if isinstance(factory, str):
            module_name, _, attr = factory.partition(":")
            factory = cast(ProviderFactory, getattr(importlib.import_module(module_name), attr))
        provider: Provider = factory(self.context)
        self._instances[provider_id] = provider
        return provider

    def loaded(self) -> dict[str, Provider]:
        """Providers built so far."""
        return dict(self._instances)

    async def aclose(self) -> None:
        """Close every provider built so far."""
        for provider in list(self._instances.values()):
            await provider.aclose()
        self._instances.clear()
