"""Plain value types shared by every layer: messages, parameters, requests, model info."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.core.errors import InvalidModelId, InvalidParams

Role = Literal["system", "user", "assistant"]
PROVIDER_IDS: tuple[str, ...] = ("openai", "huggingface", "local", "mock")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat turn."""

    role: Role
    content: str


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
        if provider not in PROVIDER_IDS:
            raise InvalidModelId(
                f"Unknown provider '{provider}' in '{text}'.",
                hint="Use one of: " + ", ".join(PROVIDER_IDS) + ".",
            )
        return cls(provider, name.strip())

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


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
        _check(len(self.stop) <= 16, f"at most 16 stop sequences are allowed (got {len(self.stop)}).")
        _check(
            all(isinstance(s, str) and s for s in self.stop),
            "stop sequences must be non-empty strings.",
        )
        return self

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
    """A LoRA adapter to have active for a request (local models only)."""

    path: str
    scale: float = 1.0
    name: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything a provider needs to stream one answer."""

    model: ModelRef
    messages: tuple[ChatMessage, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    endpoint: str | None = None
    adapters: tuple[AdapterSpec, ...] = ()


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
