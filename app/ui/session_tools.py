"""The tool loop's part of the chat session: every answer runs as a
:class:`~app.core.tool_loop.ToolLoop` (without tools it is one step, the run the session
started), with the Tools panel's functions, stub results, MCP servers, ``tool_choice``, step
limit and response schema (:class:`ToolRunConfig`, from the session's :attr:`tool_source`).

The first step is the run the session already started (so its id is known at once); later
steps go through the window's :class:`~app.ui.backend_manager.BackendManager`
(:class:`BackendSteps`), which stays busy from the first step to the loop's end. Each call
shows as a :class:`~app.ui.widgets.tool_card.ToolCallCard` under the answer that made it,
its result as it comes; a reopened conversation shows them from its stored ``tool``
messages. An edited result re-runs the turn from there as a new branch
(:meth:`SessionTools.rerun_tool_result`: :meth:`AnswerStore.branch_tool_result`, then the
loop from that path).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from app.core.errors import AppError
from app.core.exchange import stored_calls
from app.core.lazy_events import tool_events
from app.core.tools import DEFAULT_MAX_STEPS

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from app.core.answer_store import AnswerStore, StoredAnswer
    from app.core.history import ConversationTree, StoredMessage
    from app.core.run_events import RunEvent
    from app.core.runs import Run, RunListener
    from app.core.tool_events import LoopResult
    from app.core.tool_loop import ToolLoop
    from app.core.tool_resolvers import ApproveHook, McpTools
    from app.core.tools import ResponseSchema, ToolSpec
    from app.core.types import GenerationParams, GenerationRequest
    from app.ui.backend_manager import BackendManager
    from app.ui.widgets.tool_card import ToolCallCard
    from app.ui.widgets.transcript import TranscriptView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolRunConfig:
    """What one send offers and asks: the functions (the MCP servers' tools included), the
    stub results, ``tool_choice``, the step limit, the response schema, the MCP servers and
    how to ask for approval; ``setup`` is the panel's content, kept with the conversation."""

    specs: tuple[ToolSpec, ...] = ()
    stubs: Mapping[str, str] = field(default_factory=dict)
    tool_choice: str | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    schema: ResponseSchema | None = None
    servers: McpTools | None = None
    approve: ApproveHook | None = None
    setup: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        """True when the send offers tools or asks for a shape."""
        return bool(self.specs) or self.schema is not None

    def apply(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with the tools, ``tool_choice`` and the response schema."""
        if not self.active:
            return request
        choice = self.tool_choice if self.specs else None
        return replace(request, tools=self.specs, tool_choice=choice, response_schema=self.schema)


class ToolSource(Protocol):
    """Where the session gets each send's tools (the Tools panel's controller)."""

    def prepare(self) -> ToolRunConfig:
        """The config for the next send; raises AppError (e.g. a function with a bad schema)."""
        ...

    def approval_of(self, call_id: str) -> str | None:
        """What the user answered when asked about the call ``call_id`` (None: not asked)."""
        ...


class BackendSteps:
    """The scheduler a tool loop sees: its first step is the run already started; later
    ones are runs of the window's backend."""

    def __init__(self, backend: BackendManager, first: Run) -> None:
        self.backend = backend
        self.first: Run | None = first

    def submit(self, request: GenerationRequest, *, on_event: RunListener | None = None,
               conversation_id: str | None = None, message_id: int | None = None, tag: str | None = None,
               run_id: str | None = None) -> Run:  # fmt: skip
        """The first run (its events now also to ``on_event``), then a new run per call."""
        first, self.first = self.first, None
        if first is not None:
            if on_event is not None:
                self.backend.listen(first.id, on_event)
            return first
        return self.backend.submit_step(request, on_event=on_event, conversation_id=conversation_id,
                                        message_id=message_id, tag=tag, run_id=run_id)  # fmt: skip


def _card_key(message_id: int, call_id: str) -> str:
    return f"t{message_id}:{call_id}"


class SessionTools:
    """Mixed into :class:`~app.ui.session.ChatSession` (which provides the attributes below)."""

    backend: BackendManager
    transcript: TranscriptView
    answers: AnswerStore
    tree: ConversationTree
    conversation_id: str | None
    leaf_id: int | None
    tool_source: ToolSource | None
    loops: dict[str, ToolLoop]
    """The loops under way by their first run's id."""

    if TYPE_CHECKING:  # the session's own
        def _reload_tree(self) -> None: ...
        def _load(self, leaf_id: int | None = None) -> None: ...
        def _answer(self, params: GenerationParams, system_prompt: str) -> str | None: ...
        loop_done: SignalInstance

        @property
        def path(self) -> list[StoredMessage]: ...

    def tool_config(self) -> ToolRunConfig:
        """The next send's tools (raises AppError when the panel's content is not valid)."""
        return self.tool_source.prepare() if self.tool_source is not None else ToolRunConfig()

    def _start_loop(self, config: ToolRunConfig, request: GenerationRequest, answer: StoredAnswer, run: Run,
                    loop_id: str) -> None:  # fmt: skip
        """Run the loop whose first step is ``run`` (the answer's)."""
        # the loop, its events and resolvers load with the first send
        from app.core.tool_loop import ToolLoop
        from app.core.tool_resolvers import ResolverChain

        resolver = ResolverChain.standard(config.stubs, config.servers, config.approve)
        loop = ToolLoop(BackendSteps(self.backend, run), resolver, max_steps=config.max_steps, loop_id=loop_id,  # type: ignore[arg-type]
                        on_event=self._on_loop_event, store=self.answers if config.active else None,
                        answer=answer if config.active else None, conversation_id=answer.conversation_id,
                        stop_on_tool_error=self.backend.services.settings.stop_on_tool_error)  # fmt: skip
        self.loops[run.id] = loop

        async def drive() -> None:
            result: LoopResult | None = None
            try:
                result = await loop.run(request)
            except (AppError, asyncio.CancelledError):  # the step's card shows it already
                pass
            finally:
                self.loops.pop(run.id, None)
                self.loop_done.emit(run.id, result)

        task = asyncio.ensure_future(drive())
        if config.active:
            self.backend.hold(task)

    def _remember_tools(self, cid: str, params: GenerationParams, tools: ToolRunConfig) -> None:
        """Keep the Tools panel's content with the conversation's parameters (for a reopen)."""
        if tools.setup is None:
            return
        from app.core.tool_setup import SETUP_KEY

        try:
            self.answers.history.update_conversation(cid, params={**params.to_dict(), SETUP_KEY: tools.setup})
        except Exception:  # a convenience: the answer goes on
            log.warning("could not keep the tools with the conversation", exc_info=True)

    # -- the loop's events ----------------------------------------------------------------------
    def _loop(self, loop_id: str) -> ToolLoop | None:
        return next((lp for lp in self.loops.values() if lp.loop_id == loop_id), None)

    def _on_loop_event(self, event: RunEvent | object) -> None:
        loop = self._loop(getattr(event, "loop_id", ""))
        if loop is None or loop.answer is None:
            return
        ev = tool_events()  # not an import per streamed token (see app.core.lazy_events)
        if isinstance(event, ev.ToolCallsMade):
            for call in event.calls:
                self.transcript.add_tool_call(_card_key(loop.answer.message_id, call.id), call)
        elif isinstance(event, ev.ToolResultReady):
            card = self.transcript.tool_card(_card_key(loop.answer.message_id, event.call.id))
            if card is not None:
                approval = self.tool_source.approval_of(event.call.id) if self.tool_source is not None else None
                r = event.result
                card.set_result(r.content, is_error=r.is_error, source=r.source, elapsed_s=r.elapsed_s,
                                server=event.server, approval=approval)  # fmt: skip
        elif isinstance(event, ev.ToolStepStarted) and event.step > 1:
            self._step_started(loop.answer)
        elif isinstance(event, ev.ToolLoopFinished):
            self._loop_finished(loop.answer, event.result)

    def _step_started(self, answer: StoredAnswer) -> None:
        """A later step: its results are stored (the cards learn their messages), its answer streams."""
        if self.conversation_id != answer.conversation_id:
            return
        self._reload_tree()
        self.leaf_id = answer.message_id
        self._bind_results(self.path)
        title = str(answer.meta.get("model") or "")
        self.transcript.start_stream(f"m{answer.message_id}", title=title, message_id=answer.message_id,
                                     branch=self.tree.position(answer.message_id))  # fmt: skip

    def _loop_finished(self, answer: StoredAnswer, result: LoopResult) -> None:
        card = self.transcript.card(f"m{answer.message_id}")
        from app.ui.widgets.tool_card import show_verdict

        if card is not None:
            show_verdict(card.badge, {"loop": result.summary()})
            if result.note:
                card.show_note(result.note)
        for record in result.pending():
            tool = self.transcript.tool_card(_card_key(answer.message_id, record.call.id))
            if tool is not None:
                tool.set_pending("no result: no stub or MCP server answers this call"
                                 if result.finish_reason == "tool_calls" else "not run: the step limit was reached")

    # -- stored conversations -------------------------------------------------------------------
    def _show_calls(self, m: StoredMessage) -> None:
        """The tool calls of a stored answer as cards (their results follow in the path)."""
        for call in stored_calls(m.meta):
            self.transcript.add_tool_call(_card_key(m.id, call.id), call)

    def _bind_results(self, path: list[StoredMessage]) -> None:
        """Give each tool card the stored ``tool`` message answering its call."""
        answer_id: int | None = None
        for m in path:
            if m.role == "assistant":
                answer_id = m.id
            elif m.role == "tool" and answer_id is not None:
                card = self.transcript.tool_card(_card_key(answer_id, str(m.meta.get("call_id", ""))))
                if card is not None:
                    self._fill(card, m)
        for card in self.transcript.tool_cards():
            if card.message_id is None and not card.result.isVisibleTo(card):  # the run stopped at the call
                card.set_pending("no result: the run stopped at this call")

    def _fill(self, card: ToolCallCard, m: StoredMessage) -> None:
        meta = m.meta
        elapsed = meta.get("elapsed_s")
        server = meta.get("server")
        approval = self.tool_source.approval_of(card.call.id) if self.tool_source is not None else None
        card.set_result(m.content, is_error=bool(meta.get("is_error")), source=str(meta.get("source") or ""),
                        elapsed_s=float(elapsed) if isinstance(elapsed, int | float) else None,
                        server=server if isinstance(server, str) else None, approval=approval, message_id=m.id,
                        branch=self.tree.position(m.id), edited=bool(meta.get("edited")))  # fmt: skip

    # -- re-running from an edited result -------------------------------------------------------
    def rerun_tool_result(self, message_id: int, content: str, params: GenerationParams,
                          system_prompt: str) -> str | None:  # fmt: skip
        """Store ``content`` as a new version of the ``tool`` message ``message_id`` (a new
        branch, the old one kept) and run the turn on from it; returns the generation id
        (None while an answer runs)."""
        if self.backend.is_busy() or self.conversation_id is None:
            return None
        made = self.answers.branch_tool_result(self.conversation_id, message_id, content)
        self._load(made.id)
        return self._answer(params, system_prompt)


__all__ = ["BackendSteps", "SessionTools", "ToolRunConfig", "ToolSource"]
