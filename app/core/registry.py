"""THE registry of providers: each one's id, where its code lives and what it can do.

Every other list of providers (the CLI's titles, the model picker's groups and hints,
``LLMModel``'s ``ModelType``, the request lanes, pricing) derives from :data:`PROVIDERS`, and
callers ask a provider's :class:`Capabilities` instead of comparing its id. Adding a provider
means one module, one entry here, and its tests. The helpers read :data:`PROVIDERS` when
called, so a test may swap it (``monkeypatch.setattr(registry, "PROVIDERS", ...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do; callers ask this instead of testing the provider's id."""

    endpoints: bool = False
    """Serves models through named OpenAI-compatible endpoints: a request names one, which
    decides where it goes, its lane and its price."""
    adapters: bool = False
    """Takes LoRA adapters (``GenerationRequest.adapters``)."""
    server_token_count: bool = False
    """Can count a request before sending with the server's own tokenizer and chat template
    (:meth:`app.core.provider.EndpointProvider.count_request`)."""
    logprobs: bool = False
    """Answers ``GenerationParams.logprobs`` with each token's log-probability."""
    tools: bool = False
    """Tool (function) calls."""
    structured_output: bool = False
    """Answers constrained to a JSON schema."""
    prefix: bool = False
    """Continues a given start of the answer (``GenerationRequest.prefix``)."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider id and what the rest of the app needs to know about it.

    ``factory`` is ``"module:attribute"`` (imported on first use, so heavy libraries load
    lazily); ``in_process`` providers run on this machine's model worker; ``free`` ones never
    cost money and ``priced`` ones look their models up in the price table. ``label`` titles
    the provider's models in ``models``, ``group`` in the model picker (an endpoints provider's
    models are grouped by endpoint), and ``hints`` are what the picker offers while typing.
    """

    id: str
    factory: str
    caps: Capabilities = field(default_factory=Capabilities)
    in_process: bool = False
    free: bool = False
    priced: bool = False
    label: str = ""
    group: str = ""
    hints: tuple[str, ...] = ()


_IN_PROCESS = Capabilities(adapters=True, logprobs=True, prefix=True, tools=True, structured_output=True)

PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec("openai", "app.providers.openai:OpenAIProvider",
                 Capabilities(endpoints=True, server_token_count=True, logprobs=True, prefix=True, tools=True,
                              structured_output=True),
                 priced=True, label="OpenAI-compatible", group="OpenAI", hints=("openai:",)),
    ProviderSpec("huggingface", "app.providers.transformers:HuggingFaceProvider", _IN_PROCESS, in_process=True,
                 free=True, label="Hugging Face (in-process)", group="Hugging Face", hints=("huggingface:",)),
    ProviderSpec("local", "app.providers.transformers:LocalProvider", _IN_PROCESS, in_process=True, free=True,
                 label="Local (in-process)", group="Local files", hints=("local:", "local:smollm2")),
    ProviderSpec("mock", "app.providers.mock:MockProvider", Capabilities(logprobs=True, prefix=True, tools=True),
                 free=True,
                 label="Mock (tests and demos)", group="Mock (testing)",
                 hints=("mock:echo", "mock:markdown", "mock:fixed?text=", "mock:lorem?n=200", "mock:tokens?n=10000",
                        "mock:tools")),
)  # fmt: skip
"""THE registry of provider ids: every other list of providers derives from it."""

NO_CAPABILITIES = Capabilities()


def providers() -> tuple[ProviderSpec, ...]:
    """Every registered provider, in the registry's order."""
    return PROVIDERS


def provider_ids() -> tuple[str, ...]:
    """Every registered provider id, in the registry's order."""
    return tuple(p.id for p in PROVIDERS)


def provider_spec(provider_id: str) -> ProviderSpec | None:
    """The spec of ``provider_id`` (None when unknown)."""
    return next((p for p in PROVIDERS if p.id == provider_id), None)


def capabilities(provider_id: str) -> Capabilities:
    """What ``provider_id`` can do (nothing for an unknown id)."""
    spec = provider_spec(provider_id)
    return spec.caps if spec is not None else NO_CAPABILITIES


def is_in_process(provider_id: str) -> bool:
    """True for providers whose models run on this machine's model worker."""
    spec = provider_spec(provider_id)
    return spec is not None and spec.in_process


def is_free(provider_id: str) -> bool:
    """True for providers that never cost money."""
    spec = provider_spec(provider_id)
    return spec is not None and spec.free


def is_priced(provider_id: str) -> bool:
    """True for providers whose model names are looked up in the price table."""
    spec = provider_spec(provider_id)
    return spec is not None and spec.priced


def endpoint_provider_id() -> str:
    """The provider that serves the settings' OpenAI-compatible endpoints (a bare model name
    with a base URL is one of its models)."""
    return next(p.id for p in PROVIDERS if p.caps.endpoints)
