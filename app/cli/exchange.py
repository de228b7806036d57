"""``ask --conversation ID|new [--parent MESSAGE_ID]``: the exchange stored in the history the
window reads, so chats from the terminal appear there. The request sends the branch's own path
as context; the answer is saved while it streams (about twice a second) and ends complete,
failed or cancelled with its partial text, like the window's."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.core.errors import InvalidParams
from app.core.exchange import (
    choose_seed,
    context_messages,
    final_meta,
    history_note,
    remember_state,
    start_answer,
    title_for,
)
from app.core.history_journal import PENDING_ID_BASE
from app.core.run_events import RunEvent, RunText

if TYPE_CHECKING:
    from app.core.engine import GenerationResult
    from app.core.history import Conversation, HistoryStore, StoredMessage
    from app.core.types import ChatMessage, GenerationRequest
    from app.core.usage import UsageLedger

log = logging.getLogger(__name__)
NEW = "new"
SAVE_EVERY_S = 0.5


def check_options(conversation: str | None, parent: int | None) -> None:
    """``--parent`` needs an existing ``--conversation`` (raises :class:`InvalidParams`)."""
    if parent is not None and conversation is None:
        raise InvalidParams("--parent needs --conversation.",
                            hint="Name the conversation too: --conversation ID --parent MESSAGE_ID.")  # fmt: skip
    if parent is not None and conversation == NEW:
        raise InvalidParams("A new conversation has no message to branch from.",
                            hint="Drop --parent, or name an existing conversation.")  # fmt: skip


class StoredExchange:
    """One ``ask`` stored in a conversation: resolve it (before anything is sent), then
    :meth:`begin`, :meth:`listener` while streaming, and :meth:`finish` or :meth:`fail`.

    A history that another program holds never stops the answer: its writes wait in the
    history's journal; :meth:`finish` / :meth:`fail` wait the busy timeout for it, then say
    in the ledger's row (``ledger``) what happened and :meth:`pending_note` tells the user."""

    def __init__(self, history: HistoryStore, conversation: str, parent: int | None,
                 ledger: UsageLedger | None = None) -> None:
        self.history = history
        self.ledger = ledger
        self.waited = False
        """Some write of this exchange found the history busy and waited in the journal."""
        self.conversation: Conversation | None = None if conversation == NEW else history.require(conversation)
        self.parent: int | None = None
        if self.conversation is not None:
            leaf = history.tree(self.conversation.id).active_leaf_id
            self.parent = history.require_message(self.conversation.id, parent).id if parent is not None else leaf
        self.user: StoredMessage | None = None
        self.answer: StoredMessage | None = None
        self._text: Callable[[], str] = lambda: ""
        self._saved_at = 0.0

    @property
    def model(self) -> str | None:
        """The conversation's model (used when ``-m`` is not given)."""
        return self.conversation.model if self.conversation else None

    @property
    def endpoint(self) -> str | None:
        """The conversation's endpoint (with its model)."""
        return self.conversation.endpoint if self.conversation else None

    @property
    def system_prompt(self) -> str:
        """The conversation's system prompt (used when ``--system`` is not given)."""
        return self.conversation.system_prompt if self.conversation else ""

    def context(self) -> list[ChatMessage]:
        """The messages of the path up to the parent (no system prompt)."""
        if self.conversation is None or self.parent is None:
            return []
        return context_messages(self.history.path_to(self.conversation.id, self.parent), "")

    def begin(self, prompt: str, request: GenerationRequest, system_prompt: str, *,
              text: Callable[[], str]) -> GenerationRequest:
        """Store the user message and the answer's row (streaming); return the request with
        the seed in force (one is picked when none was given). ``text()`` gives the answer
        streamed so far (for the partial saves)."""
        seeded = dataclasses.replace(request, params=choose_seed(request.params))
        if self.conversation is None:
            self.conversation = self.history.create_conversation(title_for(prompt), model=str(request.model),
                                                                 system_prompt=system_prompt)  # fmt: skip
        cid = self.conversation.id
        self.user = self.history.add_message(cid, "user", prompt, parent_id=self.parent)
        self.answer = start_answer(self.history, cid, self.user.id, seeded, system_prompt,
                                   seed_chosen=request.params.seed is None)  # fmt: skip
        remember_state(self.history, cid, seeded, system_prompt, request.params)
        self.waited = self.history.pending > 0
        self._text = text
        self._saved_at = time.monotonic()
        return seeded

    def listener(self, forward: Callable[[RunEvent], None]) -> Callable[[RunEvent], None]:
        """The run's event callback: ``forward`` (the printer), then a partial save at most
        every :data:`SAVE_EVERY_S` seconds."""

        def on_event(event: RunEvent) -> None:
            forward(event)
            if isinstance(event, RunText) and self.answer is not None:
                now = time.monotonic()
                if now - self._saved_at >= SAVE_EVERY_S:
                    self._saved_at = now
                    try:  # a partial save never breaks the stream (a busy history keeps it pending)
                        self.history.update_message(self.answer.id, content=self._text())
                    except Exception:
                        log.info("partial answer not saved now", exc_info=True)
                    self.waited = self.waited or self.history.pending > 0

        return on_event

    def finish(self, result: GenerationResult) -> None:
        """The answer is complete: its text and figures."""
        if self.answer is not None:
            self.history.update_message(self.answer.id, content=result.text, status="complete",
                                        meta=final_meta(self.answer.meta, result))  # fmt: skip
            self._settle()

    def fail(self, partial: str, error: str | None) -> None:
        """The answer failed (``error``) or was stopped (None): its partial text is kept.
        Never raises (it runs while the failure itself propagates)."""
        if self.answer is not None:
            try:
                self.history.update_message(self.answer.id, content=partial,
                                            status="error" if error else "cancelled", error=error)  # fmt: skip
                self._settle()
            except Exception:
                log.warning("could not save the failed answer", exc_info=True)

    def _settle(self) -> None:
        """After the last write: wait the busy timeout for a busy history, then note in the
        ledger's row whether the answer was saved once it was free or is still pending."""
        if not self.history.pending and not self.waited:
            return
        self.waited = True
        self.history.flush()
        if self.ledger is not None and self.conversation is not None:
            self.ledger.annotate(self.conversation.id, history_note(self.history))

    def pending_note(self) -> str | None:
        """The note for stderr when the exchange is not in the history yet (None: it is)."""
        if not self.history.pending:
            return None
        return (f"note: the history is busy (another program holds {self.history.path.name}): saving this "
                f"exchange is pending; it is kept in {self.history.journal.path} and will be written into "
                "the history at the next start.")

    def ids(self) -> dict[str, Any]:
        """``conversation_id``, ``user_message_id`` and ``message_id`` for the ``--json`` line
        (the ids are null while the history is busy and the messages wait in its journal)."""
        return {
            "conversation_id": self.conversation.id if self.conversation else None,
            "user_message_id": self._id(self.user),
            "message_id": self._id(self.answer),
        }

    def _id(self, message: StoredMessage | None) -> int | None:
        """The message's id in the history (None: not written yet, the history is busy)."""
        if message is None:
            return None
        found = self.history.resolve(message.id)
        return None if found >= PENDING_ID_BASE else found
