"""The token lens's part of the chat session: the streamed tokens and notes of an answer, the
branch from a token (:meth:`SessionLens.branch_from_token`), and the saving of an answer's
tokens, written to the history in the event-loop turns after the answer itself (content,
status, figures): their JSON a piece a turn, then the write, so the end of a long answer is a
few short steps on the GUI thread instead of one long one; anything that reads the history
first (a reopen, a fork, closing) writes them at once (:meth:`LensWriter.flush`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer

from app.core.answer_store import AnswerStore, StoredAnswer
from app.core.errors import AppError
from app.core.events import TokenLogprob
from app.core.exchange import ConversationState, answer_state
from app.core.history import ConversationTree
from app.core.json_steps import Encoded, encode_steps
from app.core.lens import branch_at, tokens_from_meta
from app.core.types import GenerationParams

if TYPE_CHECKING:
    from app.ui.backend_manager import BackendManager
    from app.ui.widgets.transcript import TranscriptView


_ENDED = object()
"""What an answer's steps give once they are done (they end with an Encoded, so never)."""


class LensWriter(QObject):
    """Writes ended answers' tokens (:attr:`StoredAnswer.later`, through the answer store) in
    short steps on the next turns of the event loop: their stored list is made
    (:meth:`AnswerStore.later_meta`), their JSON encoded a piece a turn
    (:func:`~app.core.json_steps.encode_steps`), then written; ``written(message_id, meta)``
    is called after each write (the session updates its tree). Answers are written in the
    order they ended; :meth:`flush` finishes them all at once."""

    def __init__(self, answers: AnswerStore, written: Callable[[int, dict[str, Any]], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._answers = answers
        self._written = written
        self._pending: list[tuple[StoredAnswer, Iterator[Encoded | None] | None]] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.step)

    def defer(self, answer: StoredAnswer) -> None:
        """Write ``answer``'s tokens in the next turns."""
        self._pending.append((answer, None))
        self._timer.start()

    def pending(self) -> bool:
        """True while some answer's tokens wait to be written."""
        return bool(self._pending)

    def step(self) -> None:
        """One short step: encode a piece of the first waiting answer's tokens, or write them."""
        if not self._pending:
            return
        answer, steps = self._pending[0]
        if steps is None:  # the first step makes the stored tokens
            tokens = self._answers.later_meta(answer).get("tokens")
            self._pending[0] = (answer, encode_steps(tokens if isinstance(tokens, list) else []))
        elif (done := next(steps, _ENDED)) is not None:  # encoded: the write, a step of its own
            self._pending.pop(0)
            self._write(answer, done if isinstance(done, Encoded) else None)
        if self._pending:
            self._timer.start()

    def flush(self) -> None:
        """Write what is pending now. A failure is logged: the answer itself is saved already."""
        self._timer.stop()
        pending, self._pending = self._pending, []
        for answer, steps in pending:
            rest = deque(steps or (), maxlen=1)  # its remaining steps at once: the last is the Encoded
            self._write(answer, rest[0] if rest else None)

    def _write(self, answer: StoredAnswer, encoded: Encoded | None) -> None:
        meta = self._answers.later_meta(answer)
        if not meta:  # written already
            return
        if encoded is not None and meta.get("tokens") is encoded.value:  # else: changed meanwhile, as it is
            answer.later = {**meta, "tokens": encoded}
        if self._answers.write_later(answer):
            self._written(answer.message_id, meta)


class SessionLens:
    """The token lens's part of :class:`app.ui.session.ChatSession` (a mixin of it)."""

    backend: BackendManager
    transcript: TranscriptView
    conversation_id: str | None
    tree: ConversationTree
    editing: int | None
    lens_writer: LensWriter

    def _load(self, leaf_id: int | None = None) -> None:
        """Provided by the session."""
        raise NotImplementedError

    def _answer(self, params: GenerationParams, system_prompt: str, *, made: ConversationState | None = None,
                prefix: str = "", prefix_tokens: tuple[TokenLogprob, ...] = (), seed_chosen: bool = False) -> str | None:
        """Provided by the session."""
        raise NotImplementedError

    def branch_from_token(self, message_id: int, index: int, choice: str) -> str | None:
        """A sibling of the answer ``message_id`` that keeps its text up to token ``index``,
        says ``choice`` (one of that token's alternatives) there and continues from it, with
        the answer's own model, endpoint, adapters, parameters (its seed), system prompt and
        path. Returns the generation id (None while an answer streams or for an answer
        without that token; AppError for a choice that is not an alternative)."""
        if self.backend.is_busy() or self.conversation_id is None:
            return None
        self.lens_writer.flush()
        answer = self.tree.by_id.get(message_id)
        parent = self.tree.parent_of(message_id) if answer is not None else None
        if answer is None or answer.role != "assistant" or parent is None:
            return None
        tokens = tokens_from_meta(answer.meta)
        if not tokens:
            return None
        if index >= len(tokens) and answer.meta.get("tokens_total"):
            raise AppError(f"Probabilities are kept for the first {len(tokens):,} tokens of an answer.",
                           hint="Branch from one of those, or regenerate the answer.")  # fmt: skip
        branch = branch_at(answer.content, tokens, index, choice)
        made = answer_state(answer)
        params = GenerationParams.from_dict(answer.params) if answer.params else GenerationParams()
        self.editing = None
        self._load(parent)
        return self._answer(params, answer.system_prompt or "", made=made, prefix=branch.prefix,
                            prefix_tokens=branch.tokens, seed_chosen=bool(answer.meta.get("seed_chosen")))

    def _on_lens_written(self, message_id: int, meta: dict[str, Any]) -> None:
        msg = self.tree.by_id.get(message_id)
        if msg is not None:
            self.tree.by_id[message_id] = replace(msg, meta=meta)
