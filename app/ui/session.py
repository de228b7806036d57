"""The main window's open conversation: turns the backend's run events into transcript cards,
over the conversation's message tree. The answers are written by the core's
:class:`~app.core.answer_store.AnswerStore` (the same as the CLI's): the partial answer is
saved while it streams (every ~0.3 s, by its stream or, when that stalls, a timer), so a
crash or a cut connection loses nothing.

With probabilities asked for (:attr:`ChatSession.lens_k`), each answer's tokens are kept
with it (meta ``tokens``); :meth:`ChatSession.branch_from_token` makes a sibling answer that
keeps the text up to a token, says a chosen alternative there and continues from it.

The transcript shows one branch: the path from the root to :attr:`ChatSession.leaf_id`.
Edit-and-resend adds a sibling user message, Regenerate a sibling answer; the old turns stay
and ``‹ k/n ›`` on a card switches to them (:meth:`ChatSession.switch_branch`). Requests send
only the messages on the shown path.

Signals:
    conversation_changed(object conversation_id): the open conversation changed (None = new).
    branch_changed(object state): another branch is shown; ``state`` (a ConversationState or
        None) is what its last answer was made with, for the window to restore.
    answer_done(str gen_id, str status): an answer of this conversation ended.
    loop_done(str gen_id, object result): the answer ``gen_id`` and the tool loop it began
        ended (``result`` a LoopResult; None when a step failed or was stopped).
    history_pending(bool pending): saving to the history began to wait for another program
        that holds it (True; the writes wait in its journal and are retried every second),
        or what waited is now written (False).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.answer_store import AnswerStore, StoredAnswer
from app.core.errors import AppError
from app.core.events import TokenLogprob
from app.core.exchange import (
    ConversationState,
    answer_state,
    choose_seed,
    context_messages,
    conversation_state,
    title_for,
)
from app.core.history import Conversation, ConversationTree, StoredMessage
from app.core.lazy_events import run_events
from app.core.types import ChatMessage, GenerationParams
from app.ui.backend_manager import BackendManager
from app.ui.session_lens import LensWriter, SessionLens
from app.ui.session_tools import SessionTools, ToolSource
from app.ui.widgets.transcript import TranscriptView
from app.ui.wiring import connect_slots

if TYPE_CHECKING:  # the runs' and the tool loop's modules load with the first send
    from app.core.run_events import RunEvent
    from app.core.tool_loop import ToolLoop

log = logging.getLogger(__name__)
SAVE_INTERVAL_MS = 300
DRAFT_SAVE_MS = 800
PENDING_RETRY_MS = 1000


def _key(message_id: int) -> str:
    return f"m{message_id}"


class ChatSession(QObject, SessionLens, SessionTools):
    """The open conversation and the branch shown: sends, regenerates, edits, switches
    branches, forks, and persists streamed answers and the draft."""

    conversation_changed = Signal(object)
    branch_changed = Signal(object)
    answer_done = Signal(str, str)
    loop_done = Signal(str, object)
    history_pending = Signal(bool)

    def __init__(self, backend: BackendManager, transcript: TranscriptView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.history = backend.services.history
        self.transcript = transcript
        self.conversation_id: str | None = None
        self.tree = ConversationTree([])
        self.leaf_id: int | None = None
        """The last message of the branch shown (None: nothing shown yet)."""
        self.editing: int | None = None
        """The user message being edited (its branch is hidden until the edit is sent)."""
        self.answers = AnswerStore(self.history, backend.services.ledger, save_every_s=SAVE_INTERVAL_MS / 1000,
                                   lens_later=True)
        """Writes the answers (the partial text while they stream, their end)."""
        self._save_timer = QTimer(self)
        self._save_timer.setInterval(SAVE_INTERVAL_MS)
        self._save_timer.timeout.connect(self._on_save_timer)
        self._draft: tuple[str, str] | None = None
        self.new_draft = ""
        """The message box's text in a new conversation (not stored: there is no row yet)."""
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_SAVE_MS)
        self._draft_timer.timeout.connect(self.save_draft)
        self._pending_timer = QTimer(self)
        self._pending_timer.setInterval(PENDING_RETRY_MS)
        self._pending_timer.timeout.connect(self.retry_pending)
        self.lens_writer = LensWriter(self.answers, self._on_lens_written, self)
        self.lens_k: int | None = None
        self.tool_source: ToolSource | None = None
        """Gives each send its tools (the Tools panel); None: no tools."""
        self.loops: dict[str, ToolLoop] = {}
        """Ask every answer for its tokens' probabilities with this many alternatives (None: no)."""
        connect_slots(backend, self, "_on_backend_")

    # -- conversations --------------------------------------------------------------------------
    @property
    def path(self) -> list[StoredMessage]:
        """The branch shown, root first."""
        return self.tree.path(self.leaf_id) if self.leaf_id is not None else []

    @property
    def chat(self) -> list[ChatMessage]:
        """The shown branch as chat turns (what the next request sends after the system prompt)."""
        return context_messages(self.path, "")

    def open(self, conversation_id: str | None, leaf_id: int | None = None) -> Conversation | None:
        """Show a saved conversation's active branch, or the one ending at ``leaf_id`` (None:
        start a new conversation). Returns the Conversation or None."""
        self.save_draft()
        conv = self.history.get_conversation(conversation_id) if conversation_id else None
        self.conversation_id = conv.id if conv else None
        self.editing = None
        self._load(leaf_id)
        self.conversation_changed.emit(self.conversation_id)
        return conv

    def _reload_tree(self) -> None:
        self.lens_writer.flush()  # what is read includes the tokens of the last answer
        self.tree = self.history.tree(self.conversation_id) if self.conversation_id else ConversationTree([])
        if self.leaf_id is not None:  # written since (the history was busy): its real id
            self.leaf_id = self.history.resolve(self.leaf_id)

    def _load(self, leaf_id: int | None = None) -> None:
        """Read the tree and show the branch ending at ``leaf_id`` (default: the active one)."""
        self._reload_tree()
        self.leaf_id = leaf_id if leaf_id in self.tree.by_id else self.tree.active_leaf_id
        self.transcript.clear()
        for m in self.path:
            self._show_stored(m)
        self._bind_results(self.path)

    def _show_stored(self, m: StoredMessage) -> None:
        if m.role == "tool":  # shown on the card of its call (see _bind_results)
            return
        meta = dict(m.meta or {})
        meta.setdefault("model", m.model)
        if m.adapter:
            meta.setdefault("adapter", m.adapter)
        self.transcript.add_message(_key(m.id), m.role, m.content, message_id=m.id,
                                    meta=meta if m.role == "assistant" else None,
                                    status=m.status, error=m.error, branch=self.tree.position(m.id))
        if m.role == "assistant":
            self._show_calls(m)

    def request_messages(self, system_prompt: str) -> list[ChatMessage]:
        """What the next request sends: the system prompt, then the shown branch."""
        return context_messages(self.path, system_prompt)

    def state(self) -> ConversationState | None:
        """What to restore for the branch shown: what its last answer was made with, else
        what the conversation was left with (None: a new conversation)."""
        conv = self.history.get_conversation(self.conversation_id) if self.conversation_id else None
        if conv is None:
            return None
        saved = conversation_state(conv)
        answer = next((m for m in reversed(self.path) if m.role == "assistant"), None)
        if answer is None:
            return saved
        made = answer_state(answer)
        return ConversationState(made.model or saved.model, made.endpoint if made.model else saved.endpoint,
                                 made.adapters, made.params or saved.params,
                                 saved.system_prompt if made.system_prompt is None else made.system_prompt)

    # -- drafts ---------------------------------------------------------------------------------
    def note_draft(self, text: str) -> None:
        """The message box changed: keep ``text`` with the open conversation (saved shortly)."""
        if self.conversation_id is None:
            self.new_draft = text
            return
        self._draft = (self.conversation_id, text)
        self._draft_timer.start()

    def save_draft(self) -> None:
        """Write the pending draft now (before switching conversations, at close)."""
        self._draft_timer.stop()
        pending, self._draft = self._draft, None
        if pending is not None:
            try:
                self.history.set_draft(*pending)
            except Exception:  # the draft is a convenience; the text is still in the box
                log.warning("could not save the draft", exc_info=True)

    # -- sending --------------------------------------------------------------------------------
    def send(self, text: str, params: GenerationParams, system_prompt: str) -> str | None:
        """Save the user message under the shown branch's end (a sibling of the message being
        edited, if any) and start its answer; return the generation id."""
        if self.backend.is_busy() or not text.strip():
            return None
        if self.conversation_id is None:
            conv = self.history.create_conversation(title_for(text), model=self.backend.current_model(),
                                                    system_prompt=system_prompt, params=params.to_dict())
            self.conversation_id = conv.id
            self.new_draft = ""
            self.conversation_changed.emit(conv.id)
        user = self.history.add_message(self.conversation_id, "user", text, parent_id=self.leaf_id)
        self._draft = (self.conversation_id, "")
        self.save_draft()
        self.editing = None
        self._reload_tree()
        self.leaf_id = user.id
        self.transcript.add_message(_key(user.id), "user", text, message_id=user.id,
                                    branch=self.tree.position(user.id))
        return self._answer(params, system_prompt)

    def _answer(self, params: GenerationParams, system_prompt: str, *, made: ConversationState | None = None,
                prefix: str = "", prefix_tokens: tuple[TokenLogprob, ...] = (), seed_chosen: bool = False) -> str | None:
        """Answer the shown branch's last (user) message: a new child of it (``made``: with that
        model, endpoint and adapters instead of the current ones; ``prefix``: starting with it)."""
        assert self.conversation_id is not None and self.leaf_id is not None
        cid, parent = self.conversation_id, self.leaf_id
        try:
            tools = self.tool_config()
        except AppError as exc:  # checked before sending too (the controller): nothing is stored here
            self.transcript.show_note(_key(parent), exc.user_message())
            return None
        seeded = choose_seed(params)
        if seeded.logprobs is None and self.lens_k is not None:
            seeded = seeded.with_(logprobs=self.lens_k)
        messages = self.request_messages(system_prompt)
        request = self.backend.request(messages, seeded, model_id=made.model if made is not None else None,
                                       endpoint=made.endpoint if made is not None else None,
                                       adapters=made.adapters if made is not None else None)
        if prefix:
            request = replace(request, prefix=prefix)
        request = tools.apply(request)
        answer = self.answers.start(cid, parent, request, system_prompt, params=params, prefix_tokens=prefix_tokens,
                                    seed_chosen=seed_chosen or params.seed is None)  # fmt: skip
        self._remember_tools(cid, params, tools)
        self._reload_tree()
        self.leaf_id = answer.message_id
        key = _key(answer.message_id)
        adapter = answer.meta.get("adapter")
        title = f"{request.model}" + (f"  +  LoRA {adapter}" if adapter else "")
        self.transcript.start_stream(key, title=title, message_id=answer.message_id,
                                     branch=self.tree.position(answer.message_id))
        from app.core.runs import new_run_id

        loop_id = new_run_id()
        try:
            run_id = self.backend.generate(request, conversation_id=cid, message_id=answer.message_id,
                                          tag=loop_id if tools.active else None)
        except AppError as exc:
            self.answers.abandon(answer, exc.user_message())
            self.transcript.finish_stream(key, status="error", error=exc.user_message())
            return None
        run = self.backend.run(run_id)
        if run is not None:
            self.answers.follow(answer, run)
            self._start_loop(tools, request, answer, run, loop_id)
        self._save_timer.start()
        self._watch_pending()
        return run_id

    def regenerate(self, params: GenerationParams, system_prompt: str, message_id: int | None = None) -> str | None:
        """A sibling of the answer ``message_id`` (default: the shown branch's last answer): the
        same user message answered again, the old answer kept. When the branch ends with an
        unanswered user message, that one is answered."""
        if self.backend.is_busy() or self.conversation_id is None or self.leaf_id is None:
            return None
        path = self.path
        if message_id is not None:
            target = self.tree.by_id.get(message_id)
        else:
            target = next((m for m in reversed(path) if m.role == "assistant"), None)
        if target is not None and target.role == "assistant":
            parent = self.tree.parent_of(target.id)
        elif path and path[-1].role == "user":
            parent = path[-1].id
        else:
            return None
        if parent is None or self.tree.by_id[parent].role != "user":
            return None
        self.editing = None
        self._load(parent)
        return self._answer(params, system_prompt)

    def edit(self, message_id: int) -> str | None:
        """Start editing a user message: the branch is shown up to the message before it (the
        message and its answers stay stored); the next :meth:`send` makes a sibling of it.
        Returns its text for the editor."""
        if self.backend.is_busy() or self.conversation_id is None:
            return None
        msg = self.tree.by_id.get(message_id)
        if msg is None or msg.role != "user":
            return None
        parent = self.tree.parent_of(message_id)
        if parent is None:  # a first message: its sibling is a new root
            self.leaf_id = None
            self.transcript.clear("Editing the first message: send it to start a new branch. The old one "
                                  "stays (\u2039 \u203a on the message switches back).")
        else:
            self._load(parent)
        self.editing = message_id
        return msg.content

    def switch_branch(self, message_id: int, step: int) -> bool:
        """Show the branch of the sibling ``step`` places from ``message_id`` (wrapping), with
        its whole path below; it becomes the active branch. False while an answer streams or
        for a message that is not shown."""
        if self.is_streaming(self.conversation_id) or self.conversation_id is None or message_id not in self.tree.by_id:
            return False
        leaf = self.tree.sibling_leaf(message_id, step)
        self.history.set_active_leaf(self.conversation_id, leaf)
        self.editing = None
        self._load(leaf)
        state = self.state()
        self.branch_changed.emit(state)
        return True

    def fork(self, message_id: int) -> str | None:
        """A new conversation holding the path up to ``message_id``; returns its id."""
        if self.conversation_id is None:
            return None
        self.save_partials()
        return self.history.fork(self.conversation_id, message_id).id

    # -- streaming ------------------------------------------------------------------------------
    def _on_backend_run_event(self, event: RunEvent) -> None:
        ev = run_events()  # not an import per token (see app.core.lazy_events)
        answer = self.answers.get(event.run_id)
        if answer is None:  # not an answer of this session (e.g. a comparison)
            return
        ended = isinstance(event, ev.RunFinished | ev.RunFailed | ev.RunCancelled)
        try:
            self.answers.on_event(event)  # the history first: the card shows what is stored
        finally:
            if ended:
                self._ended(answer, event)
        key = _key(answer.message_id)
        if isinstance(event, ev.RunText):
            self.transcript.append(key, event.text)
            if event.tokens:
                self.transcript.attach_tokens(key, event.tokens)
            elif answer.prefix_tokens and answer.run is not None and len(answer.run.generation.parts) == 1:
                self.transcript.attach_tokens(key, answer.prefix_tokens)  # the given start
        elif isinstance(event, ev.RunReasoning):
            self.transcript.append_reasoning(key, event.text)
        elif isinstance(event, ev.RunStats):
            card = self.transcript.card(key)
            if card is not None and card.streaming:
                card.set_live(event.figures)
        elif isinstance(event, ev.RunNotice):
            self.transcript.show_note(key, event.message)

    _on_backend_run_delta = _on_backend_run_event  # the streamed pieces: RunText, RunReasoning

    def save_partials(self) -> None:
        """Write the partial answers to history now, and the tokens of ended answers still
        waiting for their steps (a fork, the close). Never raises: a busy history keeps them
        pending, any other failure is logged and retried next time."""
        try:
            self.lens_writer.flush()
        except Exception:  # the probabilities are written again with the next flush
            log.warning("could not save the probabilities now", exc_info=True)
        self._save_partials(due_only=False)

    def _save_partials(self, *, due_only: bool) -> None:
        self.answers.save_partials(due_only=due_only)
        if not self.answers.answers():
            self._save_timer.stop()
        self._watch_pending()

    def _on_save_timer(self) -> None:
        # only answers not saved within the interval (their stream saves them as it goes: a
        # stalled one is saved here); ended answers' tokens are written in their own short steps
        self._save_partials(due_only=True)

    def _watch_pending(self) -> None:
        """Saving waits for a busy history: say so once and retry every second."""
        if not self.history.pending:
            return
        if not self._pending_timer.isActive():
            self._pending_timer.start()
            self.history_pending.emit(True)

    def retry_pending(self) -> bool:
        """Write what waits for the history if it is free now (the retry timer calls this);
        True when nothing waits any more."""
        if not self.history.flush(0):
            return False
        if self._pending_timer.isActive():
            self._pending_timer.stop()
            self.history_pending.emit(False)
        return True

    def _ended(self, answer: StoredAnswer, event: RunEvent) -> None:
        """The answer's card ends as the store saved it; the tree is read again."""
        from app.core.run_events import RunFailed

        key, status = _key(answer.message_id), answer.status
        try:
            if answer.waited or self.history.pending:
                self._watch_pending()
        finally:  # the card must end even when saving failed (the error goes to the excepthook)
            self.transcript.finish_stream(key, status=status, error=answer.error, meta=answer.final)
            if self.conversation_id == answer.conversation_id:
                try:
                    self._reload_tree()
                except Exception:  # the tree is read again on the next open
                    log.warning("could not reread the conversation", exc_info=True)
            if answer.later:
                self.lens_writer.defer(answer)
            if isinstance(event, RunFailed) and answer.meta.get("prefix"):
                card = self.transcript.card(key)
                if card is not None and "cannot continue" in event.message.lower():  # offer what works there
                    card.offer_regenerate(f"This branch could not be made: {event.message}")
            self.answer_done.emit(event.run_id, status)

    def recover(self) -> None:
        """After an unexpected error: end any answer the backend is no longer running."""
        if self.backend.is_busy():
            return
        from app.core.run_events import RunFailed

        message = "Interrupted by an internal error (see the log)."
        for answer in self.answers.answers():
            try:
                if answer.run_id is not None:
                    self.answers.interrupt(answer.run_id, message)
            except Exception:  # saving failed again: the card is ended anyway
                log.exception("could not save the interrupted answer")
            finally:
                self._ended(answer, RunFailed(answer.run_id or "", AppError(message)))
        for key in self.transcript.streaming_keys():
            self.transcript.finish_stream(key, status="error", error=message)

    def is_streaming(self, conversation_id: str | None = None) -> bool:
        """True while an answer of this session streams (of ``conversation_id`` when given)."""
        answers = self.answers.answers()
        if conversation_id is None:
            return bool(answers)
        return any(a.conversation_id == conversation_id for a in answers)
