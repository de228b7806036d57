"""What a tool loop (:class:`app.core.tool_loop.ToolLoop`) tells its listener, beside the
run events of each step (:mod:`app.core.run_events`), as frozen dataclasses.

Every event names its loop by ``loop_id`` (the tag of the ledger rows of its steps). A
loop's life: ``ToolStepStarted`` (step 1) -> the step's run events -> ``ToolCallsMade`` ->
``ToolResultReady`` per call -> ``ToolStepStarted`` (step 2) -> ... -> ``ToolLoopFinished``
(or the step's ``RunFailed`` / ``RunCancelled``, after which the loop raises).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.tools import ToolCall, ToolResult

if TYPE_CHECKING:
    from app.core.tool_loop import LoopResult


@dataclass(frozen=True, slots=True)
class ToolStepStarted:
    """Step ``step`` (1-based) sends its request as run ``run_id``."""

    loop_id: str
    step: int
    run_id: str


@dataclass(frozen=True, slots=True)
class ToolCallsMade:
    """The model's answer in ``step`` asked for ``calls`` (whole, their arguments as written)."""

    loop_id: str
    step: int
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class ToolResultReady:
    """The result of one call (a stub, an MCP server's or an error), about to go back to the
    model; ``server`` names the MCP server that answered (None: not one)."""

    loop_id: str
    step: int
    call: ToolCall
    result: ToolResult
    server: str | None = None

    @property
    def elapsed_s(self) -> float | None:
        """How long the call took (None: a stub, at once)."""
        return self.result.elapsed_s


@dataclass(frozen=True, slots=True)
class ToolLoopFinished:
    """The loop ended: the model answered, or it stopped (calls nobody answers, max steps)."""

    loop_id: str
    result: LoopResult


LoopEvent = ToolStepStarted | ToolCallsMade | ToolResultReady | ToolLoopFinished
