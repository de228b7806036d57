"""One generation's values: the live figures while it streams (:class:`LiveStats`), its state
(:class:`Generation`: the one place its text accumulates) and its outcome
(:class:`GenerationResult`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from app.core.events import StreamEvent, TokenLogprob, UsageReport
from app.core.figures import MessageFigures
from app.core.token_tape import TokenTape
from app.core.tools import ToolCall, ToolCallAccumulator
from app.core.types import GenerationRecord, GenerationRequest


@dataclass
class LiveStats:
    """Figures that tick while a stream runs (read them from ``on_event`` callbacks).

    ``first_token_at`` / :attr:`ttft_s` are the first token of the ANSWER (a ``TextDelta``):
    a thinking model's reasoning does not count, so its time to first token includes the
    whole thinking phase; :attr:`ttfr_s` is the time to its first reasoning token."""

    started: float = field(default_factory=time.perf_counter)
    """When the request was sent (after a model load, when the load ended)."""
    created: float = field(default_factory=time.perf_counter)
    """When the generation began (a model load included)."""
    first_token_at: float | None = None
    last_token_at: float | None = None
    """When the latest answer, reasoning or tool-call chunk arrived."""
    chunks: int = 0
    chars: int = 0
    first_reasoning_at: float | None = None
    reasoning_chunks: int = 0
    reasoning_chars: int = 0

    def arrived(self, first: float | None) -> float:
        """A chunk arrived now (``last_token_at``); returns ``first``, or now when it is None:
        the first arrival of its kind to keep."""
        self.last_token_at = time.perf_counter()
        return self.last_token_at if first is None else first

    def add_answer(self, text: str) -> None:
        """An answer chunk ``text`` arrived now."""
        self.first_token_at = self.arrived(self.first_token_at)
        self.chunks += 1
        self.chars += len(text)

    def add_reasoning(self, text: str) -> None:
        """A reasoning chunk ``text`` arrived now."""
        self.first_reasoning_at = self.arrived(self.first_reasoning_at)
        self.reasoning_chunks += 1
        self.reasoning_chars += len(text)

    @property
    def ttft_s(self) -> float | None:
        """Time to the first answer token so far (reasoning excluded)."""
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def ttfr_s(self) -> float | None:
        """Time to the first reasoning token so far (None when the model has not reasoned)."""
        return None if self.first_reasoning_at is None else self.first_reasoning_at - self.started

    @property
    def thinking(self) -> bool:
        """True while reasoning has arrived and the answer has not started."""
        return self.first_reasoning_at is not None and self.first_token_at is None

    def tokens_per_s(self, tokens: int | None = None, now: float | None = None) -> float | None:
        """Decode speed since the first generated token, reasoning or answer (``tokens``
        defaults to the chunks of both so far; a server's completion tokens include the
        reasoning). None before the answer starts."""
        if self.first_token_at is None:
            return None
        first = self.first_token_at
        if self.first_reasoning_at is not None and self.first_reasoning_at < first:
            first = self.first_reasoning_at
        n = self.chunks + self.reasoning_chunks if tokens is None else tokens
        elapsed = (now or time.perf_counter()) - first
        if n <= 1 or elapsed <= 0:
            return None
        return (n - 1) / elapsed

    def decode_end(self, end: float) -> float:
        """Where the decode of a stream that ended at ``end`` ended: its last chunk, so what a
        provider does after it (closing a connection, a local model's cleanup) is not timed as
        decoding; ``end`` when the answer came in one chunk."""
        last, first = self.last_token_at, self.first_token_at
        return last if last is not None and first is not None and last > first else end


def record_figures(rec: GenerationRecord, request: GenerationRequest, load_s: float | None,
                   reasoning_tokens: int) -> MessageFigures:
    """The figures of an answer's ledger record as the history keeps them."""
    return MessageFigures(
        prompt_tokens=rec.prompt_tokens,
        completion_tokens=rec.completion_tokens,
        estimated=rec.estimated,
        cost_usd=rec.cost_usd,
        ttft_s=rec.ttft_s,
        tokens_per_s=rec.tokens_per_s,
        duration_s=rec.duration_s,
        finish_reason=rec.finish_reason,
        seed=request.params.seed,
        load_s=load_s,
        reasoning_tokens=reasoning_tokens or None,
        cached_prompt_tokens=rec.cached_prompt_tokens or None,
    )


@dataclass
class GenerationResult:
    """The outcome of :meth:`Engine.run`."""

    request: GenerationRequest
    text: str
    usage: UsageReport
    cost_usd: Decimal | None
    ttft_s: float | None
    duration_s: float
    tokens_per_s: float | None
    finish_reason: str
    record: GenerationRecord
    record_id: int | None = None
    reasoning: str = ""
    """A thinking model's reasoning (not part of ``text``)."""
    load_s: float | None = None
    """Seconds spent loading the model for this answer (None: it was loaded already)."""
    reasoning_tokens: int = 0
    """Reasoning chunks streamed (a thinking model's; each is about one token)."""
    tokens: Sequence[TokenLogprob] = ()
    """The generated tokens with their log-probabilities (when the request asked; a
    :class:`~app.core.token_tape.TokenTape` from the engine)."""
    notices: tuple[str, ...] = ()
    """What the provider said about this answer that is not an error (e.g. no probabilities)."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The calls the model made (its ``finish_reason`` is then ``tool_calls``)."""

    def figures(self) -> MessageFigures:
        """The answer's figures as the history keeps them."""
        return record_figures(self.record, self.request, self.load_s, self.reasoning_tokens)

    def to_json(self) -> dict[str, object]:
        """The CLI's ``--json`` object."""
        return {
            "model": str(self.request.model),
            "text": self.text,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "cached_tokens": self.usage.cached_prompt_tokens,
                "estimated": self.usage.estimated,
            },
            "cost_usd": None if self.cost_usd is None else float(self.cost_usd),
            "ttft_s": self.ttft_s,
            "tokens_per_s": self.tokens_per_s,
            "finish_reason": self.finish_reason,
            "reasoning_chars": len(self.reasoning),
            **({"tokens": [t.to_json() for t in self.tokens]} if self.request.params.logprobs is not None else {}),
            **({"notes": list(self.notices)} if self.notices else {}),
            **({"tool_calls": [c.to_json() | {"arguments": _arguments(c)} for c in self.tool_calls]}
               if self.tool_calls else {}),
        }


def _arguments(call: ToolCall) -> object:
    """A call's arguments as JSON where they parse, else the text the model wrote."""
    parsed = call.parsed_arguments()
    return call.arguments if parsed is None else parsed


EventCallback = Callable[[StreamEvent, LiveStats], None]


class Generation:
    """One generation while it streams: the ONE place its text and reasoning accumulate.

    The scheduler keeps it, so a cancelled or failed run still has its partial text."""

    __slots__ = ("request", "stats", "parts", "thoughts", "usage", "reason", "load_s", "tokens", "notices", "record",
                 "prompt_estimate", "calls")

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.stats = LiveStats()
        self.parts: list[str] = []
        self.thoughts: list[str] = []  # reasoning: passed on, never part of the answer text
        self.usage: UsageReport | None = None
        self.reason = "stop"
        self.load_s: float | None = None
        """Time the provider spent loading the model (until its last ``Progress``)."""
        self.tokens = TokenTape()
        """The generated tokens with their log-probabilities (when the request asked), kept
        compactly: a long answer adds no objects for the garbage collector to walk."""
        self.notices: list[str] = []
        """What the provider said about this answer that is not an error."""
        self.prompt_estimate: int | None = None
        """The prompt's tokens counted locally (once; see :meth:`Engine.prompt_estimate`)."""
        self.record: GenerationRecord | None = None
        """Its ledger record once it ended (finished, failed or stopped)."""
        self.calls = ToolCallAccumulator()
        """The tool calls, built from their streamed pieces (the one place they accumulate)."""

    def figures(self) -> MessageFigures | None:
        """The figures of the ended generation (a stopped or failed one too); None before."""
        if self.record is None:
            return None
        return record_figures(self.record, self.request, self.load_s, self.stats.reasoning_chunks)

    def restart_clock(self) -> None:
        """Time the generation from now (a run that waited in its lane is timed from its start)."""
        self.stats = LiveStats()

    @property
    def text(self) -> str:
        """The answer text so far."""
        return "".join(self.parts)

    @property
    def reasoning(self) -> str:
        """A thinking model's reasoning so far."""
        return "".join(self.thoughts)
