"""Conversation persistence for the main window: turns backend signals into history rows and
transcript cards. The partial answer is saved while it streams (at most every ~0.3 s), so a
crash or a cut connection loses nothing.

Signals:
    conversation_changed(object conversation_id): the open conversation changed (None = new).
    answer_done(str gen_id, str status): an answer of this conversation ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.engine import GenerationResult
from app.core.errors import AppError
from app.core.history import Conversation, MessageStatus, StoredMessage
from app.core.run_events import LiveFigures
from app.core.types import ChatMessage, GenerationParams, adapter_hashes, adapter_label
from app.ui.backend_manager import BackendManager
from app.ui.widgets.transcript import TranscriptView

log = logging.getLogger(__name__)
SAVE_INTERVAL_MS = 300


@dataclass
class _Gen:
    message_id: int
    key: str
    model: str
    endpoint: str | None
    adapter: str | None
    adapter_sha256: str | None
    params: dict[str, Any]
    conversation_id: str
    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    dirty: bool = False
    reasoning_dirty: bool = False

    def base_meta(self) -> dict[str, Any]:
        """What the message's meta always holds (and the reasoning of a thinking model)."""
        meta: dict[str, Any] = {"model": self.model, "endpoint": self.endpoint, "adapter": self.adapter,
                "adapter_sha256": self.adapter_sha256, "params": self.params}
        if self.reasoning:
            meta["reasoning"] = "".join(self.reasoning)
            meta["reasoning_tokens"] = len(self.reasoning)
        return meta


def _key(message_id: int) -> str:
    return f"m{message_id}"


class ChatSession(QObject):
    """The open conversation: sends, regenerates, edits, and persists streamed answers."""

    conversation_changed = Signal(object)
    answer_done = Signal(str, str)

    def __init__(self, backend: BackendManager, transcript: TranscriptView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.history = backend.services.history
        self.transcript = transcript
        self.conversation_id: str | None = None
        self.chat: list[ChatMessage] = []
        self._gens: dict[str, _Gen] = {}
        self._save_timer = QTimer(self)
        self._save_timer.setInterval(SAVE_INTERVAL_MS)
        self._save_timer.timeout.connect(self.save_partials)
        backend.token_received.connect(self._on_token)
        backend.reasoning_received.connect(self._on_reasoning)
        backend.stats_updated.connect(self._on_stats)
        backend.generation_finished.connect(self._on_finished)
        backend.generation_failed.connect(self._on_failed)
        backend.generation_cancelled.connect(self._on_cancelled)

    # -- conversations --------------------------------------------------------------------------
    def open(self, conversation_id: str | None) -> Conversation | None:
        """Show a saved conversation (None: start a new one). Returns the Conversation or None."""
        conv = self.history.get_conversation(conversation_id) if conversation_id else None
        self.transcript.clear()
        self.conversation_id = conv.id if conv else None
        self.chat = []
        if conv is not None:
            for m in self.history.messages(conv.id):
                self._show_stored(m)
        self.conversation_changed.emit(self.conversation_id)
        return conv

    def _show_stored(self, m: StoredMessage) -> None:
        meta = dict(m.meta or {})
        meta.setdefault("model", m.model)
        if m.adapter:
            meta.setdefault("adapter", m.adapter)
        self.transcript.add_message(_key(m.id), m.role, m.content, message_id=m.id,
                                    meta=meta if m.role == "assistant" else None,
                                    status=m.status, error=m.error)
        if m.content and m.role in ("user", "assistant"):
            self.chat.append(ChatMessage(m.role, m.content))

    def request_messages(self, system_prompt: str) -> list[ChatMessage]:
        """What the next request sends: the system prompt, then the conversation."""
        msgs = [ChatMessage("system", system_prompt)] if system_prompt.strip() else []
        return msgs + list(self.chat)

    # -- sending --------------------------------------------------------------------------------
    def send(self, text: str, params: GenerationParams, system_prompt: str) -> str | None:
        """Save the user message and start the answer; return the generation id."""
        if self.backend.is_busy() or not text.strip():
            return None
        if self.conversation_id is None:
            title = " ".join(text.split())[:48] or "New conversation"
            conv = self.history.create_conversation(title, model=self.backend.current_model(),
                                                    system_prompt=system_prompt, params=params.to_dict())
            self.conversation_id = conv.id
            self.conversation_changed.emit(conv.id)
        else:
            self.history.update_conversation(self.conversation_id, model=self.backend.current_model(),
                                             system_prompt=system_prompt, params=params.to_dict())
        user = self.history.add_message(self.conversation_id, "user", text)
        self.transcript.add_message(_key(user.id), "user", text, message_id=user.id)
        self.chat.append(ChatMessage("user", text))
        return self._answer(params, system_prompt)

    def _answer(self, params: GenerationParams, system_prompt: str) -> str | None:
        assert self.conversation_id is not None
        model, endpoint = self.backend.current_model(), self.backend.current_endpoint()
        adapters = self.backend.active_adapters()
        adapter, sha = adapter_label(adapters), adapter_hashes(adapters)
        row = self.history.add_message(self.conversation_id, "assistant", "", model=model, endpoint=endpoint,
                                       adapter=adapter, adapter_sha256=sha, params=params.to_dict(),
                                       status="streaming")
        key = _key(row.id)
        self.transcript.start_stream(key, title=model + (f"  +  LoRA {adapter}" if adapter else ""),
                                     message_id=row.id)
        try:
            gen_id = self.backend.generate(self.request_messages(system_prompt), params,
                                           conversation_id=self.conversation_id, endpoint=endpoint,
                                           model_id=model, message_id=row.id, adapters=adapters)
        except AppError as exc:
            self.history.update_message(row.id, status="error", error=exc.user_message())
            self.transcript.finish_stream(key, status="error", error=exc.user_message())
            return None
        self._gens[gen_id] = _Gen(row.id, key, model, endpoint, adapter, sha, params.to_dict(),
                                  self.conversation_id)
        self._save_timer.start()
        return gen_id

    def regenerate(self, params: GenerationParams, system_prompt: str) -> str | None:
        """Drop the last answer and ask again."""
        if self.backend.is_busy() or self.conversation_id is None:
            return None
        msgs = self.history.messages(self.conversation_id)
        last = next((m for m in reversed(msgs) if m.role == "assistant"), None)
        if last is None:
            return None
        self.history.delete_messages_from(self.conversation_id, last.id)
        self.open(self.conversation_id)
        if not self.chat or self.chat[-1].role != "user":
            return None
        return self._answer(params, system_prompt)

    def edit(self, message_id: int) -> str | None:
        """Remove a user message (and everything after it); return its text for the editor."""
        if self.backend.is_busy() or self.conversation_id is None:
            return None
        msg = next((m for m in self.history.messages(self.conversation_id) if m.id == message_id), None)
        if msg is None:
            return None
        self.history.delete_messages_from(self.conversation_id, message_id)
        self.open(self.conversation_id)
        return msg.content

    # -- streaming ------------------------------------------------------------------------------
    def _on_token(self, gen_id: str, text: str) -> None:
        gen = self._gens.get(gen_id)
        if gen is not None:
            gen.parts.append(text)
            gen.dirty = True
            self.transcript.append(gen.key, text)

    def _on_reasoning(self, gen_id: str, text: str) -> None:
        gen = self._gens.get(gen_id)
        if gen is not None:
            gen.reasoning.append(text)
            gen.reasoning_dirty = True
            self.transcript.append_reasoning(gen.key, text)

    def _on_stats(self, gen_id: str, live: LiveFigures) -> None:
        gen = self._gens.get(gen_id)
        card = self.transcript.card(gen.key) if gen else None
        if card is not None and card.streaming:
            card.set_live(live)

    def save_partials(self) -> None:
        """Write the partial answers to history (the save timer calls this)."""
        for gen in self._gens.values():
            if gen.reasoning_dirty:  # the reasoning lives in meta (it is not the answer)
                gen.reasoning_dirty = False
                self.history.update_message(gen.message_id, meta=gen.base_meta())
            if gen.dirty:
                gen.dirty = False
                self.history.update_message(gen.message_id, content="".join(gen.parts))
        if not self._gens:
            self._save_timer.stop()

    def _end(self, gen_id: str, text: str, status: MessageStatus, error: str | None,
             meta: dict[str, Any] | None) -> None:
        gen = self._gens.pop(gen_id, None)
        if gen is None:
            return
        meta = {**gen.base_meta(), **(meta or {})}
        try:
            self.history.update_message(gen.message_id, content=text, status=status, error=error, meta=meta)
        finally:  # the card must end even when saving fails (the error goes to the excepthook)
            self.transcript.finish_stream(gen.key, status=status, error=error, meta=meta)
            if text and self.conversation_id == gen.conversation_id:
                self.chat.append(ChatMessage("assistant", text))
            self.answer_done.emit(gen_id, status)

    def _on_finished(self, gen_id: str, result: GenerationResult) -> None:
        self._end(gen_id, result.text, "complete", None, result.figures().to_meta())

    def _on_failed(self, gen_id: str, message: str, partial: str) -> None:
        self._end(gen_id, partial, "error", message, None)

    def _on_cancelled(self, gen_id: str, partial: str) -> None:
        self._end(gen_id, partial, "cancelled", None, None)

    def recover(self) -> None:
        """After an unexpected error: end any answer the backend is no longer running."""
        if self.backend.is_busy():
            return
        message = "Interrupted by an internal error (see the log)."
        for gen_id in list(self._gens):
            gen = self._gens[gen_id]
            try:
                self._end(gen_id, "".join(gen.parts), "error", message, None)
            except Exception:  # saving failed again: the card is ended anyway
                log.exception("could not save the interrupted answer")
        for key in self.transcript.streaming_keys():
            self.transcript.finish_stream(key, status="error", error=message)

    def is_streaming(self, conversation_id: str | None = None) -> bool:
        """True while an answer of this session streams (of ``conversation_id`` when given)."""
        if conversation_id is None:
            return bool(self._gens)
        return any(g.conversation_id == conversation_id for g in self._gens.values())
