"""Conversation history in SQLite (WAL): conversations whose messages form a tree.

Each message has a ``parent_id`` (None for a root); a conversation remembers its active leaf,
so Edit-and-resend (a sibling user message), Regenerate (a sibling answer) and a token
branch never lose the old turn. A conversation also keeps the state to restore on reopen:
model, endpoint, adapters (path, scale, sha256), parameters, system prompt and the draft.

Replies are saved while they stream, so a crash loses nothing: on open, messages left
``streaming`` by a process that is gone become ``error`` ("interrupted (app closed)") and keep
their text; another live instance's are left alone. Another process holding the file's
write lock never costs an answer: the writes wait in a journal beside it
(:mod:`app.core.history_pending`, :mod:`app.core.history_journal`). The schema and its upgrade are in
:mod:`app.core.history_schema`, the exports (which never carry a key) in
:mod:`app.core.history_export`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.core import history_schema
from app.core.errors import ConfigError
from app.core.history_export import to_json, to_markdown
from app.core.history_journal import PENDING_ID_BASE, Journal, Record, apply_record, message_changes
from app.core.history_pending import PendingWrites
from app.core.history_schema import INTERRUPTED, SCHEMA_VERSION
from app.core.history_tree import ConversationTree
from app.core.history_types import (
    STATUSES,
    Conversation,
    MessageStatus,
    StoredMessage,
    check_status,
    conversation_from_row,
    conversation_record,
    message_from_row,
    pending_conversation,
    pending_message,
)
from app.core.process_id import current_writer
from app.core.sqlite_db import busy_error, default_busy_timeout, open_database
from app.core.types import Role
from app.core.urls import clean_url

__all__ = ["INTERRUPTED", "SCHEMA_VERSION", "STATUSES", "Conversation", "ConversationTree", "HistoryStore",
           "MessageStatus", "StoredMessage"]  # fmt: skip


_UNSET: Any = object()
_LIST_SQL = (
    "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count "
    "FROM conversations c"
)


def _contains(haystack: str | None, needle: str) -> int:
    return int(haystack is not None and needle in haystack.casefold())


class HistoryStore(PendingWrites):
    """Conversations and their message trees. Thread-safe (one connection behind a lock).

    Busy is never lost: the writes of an exchange that find the file locked by another
    process (for more than :data:`QUICK_WAIT_S`) are kept pending, in order, in memory and
    in a journal beside the file (:mod:`app.core.history_journal`), and are written as soon
    as the lock frees (at the next write or :meth:`flush`); reads show them meanwhile, with
    provisional ids (:meth:`resolve` gives the real id once written). What only changes the
    history (:meth:`rename`, :meth:`delete`, :meth:`fork`) waits :attr:`busy_timeout_s`, then
    raises :class:`StorageBusy`."""

    def __init__(self, path: Path, *, busy_timeout_s: float | None = None) -> None:
        self.path = path
        self.busy_timeout_s = default_busy_timeout() if busy_timeout_s is None else busy_timeout_s
        """How long :meth:`rename`, :meth:`delete`, :meth:`fork` (and :meth:`flush` by default)
        wait for another process's lock: the usage ledger's busy timeout."""
        self._lock = threading.RLock()
        self._writer = current_writer()
        self._queue: list[Record] = []
        self._ids: dict[int, int] = {}
        self._next_ref = PENDING_ID_BASE
        self.journal = Journal(path)
        """Where this store's pending writes are kept until they are in the history."""
        self.warnings: list[str] = []
        """What went wrong on open (a damaged file salvaged and moved aside, journals of an
        earlier run that could not be written yet), as user messages. A database another
        instance keeps locked for reading too raises :class:`StorageBusy` (nothing moved)."""
        self._db, found = open_database(
            path,
            what="history",
            schema=history_schema.SCHEMA,
            version=SCHEMA_VERSION,
            newer_hint="Update the app to open it.",
            fresh_note="a new history was started (the old file is kept for recovery)",
            before_schema=lambda db: db.create_function("contains_ci", 2, _contains, deterministic=True),
            after_schema=history_schema.mark_interrupted,
            migrate=history_schema.migrate,
            after_salvage=history_schema.repair_after_salvage,
            pragmas=("foreign_keys=ON",),
            busy_timeout_s=self.busy_timeout_s,
        )
        self.warnings.extend(found)
        self._adopt_journals()

    def create_conversation(
        self,
        title: str = "New chat",
        *,
        model: str | None = None,
        system_prompt: str = "",
        params: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        adapters: Sequence[Mapping[str, Any]] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> Conversation:
        """Create and return a new (empty) conversation."""
        rec = conversation_record(uuid.uuid4().hex, title, time.time(), model=model, system_prompt=system_prompt,
                                   params=params, endpoint=endpoint, adapters=adapters, meta=meta)  # fmt: skip
        self._write(rec)
        return pending_conversation(rec)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        row = self._exec(f"{_LIST_SQL} WHERE c.id = ?", (conversation_id,)).fetchone()
        conv = None if row is None else conversation_from_row(row)
        return self._overlay_conversation(conversation_id, conv) if self._queue else conv

    def require(self, conversation_id: str) -> Conversation:
        """The conversation, or :class:`ConfigError` saying there is none with that id."""
        conv = self.get_conversation(conversation_id)
        if conv is None:
            raise ConfigError(f"There is no conversation '{conversation_id}'.",
                              hint="Pick one from the history list (python -m app history list).")  # fmt: skip
        return conv

    def list_conversations(self, search: str | None = None, limit: int = 500) -> list[Conversation]:
        """Conversations, most recently updated first; ``search`` matches the title or any
        message text (of any branch), case-insensitively."""
        if search and search.strip():
            needle = search.strip().casefold()
            rows = self._exec(
                f"{_LIST_SQL} WHERE contains_ci(c.title, ?) OR EXISTS ("
                "SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND contains_ci(m.content, ?)) "
                "ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
                (needle, needle, limit),
            ).fetchall()
        else:
            rows = self._exec(f"{_LIST_SQL} ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?", (limit,)).fetchall()
        convs = [conversation_from_row(r) for r in rows]
        if not self._queue:
            return convs
        new = [r["cid"] for r in self._queue if r["op"] == "conv" and not search]
        found = [self._overlay_conversation(cid, None) for cid in new]
        shown = [c for c in (*found, *(self._overlay_conversation(c.id, c) for c in convs)) if c is not None]
        return sorted(shown, key=lambda c: -c.updated_at)[:limit]

    def rename(self, conversation_id: str, title: str) -> None:
        """Change the title (:class:`StorageBusy` while another process holds the history)."""
        self._strict(lambda db: db.execute("UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
                                           (title, time.time(), conversation_id)))  # fmt: skip

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its messages (:class:`StorageBusy` while another process
        holds the history)."""
        self._strict(lambda db: db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)))

    def update_conversation(
        self,
        conversation_id: str,
        *,
        model: str | None = _UNSET,
        system_prompt: str = _UNSET,
        params: Mapping[str, Any] = _UNSET,
        endpoint: str | None = _UNSET,
        adapters: Sequence[Mapping[str, Any]] = _UNSET,
    ) -> None:
        """Change only the given fields (the state a reopen restores)."""
        rec: Record = {"op": "state", "cid": conversation_id, "at": time.time()}
        if model is not _UNSET:
            rec["model"] = model
        if system_prompt is not _UNSET:
            rec["system_prompt"] = system_prompt
        if params is not _UNSET:
            rec["params"] = dict(params)
        if endpoint is not _UNSET:
            rec["endpoint"] = clean_url(endpoint)  # a base URL may carry a key: never stored
        if adapters is not _UNSET:
            rec["adapters"] = [dict(a) for a in adapters]
        self._write(rec)

    def set_draft(self, conversation_id: str, text: str) -> None:
        """Keep the message box's text with its conversation (the list order is unchanged)."""
        self._write({"op": "draft", "cid": conversation_id, "text": text})

    def set_active_leaf(self, conversation_id: str, message_id: int) -> None:
        """Make ``message_id`` (a message of the conversation) the end of its active branch."""
        message_id = self.require_message(conversation_id, message_id).id
        self._write({"op": "leaf", "cid": conversation_id, "leaf": message_id})

    # -- messages ------------------------------------------------------------------------

    def add_message(  # fmt: skip
        self, conversation_id: str, role: Role, content: str, *, parent_id: int | None = _UNSET,
        model: str | None = None, endpoint: str | None = None, adapter: str | None = None,
        adapter_sha256: str | None = None, params: Mapping[str, Any] | None = None,
        status: MessageStatus = "complete", error: str | None = None, meta: Mapping[str, Any] | None = None,
        system_prompt: str | None = None, activate: bool = True,
    ) -> StoredMessage:
        """Add a message under ``parent_id`` (default: the active leaf, i.e. append; None: a new
        root) and, with ``activate``, make it the active leaf. Use ``status="streaming"`` for a
        reply that is still coming (it is marked as this process's)."""
        check_status(status)
        with self._lock:
            if parent_id is _UNSET:
                parent_id = self._active_leaf(conversation_id)
            elif parent_id is not None:
                parent_id = self.require_message(conversation_id, parent_id).id
            rec: Record = {
                "op": "add", "cid": conversation_id, "role": role, "content": content, "created_at": time.time(),
                "model": model, "endpoint": clean_url(endpoint),  # a base URL may carry a key: never stored
                "adapter": adapter, "adapter_sha256": adapter_sha256, "params": dict(params or {}),
                "status": status, "error": error, "meta": dict(meta or {}), "parent_id": parent_id,
                "system_prompt": system_prompt, "writer": self._writer if status == "streaming" else None,
                "activate": activate,
            }  # fmt: skip
            new_id = self._write(rec)
        return pending_message({**rec, "ref": new_id})

    def _active_leaf(self, conversation_id: str) -> int | None:
        if self._queue:
            return self.tree(conversation_id).active_leaf_id
        row = self._exec(
            "SELECT COALESCE((SELECT m.id FROM messages m JOIN conversations c ON c.active_leaf_id = m.id "
            "WHERE c.id = ?1 AND m.conversation_id = ?1), (SELECT MAX(id) FROM messages WHERE conversation_id = ?1))",
            (conversation_id,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        status: MessageStatus | None = None,
        error: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Change the given fields of a message (one cheap UPDATE; called while streaming). A
        new ``status`` comes with its ``error`` (None clears an old one)."""
        if status is not None:
            check_status(status)
        rec: Record = {"op": "update", "id": message_id, "content": content, "status": status, "error": error,
                       "meta": None if meta is None else dict(meta)}  # fmt: skip
        if message_changes(rec):
            self._write(rec)

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        """Every message of the conversation (all branches), oldest first."""
        rows = self._exec("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)).fetchall()
        found = [message_from_row(r) for r in rows]
        return self._overlay_messages(found, lambda rec: rec["cid"] == conversation_id) if self._queue else found

    def get_message(self, message_id: int) -> StoredMessage | None:
        """One message, or None (a provisional id gives the message it became once written)."""
        message_id = self.resolve(message_id)
        row = self._exec("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        found = [] if row is None else [message_from_row(row)]
        if self._queue:
            found = self._overlay_messages(found, lambda rec: rec["ref"] == message_id)
        return found[0] if found else None

    def require_message(self, conversation_id: str, message_id: int) -> StoredMessage:
        """The message of that conversation, or :class:`ConfigError` saying there is none."""
        msg = self.get_message(message_id)
        if msg is None or msg.conversation_id != conversation_id:
            raise ConfigError(f"Conversation '{conversation_id}' has no message {message_id}.",
                              hint="See its message ids with: python -m app history show "
                                   f"{conversation_id} --all-branches")  # fmt: skip
        return msg

    def tree(self, conversation_id: str) -> ConversationTree:
        """The conversation's messages as a tree, with its active leaf."""
        with self._lock:
            conv = self.require(conversation_id)
            return ConversationTree(self.messages(conversation_id), conv.active_leaf_id)

    def path_to(self, conversation_id: str, leaf_id: int | None = None) -> list[StoredMessage]:
        """The messages from the root to ``leaf_id`` (default: the active leaf)."""
        return self.tree(conversation_id).path(None if leaf_id is None else self.resolve(leaf_id))

    def fork(self, conversation_id: str, message_id: int, title: str | None = None) -> Conversation:
        """A new conversation holding copies of the path up to ``message_id`` (with their
        figures), titled "Fork of …", with the source's model, endpoint, adapters, parameters
        and system prompt. An answer still streaming is copied as it is now, marked cut.
        Waits :attr:`busy_timeout_s` for another process's lock, then :class:`StorageBusy`."""
        with self._lock:
            if not self.flush():
                raise busy_error("history", self.path, self.busy_timeout_s)
            src = self.require(conversation_id)
            path = self.tree(conversation_id).path(self.require_message(conversation_id, message_id).id)
            now = time.time()
            recs = [conversation_record(
                uuid.uuid4().hex, title or f"Fork of {src.title}", now, model=src.model,
                system_prompt=src.system_prompt, params=src.params, endpoint=src.endpoint, adapters=src.adapters,
                meta={"forked_from": {"conversation_id": src.id, "message_id": message_id}})]  # fmt: skip
            for i, m in enumerate(path):
                streaming = m.status == "streaming"
                recs.append({
                    "op": "add", "ref": PENDING_ID_BASE + i, "cid": recs[0]["cid"], "role": m.role,
                    "content": m.content, "created_at": m.created_at, "updated_at": now, "model": m.model,
                    "endpoint": m.endpoint, "adapter": m.adapter, "adapter_sha256": m.adapter_sha256,
                    "params": m.params, "status": "error" if streaming else m.status,
                    "error": "copied while it was still streaming" if streaming else m.error, "meta": m.meta,
                    "parent_id": PENDING_ID_BASE + i - 1 if i else None, "system_prompt": m.system_prompt,
                    "writer": None,
                })  # fmt: skip
            ids: dict[int, int] = {}
            self._txn(lambda db: [apply_record(db, rec, ids) for rec in recs], self.busy_timeout_s)
        return self.require(recs[0]["cid"])

    # -- export --------------------------------------------------------------------------

    def export_json(self, conversation_id: str) -> dict[str, Any]:
        """The whole tree as a JSON-ready dict (see :func:`app.core.history_export.to_json`)."""
        return to_json(self.require(conversation_id), self.tree(conversation_id))

    def export_markdown(self, conversation_id: str) -> str:
        """The active branch as Markdown, naming the other branches."""
        return to_markdown(self.require(conversation_id), self.tree(conversation_id))

    def close(self) -> None:
        """Write what is pending if the history is free now, else leave it in the journal for
        the next start; close the database (idempotent)."""
        with self._lock:
            self._close_pending()
            self._db.close()
