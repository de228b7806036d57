"""Plain value types shared by every layer: messages, parameters, requests, model info."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.core.errors import InvalidModelId, InvalidParams
from app.core.registry import Capabilities, capabilities, is_in_process, provider_ids
from app.core.tools import ResponseSchema, ToolCall, ToolChoice, ToolSpec
from app.core.url_keys import accept_endpoint

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat turn. An assistant turn may hold the ``tool_calls`` it made (its content may
    then be empty); a ``tool`` turn answers the call ``tool_call_id``."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model named ``provider:model`` (e.g. ``openai:gpt-4o-mini``, ``local:/m.gguf``)."""

    provider: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``provider:model``; raise :class:`InvalidModelId` with a hint when malformed."""
        provider, sep, name = text.strip().partition(":")
        if not sep or not name.strip():
            raise InvalidModelId(
                f"'{text}' is not a model id.",
                hint="Write it as provider:model, e.g. openai:gpt-4o-mini, mock:echo or "
                "local:smollm2. Run 'python -m app models' to list them.",
            )
        provider = provider.strip().lower()
        if provider not in provider_ids():
            raise InvalidModelId(
                f"Unknown provider '{provider}' in '{text}'.",
                hint="Use one of: " + ", ".join(provider_ids()) + ".",
            )
        return cls(provider, name.strip())

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"

    @property
    def caps(self) -> Capabilities:
        """What this model's provider can do (the registry's declaration)."""
        return capabilities(self.provider)

    @property
    def in_process(self) -> bool:
        """True for models that run on this machine's model worker (local, huggingface)."""
        return is_in_process(self.provider)

    @property
    def takes_adapters(self) -> bool:
        """True when LoRA adapters can be applied to this model."""
        return self.caps.adapters


MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling parameters. ``extras`` carries provider-specific options untouched."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int | None = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_k: int | None = None
    repetition_penalty: float | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    logprobs: int | None = None
    """Ask for each token's log-probability and this many top alternatives (0-20); None: off."""

    def validated(self) -> GenerationParams:
        """Return self when every value is in range; raise :class:`InvalidParams` otherwise."""
        _check(
            isinstance(self.temperature, int | float)
            and math.isfinite(self.temperature)
            and 0.0 <= self.temperature <= 2.0,
            f"temperature must be between 0 and 2 (got {self.temperature!r}).",
        )
        _check(
            isinstance(self.top_p, int | float)
            and math.isfinite(self.top_p)
            and 0.0 < self.top_p <= 1.0,
            f"top_p must be greater than 0 and at most 1 (got {self.top_p!r}).",
        )
        if self.max_tokens is not None:
            _check(
                isinstance(self.max_tokens, int) and 1 <= self.max_tokens <= 1_000_000,
                f"max_tokens must be a whole number from 1 to 1,000,000 (got {self.max_tokens!r}).",
            )
        if self.seed is not None:
            _check(
                isinstance(self.seed, int) and 0 <= self.seed < 2**63,
                f"seed must be a whole number from 0 to 2^63-1 (got {self.seed!r}).",
            )
        if self.top_k is not None:
            _check(
                isinstance(self.top_k, int) and self.top_k >= 0,
                f"top_k must be a whole number >= 0 (got {self.top_k!r}).",
            )
        if self.repetition_penalty is not None:
            _check(
                isinstance(self.repetition_penalty, int | float)
                and 0.0 < self.repetition_penalty <= 10.0,
                f"repetition_penalty must be above 0 and at most 10 (got {self.repetition_penalty!r}).",
            )
        if self.logprobs is not None:
            _check(
                isinstance(self.logprobs, int) and 0 <= self.logprobs <= MAX_TOP_LOGPROBS,
                f"logprobs must be a whole number from 0 to {MAX_TOP_LOGPROBS} (got {self.logprobs!r}).",
            )
        _check(len(self.stop) <= 16, f"at most 16 stop sequences are allowed (got {len(self.stop)}).")
        _check(
            all(isinstance(s, str) and s for s in self.stop),
            "stop sequences must be non-empty strings.",
        )
        return self

    def sampling_kwargs(self) -> dict[str, Any]:
        """transformers ``generate`` options for these parameters (greedy at temperature 0):
        what the app's local generation uses, and what get-code writes into a program."""
        if self.temperature > 0:
            kwargs: dict[str, Any] = dict(do_sample=True, temperature=self.temperature, top_p=self.top_p,
                                          top_k=self.top_k or 0)
        else:
            kwargs = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self.repetition_penalty is not None:
            kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs

    def with_(self, **changes: Any) -> GenerationParams:
        """A copy with ``changes`` applied (not validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (used by history and exports)."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": list(self.stop),
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "extras": dict(self.extras),
            "logprobs": self.logprobs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationParams:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "stop" in known:
            known["stop"] = tuple(known["stop"] or ())
        if "extras" in known:
            known["extras"] = dict(known["extras"] or {})
        return cls(**known)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidParams(message, hint="Fix the value and send again; nothing was sent.")


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """A LoRA adapter to have active for a request (local models only). ``sha256`` (of the
    weights, when known) is carried for the records; it does not select anything."""

    path: str
    scale: float = 1.0
    name: str | None = None
    sha256: str | None = None

    @property
    def label(self) -> str:
        """``name:scale`` (the path when it has no name yet)."""
        return f"{self.name or self.path}:{self.scale:g}"


def adapter_label(adapters: Sequence[AdapterSpec]) -> str | None:
    """How a set of adapters is named in records and titles: ``a:1,b:0.5`` (None: none)."""
    return ",".join(a.label for a in adapters) or None


def adapter_hashes(adapters: Sequence[AdapterSpec]) -> str | None:
    """The adapters' sha256 values in the same order as :func:`adapter_label` (None: none)."""
    return ",".join(a.sha256 or "" for a in adapters) or None


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """A loaded (or inspected) LoRA adapter, as a local provider reports it."""

    name: str
    path: str
    sha256: str
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    base_model_hint: str | None = None
    warnings: tuple[str, ...] = ()
    scale: float = 1.0
    active: bool = False

    def spec(self) -> AdapterSpec:
        """The request-side spec of this adapter at its current scale."""
        return AdapterSpec(self.path, self.scale, self.name, self.sha256)


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything a provider needs to stream one answer."""

    model: ModelRef
    messages: tuple[ChatMessage, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    endpoint: str | None = None
    adapters: tuple[AdapterSpec, ...] = ()
    prefix: str = ""
    """The answer starts with this text and the model continues it (branch from a token,
    ``ask --assistant-prefix``); the answer's text includes it."""
    tools: tuple[ToolSpec, ...] = ()
    """Functions the model may call (OpenAI's ``tools``)."""
    tool_choice: ToolChoice | None = None
    """``auto`` / ``none`` / ``required`` / a function's name; None: the server's default."""
    parallel_tool_calls: bool | None = None
    """Whether several calls may come in one step; None: the server's default."""
    response_schema: ResponseSchema | None = None
    """The shape the answer must have (structured output / JSON mode)."""

    def __post_init__(self) -> None:
        # a base URL's key goes to memory here (raises ConfigError for a malformed one): a
        # request, and whatever is stored or shown from it, only ever holds the clean URL
        object.__setattr__(self, "endpoint", accept_endpoint(self.endpoint))


ModelState = Literal["ready", "available", "needs_key", "not_downloaded", "loading", "unavailable"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the app knows about a model. The same keys for every provider."""

    ref: ModelRef
    display_name: str
    endpoint: str | None = None
    context_length: int | None = None
    is_local: bool = False
    supports_adapters: bool = False
    state: ModelState = "available"
    description: str = ""
    tokenizer: str = ""
    supports_tools: bool | None = None
    """Whether the model can call tools (for in-process models: its chat template has tool
    support); None: not known (e.g. before an in-process model's files are on disk)."""
    fast_path: str | None = None
    """Why an in-process model runs on transformers' generate instead of the lean CPU step
    (e.g. "model type 'gpt2' ..."); None when it runs on the lean step, is not in-process, or
    that is not known yet."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict with the same keys for every provider."""
        return {
            "id": str(self.ref),
            "provider": self.ref.provider,
            "model": self.ref.name,
            "display_name": self.display_name,
            "endpoint": self.endpoint,
            "context_length": self.context_length,
            "is_local": self.is_local,
            "supports_adapters": self.supports_adapters,
            "state": self.state,
            "description": self.description,
            "tokenizer": self.tokenizer,
            "supports_tools": self.supports_tools,
            "fast_path": self.fast_path,
        }


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count; ``exact`` is False for labelled estimates. ``method`` names the tokenizer."""

    tokens: int
    exact: bool
    method: str


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    """One generation as written to the usage ledger (and shown per message).

    ``cost_usd`` is a decimal string (exact), or None when the price is unknown.
    ``finish_reason`` is the provider's ("stop", "length", ...), "error", "cancelled", or,
    for a row the ledger opened at the start of a request, "running" until it ends and
    "interrupted" when the process that ran it died first. ``run_id`` tags the row with the
    run that made it (e.g. a Workbench run).
    """

    started_at: float
    provider: str
    model: str
    endpoint: str | None
    adapter: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    estimated: bool
    cost_usd: str | None
    ttft_s: float | None
    duration_s: float
    tokens_per_s: float | None
    finish_reason: str
    conversation_id: str | None = None
    error: str | None = None
    run_id: str | None = None
