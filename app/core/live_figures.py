"""The figures that tick while a run streams (:class:`LiveFigures`), apart from the run
events (:mod:`app.core.run_events`, which re-exports it) so that the Usage dock can show them
without loading the events at start."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.core.figures import format_cost, plural, speed_parts


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """Figures that tick while a run streams (at most ~10 times a second, plus one final).

    While streaming, ``tokens`` are answer chunks (about one token each; reasoning apart in
    ``reasoning_tokens``) and ``cost_usd`` is an estimate; the final figures (``final``) carry
    the usage's completion tokens (reasoning included) and the exact cost."""

    tokens: int = 0
    tokens_per_s: float | None = None
    ttft_s: float | None = None
    cost_usd: Decimal | None = None
    elapsed_s: float = 0.0
    reasoning_tokens: int = 0
    prompt_tokens: int | None = None
    final: bool = False

    @property
    def thinking(self) -> bool:
        """True while a thinking model reasons and its answer has not started."""
        return self.reasoning_tokens > 0 and self.tokens == 0 and not self.final

    def sentence(self) -> str:
        """One line for a streaming answer: ``42 tokens · $0.000012 · first token 0.21 s · 30.5 tok/s``."""
        parts = [plural(self.tokens, "token")]
        if self.reasoning_tokens:
            parts.append(f"{self.reasoning_tokens:,} thinking")
        if self.cost_usd is not None:
            parts.append(format_cost(self.cost_usd))
        return " · ".join(parts + speed_parts(self.ttft_s, self.tokens_per_s))
