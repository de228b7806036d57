"""``ask --conversation ID|new [--parent MESSAGE_ID]``: the exchange stored in the history the
window reads, so chats from the terminal appear there. The request sends the branch's own path
as context; the answer itself is written by the core's
:class:`~app.core.answer_store.AnswerStore` (saved while it streams, about twice a second,
and ended complete, failed or cancelled with its partial text, like the window's). What is
here is the CLI's part: the conversation and parent named on the command line, the user
message, the ids for ``--json`` and the note for a busy history."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from app.core.answer_store import AnswerStore, StoredAnswer
from app.core.errors import InvalidParams
from app.core.exchange import choose_seed, context_messages, title_for
from app.core.history_journal import PENDING_ID_BASE

if TYPE_CHECKING:
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


class AskConversation:
    """The conversation of one ``ask``: resolve it (before anything is sent), then
    :meth:`begin`; the answer's run is followed by :attr:`answers`.

    A history that another program holds never stops the answer: its writes wait in the
    history's journal; at the answer's end the store waits the busy timeout for it and says in
    the ledger's row (``ledger``) what happened; :meth:`pending_note` tells the user."""

    def __init__(self, history: HistoryStore, conversation: str, parent: int | None,
                 ledger: UsageLedger | None = None) -> None:
        self.history = history
        self.answers = AnswerStore(history, ledger, save_every_s=SAVE_EVERY_S, settle=True)
        self.conversation: Conversation | None = None if conversation == NEW else history.require(conversation)
        self.parent: int | None = None
        if self.conversation is not None:
            leaf = history.tree(self.conversation.id).active_leaf_id
            self.parent = history.require_message(self.conversation.id, parent).id if parent is not None else leaf
        self.user: StoredMessage | None = None
        self.answer: StoredAnswer | None = None

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

    def begin(self, prompt: str, request: GenerationRequest, system_prompt: str) -> GenerationRequest:
        """Store the user message and the answer's row (streaming); return the request with
        the seed in force (one is picked when none was given)."""
        seeded = dataclasses.replace(request, params=choose_seed(request.params))
        if self.conversation is None:
            self.conversation = self.history.create_conversation(title_for(prompt), model=str(request.model),
                                                                 system_prompt=system_prompt)  # fmt: skip
        cid = self.conversation.id
        self.user = self.history.add_message(cid, "user", prompt, parent_id=self.parent)
        self.answer = self.answers.start(cid, self.user.id, seeded, system_prompt, params=request.params,
                                         seed_chosen=request.params.seed is None)  # fmt: skip
        return seeded

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
            "user_message_id": self._id(self.user.id if self.user else None),
            "message_id": self._id(self.answer.message_id if self.answer else None),
        }

    def _id(self, message_id: int | None) -> int | None:
        """The message's id in the history (None: not written yet, the history is busy)."""
        if message_id is None:
            return None
        found = self.history.resolve(message_id)
        return None if found >= PENDING_ID_BASE else found
