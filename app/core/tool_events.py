"""What a tool loop (:class:`app.core.tool_loop.ToolLoop`) tells its listener, beside the
run events of each step (:mod:`app.core.run_events`), as frozen dataclasses, and what a loop
gives: :class:`CallRecord` (a call and its result) and :class:`LoopResult`.

Every event names its loop by ``loop_id`` (each is a :class:`ToolEvent`; the id is the tag of
the ledger rows of its steps). A loop's life: ``ToolStepStarted`` (step 1) -> the step's run events -> ``ToolCallsMade`` ->
``ToolResultReady`` per call -> ``ToolStepStarted`` (step 2) -> ... -> ``ToolLoopFinished``
(or the step's ``RunFailed`` / ``RunCancelled``, after which the loop raises).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.core.tools import ResponseSchema, ToolCall, ToolResult

if TYPE_CHECKING:
    from app.core.generation import GenerationResult


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call of the loop and its outcome: ``result`` None when nobody answered it."""

    step: int
    call: ToolCall
    result: ToolResult | None = None
    server: str | None = None

    def with_result(self, result: ToolResult | None) -> CallRecord:
        """The same call with ``result`` (e.g. a stub result the user edited)."""
        return dataclasses.replace(self, result=result)

    def to_json(self) -> dict[str, Any]:
        """``{id, name, arguments, result, error, step, source, server, elapsed_s}``: the
        arguments parsed where they are a JSON object, else the text the model wrote."""
        parsed = self.call.parsed_arguments()
        r = self.result
        return {"id": self.call.id, "name": self.call.name,
                "arguments": self.call.arguments if parsed is None else parsed,
                "result": None if r is None or r.is_error else r.content,
                "error": r.content if r is not None and r.is_error else None, "step": self.step,
                "source": None if r is None else r.source, "server": self.server,
                "elapsed_s": None if r is None else r.elapsed_s}  # fmt: skip


@dataclass
class LoopResult:
    """The outcome of :meth:`ToolLoop.run`: each step's result, every call, why it ended."""

    loop_id: str
    steps: list[GenerationResult]
    calls: list[CallRecord] = field(default_factory=list)
    finish_reason: str = "stop"
    note: str | None = None
    """A sentence for the user when the loop stopped early (max steps, calls unanswered)."""
    schema: ResponseSchema | None = None
    invalid_reason: str | None = None
    """Why the final text does not follow ``schema`` (None: it does, or there is none)."""

    @property
    def last(self) -> GenerationResult:
        """The last step's result."""
        return self.steps[-1]

    @property
    def text(self) -> str:
        """The final answer (the last step's text)."""
        return self.last.text

    @property
    def valid(self) -> bool | None:
        """Whether the final text follows the schema (None: no schema)."""
        return None if self.schema is None else self.invalid_reason is None

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of every step."""
        return sum(r.usage.prompt_tokens for r in self.steps)

    @property
    def completion_tokens(self) -> int:
        """Completion tokens of every step."""
        return sum(r.usage.completion_tokens for r in self.steps)

    @property
    def cost_usd(self) -> Decimal | None:
        """The cost of every step (None when a step's price is unknown)."""
        costs = [r.cost_usd for r in self.steps]
        return None if any(c is None for c in costs) else sum((c for c in costs if c is not None), Decimal(0))

    def pending(self) -> list[CallRecord]:
        """The calls of the last step that got no result (the loop stopped at them)."""
        return [c for c in self.calls if c.result is None]

    def summary(self) -> dict[str, Any]:
        """The loop's figures as the history keeps them with its final answer."""
        cost = self.cost_usd
        return {"id": self.loop_id, "steps": len(self.steps), "finish_reason": self.finish_reason,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": None if cost is None else str(cost), "note": self.note, "valid": self.valid,
                "invalid_reason": self.invalid_reason}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """``ask --json``'s object: the last step's keys with the summed usage and cost, the
        loop's ``finish_reason``, ``tool_calls``, ``steps`` and (with a schema) ``valid``."""
        data = self.last.to_json()
        cost = self.cost_usd
        data.update(text=self.text, finish_reason=self.finish_reason, steps=len(self.steps),
                    usage={"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                           "estimated": any(r.usage.estimated for r in self.steps)},
                    cost_usd=None if cost is None else float(cost),
                    tool_calls=[c.to_json() for c in self.calls])  # fmt: skip
        if self.note:
            data["note"] = self.note
        if self.schema is not None:
            data["valid"] = self.valid
            data["invalid_reason"] = self.invalid_reason
        return data


@dataclass(frozen=True, slots=True)
class ToolEvent:
    """What every event of a loop has: the ``loop_id``."""

    loop_id: str


@dataclass(frozen=True, slots=True)
class ToolStepEvent(ToolEvent):
    """What every event of one step has: the ``loop_id`` and the ``step`` (1-based)."""

    step: int


@dataclass(frozen=True, slots=True)
class ToolStepStarted(ToolStepEvent):
    """Step ``step`` sends its request as run ``run_id``."""

    run_id: str


@dataclass(frozen=True, slots=True)
class ToolCallsMade(ToolStepEvent):
    """The model's answer in ``step`` asked for ``calls`` (whole, their arguments as written)."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class ToolResultReady(ToolStepEvent):
    """The result of one call (a stub, an MCP server's or an error), about to go back to the
    model; ``server`` names the MCP server that answered (None: not one)."""

    call: ToolCall
    result: ToolResult
    server: str | None = None

    @property
    def elapsed_s(self) -> float | None:
        """How long the call took (None: a stub, at once)."""
        return self.result.elapsed_s


@dataclass(frozen=True, slots=True)
class ToolLoopFinished(ToolEvent):
    """The loop ended: the model answered, or it stopped (calls nobody answers, max steps)."""

    result: LoopResult


LoopEvent = ToolStepStarted | ToolCallsMade | ToolResultReady | ToolLoopFinished
