"""The token lens's part of the chat session: the streamed tokens and notes of an answer, the
branch from a token (:meth:`SessionLens.branch_from_token`), and the saving of an answer's
tokens, written to the history one event-loop turn after the answer itself (content, status,
figures), so the end of a long answer is two short steps on the GUI thread instead of one long
one; anything that reads the history first (a reopen, a fork, closing) writes them at once
(:meth:`LensWriter.flush`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer

from app.core.errors import AppError
from app.core.events import TokenLogprob
from app.core.exchange import ConversationState, answer_state
from app.core.history import ConversationTree, HistoryStore
from app.core.lens import branch_at, tokens_from_meta
from app.core.types import GenerationParams

if TYPE_CHECKING:
    from app.ui.backend_manager import BackendManager
    from app.ui.widgets.transcript import TranscriptView

log = logging.getLogger(__name__)

LENS_KEYS = ("tokens", "tokens_total")
"""The meta keys written one turn later (the mean logprob is small: it is saved with the answer)."""


def split_lens(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``meta`` without its tokens, and the whole meta when it has tokens (else ``{}``)."""
    if not any(k in meta for k in LENS_KEYS):
        return meta, {}
    return {k: v for k, v in meta.items() if k not in LENS_KEYS}, meta


class LensWriter(QObject):
    """Writes answers' whole meta (with tokens) on the next turn of the event loop;
    ``written(message_id, meta)`` is called after each write (the session updates its tree)."""

    def __init__(self, history: HistoryStore, written: Callable[[int, dict[str, Any]], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._history = history
        self._written = written
        self._pending: dict[int, dict[str, Any]] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.flush)

    def defer(self, message_id: int, meta: dict[str, Any]) -> None:
        """Write ``meta`` (with the tokens) for ``message_id`` on the next turn."""
        self._pending[message_id] = meta
        self._timer.start()

    def flush(self) -> None:
        """Write what is pending now. A failure is logged: the answer itself is saved already."""
        self._timer.stop()
        pending, self._pending = self._pending, {}
        for message_id, meta in pending.items():
            try:
                self._history.update_message(message_id, meta=meta)
            except Exception:  # the probabilities are extra; the answer is in the history
                log.warning("could not save the probabilities of message %s", message_id, exc_info=True)
                continue
            self._written(message_id, meta)


class SessionLens:
    """The token lens's part of :class:`app.ui.session.ChatSession` (a mixin of it)."""

    backend: BackendManager
    transcript: TranscriptView
    conversation_id: str | None
    tree: ConversationTree
    editing: int | None
    lens_writer: LensWriter
    _gens: dict[str, Any]

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

    def _on_backend_tokens_received(self, gen_id: str, _text: str, tokens: tuple[TokenLogprob, ...]) -> None:
        gen = self._gens.get(gen_id)
        if gen is not None:
            gen.tokens.extend(tokens)
            self.transcript.attach_tokens(gen.key, tokens)

    def _on_backend_notice_received(self, gen_id: str, message: str) -> None:
        gen = self._gens.get(gen_id)
        if gen is not None:
            self.transcript.show_note(gen.key, message)

    def _on_lens_written(self, message_id: int, meta: dict[str, Any]) -> None:
        msg = self.tree.by_id.get(message_id)
        if msg is not None:
            self.tree.by_id[message_id] = replace(msg, meta=meta)
