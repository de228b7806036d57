"""What the run scheduler tells its listeners, as frozen dataclasses.

Every event names its run by ``run_id`` (each is a :class:`RunEventBase`). A run's life:
``RunQueued`` -> ``RunStarted`` -> ``RunProgress`` (a model load) / ``RunRetrying`` / ``RunText`` / ``RunReasoning`` /
``RunStats``... -> exactly one of ``RunFinished``, ``RunFailed`` (with the partial text) or
``RunCancelled`` (with the partial text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import AppError
from app.core.events import Progress, TokenLogprob
from app.core.live_figures import LiveFigures as LiveFigures  # re-exported (what RunStats carries)
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
class RunEventBase:
    """What every run event has: the ``run_id`` of the run it is about."""

    run_id: str


@dataclass(frozen=True, slots=True)
class RunInfoEvent(RunEventBase):
    """What the events of a run's start (queued, started) have: the run's :class:`RunInfo`."""

    info: RunInfo


@dataclass(frozen=True, slots=True)
class RunQueued(RunInfoEvent):
    """The run was accepted; it waits for its lane (endpoint slot or the model worker)."""


@dataclass(frozen=True, slots=True)
class RunStarted(RunInfoEvent):
    """The run left the queue: its request is being sent (or its model loaded)."""


@dataclass(frozen=True, slots=True)
class RunProgress(RunEventBase):
    """The run's model is loading (or converting, downloading)."""

    progress: Progress


@dataclass(frozen=True, slots=True)
class RunRetrying(RunEventBase):
    """The run's request failed before any text and is tried again after ``delay_s`` (a
    countdown: reported about once a second with the ``seconds_left``)."""

    attempt: int
    delay_s: float
    message: str
    seconds_left: float | None = None


@dataclass(frozen=True, slots=True)
class RunText(RunEventBase):
    """A piece of the answer (with its tokens' log-probabilities when they were asked for)."""

    text: str
    tokens: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class RunNotice(RunEventBase):
    """Something to tell the user about the answer that is not an error; the run goes on."""

    message: str


@dataclass(frozen=True, slots=True)
class RunReasoning(RunEventBase):
    """A piece of a thinking model's reasoning (never part of the answer)."""

    text: str


@dataclass(frozen=True, slots=True)
class RunStats(RunEventBase):
    """Live figures of the run."""

    figures: LiveFigures


@dataclass(frozen=True, slots=True)
class RunFinished(RunEventBase):
    """The answer is complete."""

    result: GenerationResult


@dataclass(frozen=True, slots=True)
class RunFailed(RunEventBase):
    """The run failed; ``partial_text`` is what arrived before (kept, never lost)."""

    error: AppError
    partial_text: str = ""
    reasoning: str = ""

    @property
    def message(self) -> str:
        """The error as the user reads it (message and what to do)."""
        return self.error.user_message()


@dataclass(frozen=True, slots=True)
class RunCancelled(RunEventBase):
    """The run was stopped; ``partial_text`` is what arrived before."""

    partial_text: str = ""
    reasoning: str = ""


RunEnded = RunFinished | RunFailed | RunCancelled
RunEvent = (
    RunQueued | RunStarted | RunProgress | RunRetrying | RunText | RunReasoning | RunNotice | RunStats | RunEnded
)
