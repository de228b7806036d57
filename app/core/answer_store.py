"""Answer persistence, the same for every front end (the window's chat session, ``ask
--conversation``): a run listener that writes an answer into the conversation's message tree.

:meth:`AnswerStore.start` stores the answer's row (``streaming``) and the conversation's
state; :meth:`AnswerStore.follow` ties it to its :class:`~app.core.runs.Run`; from then on
:meth:`AnswerStore.on_event` (a :data:`~app.core.runs.RunListener`) saves the partial answer
while it streams (at most every ``save_every_s``), and its end: the text, figures, seed,
adapters, reasoning, tokens and notes of a finished answer (:func:`~app.core.exchange.final_meta`),
or the partial text of a failed (``error``) or stopped (``cancelled``) one. The text is the
run's own (:class:`~app.core.generation.Generation` is the one place it accumulates).

A history another program holds never stops an answer: its writes wait in the history's
journal (:mod:`app.core.history_pending`); an answer whose saving waited says so in its ledger
row (:meth:`LedgerNotes.annotate`) when it ends.

The one place that persists a run: a new event kind that belongs in the history (e.g. tool
calls and their results as messages) gets its branch in :meth:`AnswerStore.on_event`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from app.core.errors import InvalidParams
from app.core.exchange import (
    PREFIX_TOKENS,
    final_meta,
    history_note,
    lens_meta,
    prefix_start,
    remember_state,
    start_answer,
)
from app.core.lazy_events import run_events
from app.core.lens import stored_tokens, tokens_to_json

if TYPE_CHECKING:
    from app.core.events import TokenLogprob
    from app.core.history import HistoryStore, MessageStatus, StoredMessage
    from app.core.run_events import RunEvent
    from app.core.runs import Run
    from app.core.tools import ToolCall, ToolResult
    from app.core.types import GenerationParams, GenerationRequest

log = logging.getLogger(__name__)

SAVE_EVERY_S = 0.3
"""The partial answer is saved at most this often while it streams."""
REWRITE_CHARS_PER_S = 256_000
"""A partial save rewrites the whole message row (SQLite has no append), so a long answer's
saves space out to rewrite at most this many characters a second: unchanged up to ~77k
characters, every ~2.2 s at 560k (an 80k-token answer, where each save cost 2-3 ms of the GUI
thread plus WAL checkpoints). A killed process still leaves the answer up to its last save."""
LENS_KEYS = ("tokens", "tokens_total")
"""The meta keys an :class:`AnswerStore` made with ``lens_later`` leaves for a later write."""


class LedgerNotes(Protocol):
    """What the store needs from the usage ledger (:class:`app.core.usage.UsageLedger`)."""

    def annotate(self, conversation_id: str, note: str) -> None:
        """Add ``note`` to the latest row of ``conversation_id`` (never raises)."""
        ...


def split_lens(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``meta`` without its tokens, and the whole meta when it has tokens (else ``{}``)."""
    if not any(k in meta for k in LENS_KEYS):
        return meta, {}
    return {k: v for k, v in meta.items() if k not in LENS_KEYS}, meta


@dataclass(eq=False)
class StoredAnswer:
    """One answer in the history: its row, the run that makes it, and once it ended its
    ``status``, ``error`` and whole ``meta`` (the figures and tokens included)."""

    conversation_id: str
    message_id: int
    meta: dict[str, Any]
    """What the row's meta held at its start (model, endpoint, adapters, params, seed...)."""
    asked: bool = False
    """Probabilities were asked for (the tokens are kept with the answer)."""
    prefix_tokens: tuple[TokenLogprob, ...] = ()
    """The tokens of the given start of a branched answer (see ``request.prefix``)."""
    run: Run | None = None
    status: MessageStatus = "streaming"
    error: str | None = None
    final: dict[str, Any] = field(default_factory=dict)
    """The whole meta once the answer ended (``lens_later``: without the ``tokens`` list)."""
    later: dict[str, Any] = field(default_factory=dict)
    """The whole meta (with tokens) still to write (``lens_later``; empty: written); its
    ``tokens`` list is made on first need (:meth:`AnswerStore.later_meta`)."""
    later_tokens: Callable[[], list[dict[str, Any]]] | None = None
    """Makes :attr:`later`'s ``tokens`` (None: made, or none to make)."""
    waited: bool = False
    """Some write of this answer found the history busy and waited in its journal."""
    saved_at: float = 0.0
    saved_parts: int = 0
    saved_thoughts: int = 0
    saved_chars: int = 0  # the length of the text the last partial save wrote

    @property
    def run_id(self) -> str | None:
        """The id of the run that makes it (None before :meth:`AnswerStore.follow`)."""
        return None if self.run is None else self.run.id

    @property
    def text(self) -> str:
        """The answer so far (the run's)."""
        return "" if self.run is None else self.run.text

    def live_meta(self) -> dict[str, Any]:
        """The meta while it streams: its start's, with the reasoning so far."""
        meta = dict(self.meta)
        gen = self.run.generation if self.run is not None else None
        if gen is not None and gen.thoughts:
            meta["reasoning"] = gen.reasoning
            meta["reasoning_tokens"] = len(gen.thoughts)
        return meta


class AnswerStore:
    """Writes runs' answers into the history (see the module doc).

    ``settle``: at an answer's end, wait the busy timeout for a busy history before noting in
    the ledger what happened (the CLI, which exits next; the window retries instead).
    ``lens_later``: the final write leaves out the tokens, kept in :attr:`StoredAnswer.later`
    for the caller to write a moment later (:meth:`write_later`; the window, to keep the end
    of a long answer a few short steps): their stored list is not even made at the end
    (:meth:`later_meta` makes it)."""

    def __init__(self, history: HistoryStore, ledger: LedgerNotes | None = None, *,
                 save_every_s: float = SAVE_EVERY_S, settle: bool = False, lens_later: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.history = history
        self.ledger = ledger
        self.save_every_s = save_every_s
        self.settle = settle
        self.lens_later = lens_later
        self._clock = clock
        self._answers: dict[str, StoredAnswer] = {}

    # -- an answer's life ---------------------------------------------------------------------
    def start(self, conversation_id: str, parent_id: int | None, request: GenerationRequest, system_prompt: str,
              *, params: GenerationParams | None = None, seed_chosen: bool = False,
              prefix_tokens: tuple[TokenLogprob, ...] = (), remember: bool = True) -> StoredAnswer:
        """Store the answer's row (``streaming``, under ``parent_id``) and, with ``remember``,
        the conversation's state for a reopen (``params``: as the user set them; default the
        request's)."""
        row = start_answer(self.history, conversation_id, parent_id, request, system_prompt, seed_chosen=seed_chosen)
        meta = dict(row.meta)
        if prefix_tokens:
            meta[PREFIX_TOKENS] = tokens_to_json(prefix_tokens)
            self.history.update_message(row.id, meta=meta)
        if remember:
            remember_state(self.history, conversation_id, request, system_prompt, params or request.params)
        answer = StoredAnswer(conversation_id, row.id, meta, asked=request.params.logprobs is not None,
                              prefix_tokens=prefix_tokens)  # fmt: skip
        answer.waited = self.history.pending > 0
        return answer

    def follow(self, answer: StoredAnswer, run: Run) -> None:
        """Save what ``run`` streams as ``answer`` (its events come to :meth:`on_event`); a
        run that already ended was followed before (nothing is left to save)."""
        if run.ended is not None and answer.run is run:
            return
        answer.run = run
        answer.saved_at = self._clock()
        self._answers[run.id] = answer

    def abandon(self, answer: StoredAnswer, error: str) -> None:
        """The answer's run could not be started: its row ends as an error."""
        answer.status, answer.error = "error", error
        self.history.update_message(answer.message_id, status="error", error=error)

    def get(self, run_id: str) -> StoredAnswer | None:
        """The answer ``run_id`` makes (None: not followed, or ended)."""
        return self._answers.get(run_id)

    def answers(self) -> list[StoredAnswer]:
        """The answers that stream now."""
        return list(self._answers.values())

    # -- tool calls (a tool loop's steps, see app.core.tool_loop) --------------------------------
    def add_tool_result(self, conversation_id: str, parent_id: int, call: ToolCall, result: ToolResult, *,
                        step: int, server: str | None = None, loop_id: str | None = None) -> StoredMessage:
        """Store one call's result as a ``tool`` message under ``parent_id`` (the answer with
        the calls, or the result before it); its meta names the call, the function, where the
        result came from, whether it is an error, the time it took and the MCP server."""
        meta = {"call_id": call.id, "name": call.name, "arguments": call.arguments, "source": result.source,
                "is_error": result.is_error, "elapsed_s": result.elapsed_s, "server": server, "step": step,
                "loop_id": loop_id}  # fmt: skip
        return self.history.add_message(conversation_id, "tool", result.content, parent_id=parent_id, meta=meta)

    def next_answer(self, previous: StoredAnswer, parent_id: int, request: GenerationRequest) -> StoredAnswer:
        """The row of a tool loop's next step (under the last ``tool`` message), made like
        ``previous`` (its system prompt); the conversation's state is left as the first step set it."""
        system = previous.meta.get("system_prompt")
        return self.start(previous.conversation_id, parent_id, request, system if isinstance(system, str) else "",
                          remember=False)  # fmt: skip

    def end_loop(self, answer: StoredAnswer, summary: Mapping[str, Any]) -> None:
        """Keep a tool loop's figures with its last answer (``loop``: steps, summed tokens and
        cost, finish reason, the note when it stopped early, the schema's verdict)."""
        meta = {**(answer.final or answer.meta), "loop": dict(summary)}
        if summary.get("note"):
            meta["notes"] = [*meta.get("notes", []), summary["note"]]
        answer.final = meta
        if answer.later:  # the tokens are written later with the whole meta: the summary with them
            answer.later = {**answer.later, "loop": dict(summary)}
            if "notes" in meta:
                answer.later["notes"] = meta["notes"]
        try:
            self.history.update_message(answer.message_id, meta=split_lens(meta)[0] if self.lens_later else meta)
        except Exception:  # the answer itself is saved; the summary is extra
            log.warning("could not save the tool loop's summary with message %s", answer.message_id, exc_info=True)

    def branch_tool_result(self, conversation_id: str, message_id: int, content: str) -> StoredMessage:
        """A new version of the ``tool`` message ``message_id`` with ``content`` (a sibling: a
        new branch), and copies of the results of the same answer after it, so the branch
        answers every call; returns the last of them, the message to continue from
        (:meth:`app.core.tool_loop.ToolLoop.continue_from`)."""
        original = self.history.require_message(conversation_id, message_id)
        if original.role != "tool":
            raise InvalidParams(f"Message {message_id} is not a tool result.", hint="Pick a tool message to edit.")
        tree = self.history.tree(conversation_id)
        active = {m.id for m in tree.path()}
        later: list[StoredMessage] = []
        current = message_id
        while kids := [m for m in tree.children(current) if m.role == "tool"]:  # the active one, else the newest
            after = next((m for m in kids if m.id in active), kids[-1])
            later.append(after)
            current = after.id
        meta = {**original.meta, "source": "stub", "is_error": False, "edited": True, "elapsed_s": None}
        made = self.history.add_message(conversation_id, "tool", content, parent_id=original.parent_id, meta=meta)
        for m in later:
            made = self.history.add_message(conversation_id, "tool", m.content, parent_id=made.id, meta=dict(m.meta))
        return made

    # -- the run listener ---------------------------------------------------------------------
    def on_event(self, event: RunEvent) -> None:
        """Save what ``event`` changes of a followed answer (others are ignored)."""
        answer = self._answers.get(event.run_id)
        if answer is None:
            return
        ev = run_events()  # not an import per token (see app.core.lazy_events)
        if isinstance(event, ev.RunText | ev.RunReasoning):
            if self._clock() - answer.saved_at >= self._interval(answer):
                self._save_partial(answer)
        elif isinstance(event, ev.RunFinished):
            result = event.result
            self._end(answer, result.text, "complete", None,
                      final_meta(answer.meta, result, with_tokens=not self.lens_later), result.tokens)
        elif isinstance(event, ev.RunFailed):
            self._end(answer, event.partial_text, "error", event.message)
        elif isinstance(event, ev.RunCancelled):
            self._end(answer, event.partial_text, "cancelled", None)

    def save_partials(self, *, due_only: bool = False) -> None:
        """Write every streaming answer's unsaved text and reasoning now (a fork, the close;
        ``due_only``: only those not saved for their interval, for a timer beside the
        stream's own saves). Never raises: a busy history keeps them pending; any other
        failure is logged and retried next time."""
        now = self._clock()
        for answer in list(self._answers.values()):
            if not due_only or now - answer.saved_at >= self._interval(answer):
                self._save_partial(answer)

    def interrupt(self, run_id: str, error: str | None) -> StoredAnswer | None:
        """End the answer of ``run_id`` now with its text so far, as failed with ``error``
        (e.g. an internal error) or, with None, as stopped (the front end itself stops)."""
        answer = self._answers.get(run_id)
        if answer is not None:
            self._end(answer, answer.text, "error" if error else "cancelled", error)
        return answer

    def later_meta(self, answer: StoredAnswer) -> dict[str, Any]:
        """What the final write left for later (``lens_later``), its ``tokens`` made now if
        they were not yet ({}: nothing left)."""
        make, answer.later_tokens = answer.later_tokens, None
        if make is not None and answer.later:
            answer.later = {**answer.later, "tokens": make()}
        return answer.later

    def write_later(self, answer: StoredAnswer) -> bool:
        """Write what the final write left for later (``lens_later``); False when it failed
        (logged: the answer itself is saved)."""
        meta, answer.later = self.later_meta(answer), {}
        if not meta:
            return True
        try:
            self.history.update_message(answer.message_id, meta=meta)
        except Exception:  # the probabilities are extra; the answer is in the history
            log.warning("could not save the probabilities of message %s", answer.message_id, exc_info=True)
            return False
        return True

    # -- writing ------------------------------------------------------------------------------
    def _interval(self, answer: StoredAnswer) -> float:
        """Seconds between ``answer``'s partial saves: ``save_every_s``, longer for a long
        text (:data:`REWRITE_CHARS_PER_S`)."""
        return max(self.save_every_s, answer.saved_chars / REWRITE_CHARS_PER_S)

    def _save_partial(self, answer: StoredAnswer) -> None:
        gen = answer.run.generation if answer.run is not None else None
        if gen is None:
            return
        answer.saved_at = self._clock()
        parts, thoughts = len(gen.parts), len(gen.thoughts)
        try:  # a partial save never breaks the stream
            if thoughts != answer.saved_thoughts:  # the reasoning lives in meta (it is not the answer)
                self.history.update_message(answer.message_id, meta=answer.live_meta())
                answer.saved_thoughts = thoughts
            if parts != answer.saved_parts:
                text = gen.text
                self.history.update_message(answer.message_id, content=text)
                answer.saved_parts = parts
                answer.saved_chars = len(text)
        except Exception:  # the text is still in the run
            log.info("the partial answer was not saved now", exc_info=True)
        self._note_pending()

    def _end(self, answer: StoredAnswer, text: str, status: MessageStatus, error: str | None,
             meta: Mapping[str, Any] | None = None, tokens: Sequence[TokenLogprob] | None = None) -> None:
        """The answer's final write: ``meta`` of a finished answer (made of ``tokens``), else what
        it had so far."""
        if answer.run is not None:
            self._answers.pop(answer.run.id, None)
        base = answer.live_meta()
        if tokens is None:
            tokens = answer.run.generation.tokens if answer.run is not None else []
        if meta:
            full = {**base, **meta}
        else:  # stopped or failed: its tokens so far, and the figures the ledger recorded
            full = lens_meta(base, tokens, answer.asked, with_tokens=not self.lens_later)
            figures = answer.run.generation.figures() if answer.run is not None else None
            if figures is not None:
                full.update(figures.to_meta())
        full.pop(PREFIX_TOKENS, None)
        answer.status, answer.error, answer.final = status, error, full
        if self.lens_later and answer.asked:  # the tokens' list is made when they are written
            written, answer.later = split_lens(full)[0], full
            answer.later_tokens = partial(stored_tokens, prefix_start(base), tokens)
        else:
            written, answer.later = split_lens(full) if self.lens_later else (full, {})
        self.history.update_message(answer.message_id, content=text, status=status, error=error, meta=written)
        self._note_pending(answer)
        if answer.waited:
            if self.settle:
                self.history.flush()
            if self.ledger is not None:  # the ledger's row says that saving waited
                self.ledger.annotate(answer.conversation_id, history_note(self.history))

    def _note_pending(self, ended: StoredAnswer | None = None) -> None:
        """Writes wait for a busy history: every answer streaming now (and ``ended``) waited."""
        if self.history.pending:
            for answer in [*self._answers.values(), *([ended] if ended is not None else [])]:
                answer.waited = True
