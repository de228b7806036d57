"""What the run scheduler tells its listeners, as frozen dataclasses.

Every event names its run by ``run_id``. A run's life: ``RunQueued`` -> ``RunStarted`` ->
``RunProgress`` (a model load) / ``RunRetrying`` / ``RunText`` / ``RunReasoning`` /
``RunStats``... -> exactly one of ``RunFinished``, ``RunFailed`` (with the partial text) or
``RunCancelled`` (with the partial text).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from app.core.errors import AppError
from app.core.events import Progress, TokenLogprob
from app.core.figures import format_cost, plural, speed_parts
from app.core.types import AdapterSpec, GenerationRequest, adapter_hashes, adapter_label

if TYPE_CHECKING:
    from app.core.engine import GenerationResult


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run is: its request and where its result belongs (conversation, message, tag:
    e.g. a Workbench run's id)."""

    run_id: str
    request: GenerationRequest
    conversation_id: str | None = None
    message_id: int | None = None
    tag: str | None = None

    @property
    def model(self) -> str:
        """``provider:model``."""
        return str(self.request.model)

    @property
    def endpoint(self) -> str | None:
        """The endpoint name or base URL (OpenAI-compatible models), or None."""
        return self.request.endpoint

    @property
    def adapters(self) -> tuple[AdapterSpec, ...]:
        """The LoRA adapters active for this run."""
        return self.request.adapters

    @property
    def adapter_label(self) -> str | None:
        """``name:scale,...`` of the adapters (None: the base model)."""
        return adapter_label(self.request.adapters)

    @property
    def adapter_sha256(self) -> str | None:
        """The adapters' sha256 values, in the order of :attr:`adapter_label`."""
        return adapter_hashes(self.request.adapters)


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


@dataclass(frozen=True, slots=True)
class RunQueued:
    """The run was accepted; it waits for its lane (endpoint slot or the model worker)."""

    run_id: str
    info: RunInfo


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run left the queue: its request is being sent (or its model loaded)."""

    run_id: str
    info: RunInfo


@dataclass(frozen=True, slots=True)
class RunProgress:
    """The run's model is loading (or converting, downloading)."""

    run_id: str
    progress: Progress


@dataclass(frozen=True, slots=True)
class RunRetrying:
    """The run's request failed before any text and is tried again after ``delay_s`` (a
    countdown: reported about once a second with the ``seconds_left``)."""

    run_id: str
    attempt: int
    delay_s: float
    message: str
    seconds_left: float | None = None


@dataclass(frozen=True, slots=True)
class RunText:
    """A piece of the answer (with its tokens' log-probabilities when they were asked for)."""

    run_id: str
    text: str
    tokens: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class RunNotice:
    """Something to tell the user about the answer that is not an error; the run goes on."""

    run_id: str
    message: str


@dataclass(frozen=True, slots=True)
class RunReasoning:
    """A piece of a thinking model's reasoning (never part of the answer)."""

    run_id: str
    text: str


@dataclass(frozen=True, slots=True)
class RunStats:
    """Live figures of the run."""

    run_id: str
    figures: LiveFigures


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The answer is complete."""

    run_id: str
    result: GenerationResult


@dataclass(frozen=True, slots=True)
class RunFailed:
    """The run failed; ``partial_text`` is what arrived before (kept, never lost)."""

    run_id: str
    error: AppError
    partial_text: str = ""
    reasoning: str = ""

    @property
    def message(self) -> str:
        """The error as the user reads it (message and what to do)."""
        return self.error.user_message()


@dataclass(frozen=True, slots=True)
class RunCancelled:
    """The run was stopped; ``partial_text`` is what arrived before."""

    run_id: str
    partial_text: str = ""
    reasoning: str = ""


RunEnded = RunFinished | RunFailed | RunCancelled
RunEvent = (
    RunQueued | RunStarted | RunProgress | RunRetrying | RunText | RunReasoning | RunNotice | RunStats | RunEnded
)
