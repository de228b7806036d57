"""The tool loop: one answer as several model requests (*steps*) while the model calls tools.

Step k is one scheduler run of the request with the messages so far (every step's ledger row
is tagged with the loop's id; the answer's usage and cost are summed over its steps). After
a step whose answer holds tool calls, each call gets its result from a resolver
(:mod:`app.core.tool_resolvers`: a stub, an error for arguments that do not parse, an MCP
server), the results go back as an assistant message with the calls and one ``tool``
message per call, and the model continues. The loop ends when

- the model answers without calls (``finish_reason`` as the model's: ``stop``, ``length``);
- a call has no result (no stub, no server): ``finish_reason`` ``tool_calls``, the calls
  are in the result (the front end prints them);
- ``max_steps`` requests were made and the last one still asked for tools:
  ``finish_reason`` ``max_tool_steps``, with a sentence in :attr:`LoopResult.note`.

A front end uses it like this (the window's Tools panel and tool-call cards, the CLI)::

    loop = ToolLoop(scheduler, ResolverChain.standard(stubs, servers, approve),
                    max_steps=settings.max_tool_steps, on_event=show,    # RunEvent | LoopEvent
                    store=answers, answer=answers.start(cid, user_id, request, system))
    result = await loop.run(request)              # LoopResult; raises the step's AppError
    result.text, result.calls, result.finish_reason, result.to_json()

``review(step, records)`` (optional) sees each step's calls with their results before they
go back and returns them, changed or not (stub results edited, a result typed in for a call
nobody answers). Cancelling the task that awaits :meth:`ToolLoop.run` stops the current
step's run (its partial answer kept) and the MCP calls under way.

With ``store`` and ``answer`` (an :class:`~app.core.answer_store.AnswerStore` and the row of
the first step) every step is written into the conversation: the assistant message with its
``tool_calls``, one ``tool`` message per result, then the next answer. Re-running from an
edited result (a new branch): :meth:`AnswerStore.branch_tool_result` then
:meth:`ToolLoop.continue_from`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from app.core.errors import InvalidParams
from app.core.exchange import context_messages
from app.core.runs import new_run_id
from app.core.tool_events import (
    CallRecord,
    LoopEvent,
    LoopResult,
    ToolCallsMade,
    ToolLoopFinished,
    ToolResultReady,
    ToolStepStarted,
)
from app.core.tool_resolvers import DENIED, ResolverChain, ToolResolver
from app.core.tools import DEFAULT_MAX_STEPS, ToolCall, validate_answer
from app.core.types import ChatMessage, GenerationRequest

if TYPE_CHECKING:
    from app.core.answer_store import AnswerStore, StoredAnswer
    from app.core.generation import GenerationResult
    from app.core.history_types import StoredMessage
    from app.core.run_events import RunEvent
    from app.core.runs import RunScheduler

LoopListener = Callable[["RunEvent | LoopEvent"], None]
ENDED_EARLY = ("tool_calls", "max_tool_steps", "tool_error")
"""The loop's own finish reasons: it stopped before the model's final answer."""


Review = Callable[[int, list[CallRecord]], Awaitable[Sequence[CallRecord]]]


def _names(calls: Sequence[ToolCall]) -> str:
    return ", ".join(dict.fromkeys(f"'{c.name}'" for c in calls))


def _later_choice(choice: str | None) -> str | None:
    """The tool choice after the first step: a forced call (``required``, a name) once, then
    ``auto`` (forcing it every step would loop until ``max_steps``)."""
    return choice if choice is None or choice in ("auto", "none") else "auto"


def step_messages(messages: Sequence[ChatMessage], text: str, records: Sequence[CallRecord]) -> tuple[ChatMessage, ...]:
    """``messages``, then the assistant message with the calls and one ``tool`` message per
    result (in the order of the calls)."""
    calls = tuple(r.call for r in records)
    results = [ChatMessage("tool", r.result.content, tool_call_id=r.call.id) for r in records if r.result is not None]
    return (*messages, ChatMessage("assistant", text, tool_calls=calls), *results)


class ToolLoop:
    """Runs one answer as several steps (see the module doc). Qt-free."""

    def __init__(self, scheduler: RunScheduler, resolver: ToolResolver | None = None, *,
                 max_steps: int = DEFAULT_MAX_STEPS, on_event: LoopListener | None = None,
                 review: Review | None = None, loop_id: str | None = None, conversation_id: str | None = None,
                 store: AnswerStore | None = None, answer: StoredAnswer | None = None,
                 stop_on_tool_error: bool = False) -> None:  # fmt: skip
        if max_steps < 1:
            raise InvalidParams(f"max_tool_steps must be at least 1 (got {max_steps}).")
        self.scheduler = scheduler
        self.resolver: ToolResolver = resolver or ResolverChain.standard()
        self.max_steps = max_steps
        self.on_event = on_event
        self.review = review
        self.loop_id = loop_id or new_run_id()
        self.store = store
        self.answer = answer
        self.conversation_id = conversation_id or (answer.conversation_id if answer is not None else None)
        self.stop_on_tool_error = stop_on_tool_error
        """A failed MCP call ends the answer (settings.stop_on_tool_error) instead of going back."""

    def _emit(self, event: RunEvent) -> None:
        """A step's run event: to the listener first, then to the store."""
        if self.on_event is not None:
            self.on_event(event)
        if self.store is not None:
            self.store.on_event(event)

    def _say(self, event: LoopEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def run(self, request: GenerationRequest) -> LoopResult:
        """Run the loop from ``request`` (see the module doc); raises the failing step's
        :class:`~app.core.errors.AppError`, or ``CancelledError`` when cancelled."""
        out = LoopResult(self.loop_id, [], schema=request.response_schema)
        step_request = request
        for step in range(1, self.max_steps + 1):
            result = await self._step(step, step_request)
            out.steps.append(result)
            out.finish_reason = result.finish_reason
            if not result.tool_calls:
                break
            self._say(ToolCallsMade(self.loop_id, step, result.tool_calls))
            if step >= self.max_steps:
                out.calls += [CallRecord(step, c) for c in result.tool_calls]
                out.finish_reason = "max_tool_steps"
                out.note = (f"Stopped after {step} step{'s' if step > 1 else ''} (max_tool_steps = {self.max_steps}): "
                            f"the model still asked for {_names(result.tool_calls)}. Raise max_tool_steps to let "
                            "it go on.")  # fmt: skip
                break
            records = await self._resolve(step, result.tool_calls)
            out.calls += records
            missing = [r.call for r in records if r.result is None]
            if missing:
                out.finish_reason = "tool_calls"
                out.note = (f"The model asked for {_names(missing)}, which no stub result or MCP server answers; "
                            "the run stopped at the call (finish_reason tool_calls). Give the function a result "
                            "or an MCP server that offers it.")  # fmt: skip
                break
            failed = [(r.call, r.result.content) for r in records if r.server is not None and r.result is not None
                      and r.result.is_error and r.result.content != DENIED]  # fmt: skip
            if failed and self.stop_on_tool_error:
                self._store_results(records, step_request)
                out.finish_reason = "tool_error"
                out.note = (f"{_names([c for c, _ in failed])} failed on its MCP server ({failed[0][1]}); "
                            "the run stopped there (stop_on_tool_error). Set it off to let the model see the "
                            "error and go on.")  # fmt: skip
                break
            step_request = dataclasses.replace(
                request, messages=step_messages(step_request.messages, result.text, records), prefix="",
                tool_choice=_later_choice(request.tool_choice),
            )
            self._store_results(records, step_request)
        if out.schema is not None:
            out.invalid_reason = (f"the run ended before the answer (finish_reason {out.finish_reason})"
                                  if out.finish_reason in ENDED_EARLY else validate_answer(out.text, out.schema))  # fmt: skip
        if self.store is not None and self.answer is not None:
            self.store.end_loop(self.answer, out.summary())
        self._say(ToolLoopFinished(self.loop_id, out))
        return out

    async def continue_from(self, request: GenerationRequest, path: Sequence[StoredMessage],
                            system_prompt: str) -> LoopResult:  # fmt: skip
        """Run the loop from a stored path whose last message is a ``tool`` result (e.g. a
        result the user edited: :meth:`AnswerStore.branch_tool_result`): the model continues
        after it. ``request`` gives the model, parameters and tools; its messages are the path's."""
        if not path or path[-1].role != "tool":
            raise InvalidParams("A tool loop continues from a tool result; the path does not end with one.",
                                hint="Pick a tool message to re-run from.")  # fmt: skip
        messages = tuple(context_messages(path, system_prompt))
        return await self.run(dataclasses.replace(request, messages=messages, prefix=""))

    async def _step(self, step: int, request: GenerationRequest) -> GenerationResult:
        answer = self.answer
        run = self.scheduler.submit(request, on_event=self._emit, conversation_id=self.conversation_id,
                                    message_id=None if answer is None else answer.message_id, tag=self.loop_id)  # fmt: skip
        if self.store is not None and answer is not None:
            self.store.follow(answer, run)
        self._say(ToolStepStarted(self.loop_id, step, run.id))
        try:
            return await run
        except asyncio.CancelledError:  # stop the step's run; its answer ends stopped with its partial text
            run.cancel()
            if self.store is not None:
                self.store.interrupt(run.id, None)
            raise

    async def _resolve(self, step: int, calls: Sequence[ToolCall]) -> list[CallRecord]:
        """Each call's result in turn (said as it comes unless ``review`` sees them first)."""
        records: list[CallRecord] = []
        for call in calls:
            started = time.monotonic()
            found = await self.resolver.resolve(call)
            record = CallRecord(step, call)
            if found is not None:
                result = found.result
                if result.elapsed_s is None:
                    result = dataclasses.replace(result, elapsed_s=round(time.monotonic() - started, 3))
                record = CallRecord(step, call, result, found.server)
            records.append(record)
            if self.review is None and record.result is not None:
                self._say(ToolResultReady(self.loop_id, step, call, record.result, record.server))
        if self.review is not None:
            records = list(await self.review(step, records))
            for record in records:
                if record.result is not None:
                    self._say(ToolResultReady(self.loop_id, step, record.call, record.result, record.server))
        return records

    def _store_results(self, records: Sequence[CallRecord], next_request: GenerationRequest) -> None:
        """The step's ``tool`` messages under its answer, then the next step's answer row."""
        if self.store is None or self.answer is None:
            return
        parent = self.answer.message_id
        for record in records:
            assert record.result is not None
            parent = self.store.add_tool_result(self.answer.conversation_id, parent, record.call, record.result,
                                                step=record.step, server=record.server, loop_id=self.loop_id).id  # fmt: skip
        self.answer = self.store.next_answer(self.answer, parent, next_request)


__all__ = ["DEFAULT_MAX_STEPS", "CallRecord", "LoopResult", "Review", "ToolLoop", "step_messages"]
