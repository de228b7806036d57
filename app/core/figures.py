"""The figures of one answer (tokens, cost, speed) as a typed value: what the history keeps in
a message's meta, what exports print and what the transcript shows under an answer.

A message's ``meta`` holds these keys next to others (model, endpoint, adapter, params,
reasoning); :meth:`MessageFigures.from_meta` reads them back, ignoring the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.registry import is_free

DASH = "\u2014"


@dataclass(frozen=True, slots=True)
class MessageFigures:
    """Tokens, cost and speed of one answer. ``cost_usd`` is an exact decimal string (None:
    the price is unknown); ``load_s`` is the time spent loading the model for this answer
    (kept apart from the time to first token)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    estimated: bool = False
    cost_usd: str | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    duration_s: float | None = None
    finish_reason: str | None = None
    seed: int | None = None
    load_s: float | None = None
    reasoning_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    """Prompt tokens that came from a cache (a local model's prefix cache, a server's)."""

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> MessageFigures:
        """The figures stored in a message's meta (missing keys stay None)."""
        if not meta:
            return cls()
        known = {f.name: meta[f.name] for f in fields(cls) if meta.get(f.name) is not None}
        known["estimated"] = bool(known.get("estimated", False))
        return cls(**known)

    def to_meta(self) -> dict[str, Any]:
        """The figures as meta keys (None values left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None and not (k == "estimated" and not v)}

    @property
    def cost(self) -> Decimal | None:
        """The cost as a Decimal (None when unknown or unreadable)."""
        if self.cost_usd is None:
            return None
        try:
            return Decimal(str(self.cost_usd))
        except InvalidOperation:
            return None

    def sentence(self) -> str:
        """One readable line: ``31 in (24 cached) / 8 out tokens · $0.000012 · first token 0.21 s ·
        30.5 tok/s`` (``~`` marks estimated counts; a model load is named apart)."""
        parts: list[str] = []
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            est = "~" if self.estimated else ""
            cached = f" ({self.cached_prompt_tokens:,} cached)" if self.cached_prompt_tokens else ""
            parts.append(
                f"{est}{self.prompt_tokens or 0:,} in{cached} / {est}{self.completion_tokens or 0:,} out "
                f"{plural(self.completion_tokens or 0, 'token', with_count=False)}"
            )
        if self.cost is not None:
            parts.append(format_cost(self.cost))
        if self.load_s is not None:
            parts.append(f"loaded in {self.load_s:.1f} s")
        return " · ".join(parts + speed_parts(self.ttft_s, self.tokens_per_s))


def speed_parts(ttft_s: float | None, tokens_per_s: float | None) -> list[str]:
    """``["first token 0.21 s", "30.5 tok/s"]`` (the known ones) for a figures line."""
    parts = [] if ttft_s is None else [f"first token {ttft_s:.2f} s"]
    return parts if tokens_per_s is None else [*parts, f"{tokens_per_s:.1f} tok/s"]


def plural(n: int, word: str, *, with_count: bool = True) -> str:
    """``1 token`` / ``2 tokens`` (``with_count=False``: the word alone, in the right number)."""
    form = word if n == 1 else word + "s"
    return f"{n:,} {form}" if with_count else form


def to_decimal(value: Decimal | str | float | int | None) -> Decimal | None:
    """``value`` as a Decimal, or None when missing or unparsable."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def format_cost(value: Decimal | str | float | None, *, provider: str | None = None) -> str:
    """A USD amount with enough precision for tiny costs.

    ``0`` -> ``free``; unknown (None) -> an em dash, or ``free`` for a local/mock ``provider``;
    ``0.000123`` -> ``$0.000123``; ``0.0123`` -> ``$0.0123``; ``12.5`` -> ``$12.50``.
    """
    amount = to_decimal(value)
    if amount is None:
        return "free" if provider is not None and is_free(provider) else DASH
    if amount == 0:
        return "free"
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount >= Decimal("0.01"):
        return f"${amount:.4f}"
    if amount < Decimal("0.000001"):
        return "<$0.000001"
    return f"${amount:.6f}"


def format_tokens(count: int | None, *, estimated: bool = False) -> str:
    """``1,234``, or ``~1,234`` for a labelled estimate; an em dash when unknown."""
    if count is None:
        return DASH
    return f"{'~' if estimated else ''}{count:,}"


def format_seconds(seconds: float | None) -> str:
    """``0.42 s`` / ``12.3 s`` / ``3 min 4 s``; an em dash when unknown."""
    if seconds is None:
        return DASH
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s"


def format_rate(tokens_per_s: float | None) -> str:
    """``42.1 tok/s``; an em dash when unknown."""
    if tokens_per_s is None:
        return DASH
    if tokens_per_s >= 100:
        return f"{tokens_per_s:,.0f} tok/s"
    return f"{tokens_per_s:,.1f} tok/s"
