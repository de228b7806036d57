"""Conversation history in SQLite (WAL): conversations whose messages form a tree.

Each message has a ``parent_id`` (None for a root); a conversation remembers its active leaf,
so Edit-and-resend (a sibling user message), Regenerate (a sibling answer) and a token
branch never lose the old turn. A conversation also keeps the state to restore on reopen:
model, endpoint, adapters (path, scale, sha256), parameters, system prompt and the draft.

Replies are saved while they stream, so a crash loses nothing: on open, messages left
``streaming`` by a process that is gone become ``error`` ("interrupted (app closed)") and keep
their text; another live instance's are left alone. The schema and its upgrade are in
:mod:`app.core.history_schema`, the exports (which never carry a key) in
:mod:`app.core.history_export`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from app.core import history_schema
from app.core.errors import ConfigError
from app.core.history_schema import INTERRUPTED, SCHEMA_VERSION
from app.core.history_tree import ConversationTree
from app.core.process_id import current_writer
from app.core.sqlite_db import open_database, sql_terms
from app.core.types import Role
from app.core.urls import clean_url

__all__ = ["INTERRUPTED", "SCHEMA_VERSION", "STATUSES", "Conversation", "ConversationTree", "HistoryStore",
           "MessageStatus", "StoredMessage"]  # fmt: skip

MessageStatus = Literal["complete", "streaming", "error", "cancelled"]
STATUSES: tuple[str, ...] = ("complete", "streaming", "error", "cancelled")
_UNSET: Any = object()
_LIST_SQL = (
    "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count "
    "FROM conversations c"
)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation's header and the state to restore when it is reopened (its messages
    come from :meth:`HistoryStore.tree` / :meth:`HistoryStore.messages`). ``adapters`` are
    ``{"path", "scale", "name", "sha256"}`` objects; ``meta`` may hold ``forked_from``."""

    id: str
    title: str
    created_at: float
    updated_at: float
    model: str | None
    system_prompt: str
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: str | None = None
    adapters: list[dict[str, Any]] = field(default_factory=list)
    active_leaf_id: int | None = None
    draft: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    message_count: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored message. ``parent_id`` is the message it follows (None: a root);
    ``system_prompt`` is the one in force for an answer; ``meta`` holds the figures (usage,
    cost, ttft, tokens/s), the adapters, the reasoning and room for more (e.g. logprobs)."""

    id: int
    conversation_id: str
    role: Role
    content: str
    created_at: float
    model: str | None
    endpoint: str | None
    adapter: str | None
    adapter_sha256: str | None
    params: dict[str, Any]
    status: MessageStatus
    error: str | None
    meta: dict[str, Any]
    parent_id: int | None = None
    system_prompt: str | None = None

    @property
    def seed(self) -> int | None:
        """The exact seed the answer was made with (None: not recorded)."""
        seed = self.params.get("seed")
        return seed if isinstance(seed, int) else None


def _dumps(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False, sort_keys=True, default=str)


def _loads(text: str | None, default: Any = None) -> Any:
    empty = {} if default is None else default
    try:
        value = json.loads(text or "null")
    except ValueError:
        return empty
    return value if isinstance(value, type(empty)) else empty


def _conversation(row: sqlite3.Row) -> Conversation:
    keys = row.keys()
    return Conversation(
        id=row["id"], title=row["title"], created_at=row["created_at"], updated_at=row["updated_at"],
        model=row["model"], system_prompt=row["system_prompt"], params=_loads(row["params"]),
        endpoint=row["endpoint"], adapters=[a for a in _loads(row["adapters"], []) if isinstance(a, dict)],
        active_leaf_id=row["active_leaf_id"], draft=row["draft"] or "", meta=_loads(row["meta"]),
        message_count=int(row["message_count"]) if "message_count" in keys else 0,
    )  # fmt: skip


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"],
        created_at=row["created_at"], model=row["model"], endpoint=row["endpoint"], adapter=row["adapter"],
        adapter_sha256=row["adapter_sha256"], params=_loads(row["params"]),
        status=cast(MessageStatus, row["status"]), error=row["error"], meta=_loads(row["meta"]),
        parent_id=row["parent_id"], system_prompt=row["system_prompt"],
    )  # fmt: skip


def _contains(haystack: str | None, needle: str) -> int:
    return int(haystack is not None and needle in haystack.casefold())


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")


class HistoryStore:
    """Conversations and their message trees. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._writer = current_writer()
        self.warnings: list[str] = []
        """What went wrong on open (a damaged file salvaged and moved aside), as user messages.
        A database another instance keeps locked raises :class:`StorageBusy` (nothing moved)."""
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
        )
        self.warnings.extend(found)

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    # -- conversations -------------------------------------------------------------------

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
        now = time.time()
        endpoint = clean_url(endpoint)  # a base URL may carry a key: never stored
        conv = Conversation(uuid.uuid4().hex, title, now, now, model, system_prompt, dict(params or {}),
                            endpoint, [dict(a) for a in adapters], None, "", dict(meta or {}))  # fmt: skip
        self._exec(
            "INSERT INTO conversations (id, title, created_at, updated_at, model, system_prompt, params, endpoint,"
            " adapters, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conv.id, title, now, now, model, system_prompt, _dumps(conv.params), endpoint,
             _dumps(conv.adapters), _dumps(conv.meta)),
        )  # fmt: skip
        return conv

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        row = self._exec(f"{_LIST_SQL} WHERE c.id = ?", (conversation_id,)).fetchone()
        return None if row is None else _conversation(row)

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
        return [_conversation(r) for r in rows]

    def rename(self, conversation_id: str, title: str) -> None:
        """Change the title."""
        self._exec("UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?", (title, time.time(), conversation_id))

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its messages."""
        self._exec("DELETE FROM conversations WHERE id = ?", (conversation_id,))

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
        changes: dict[str, Any] = {}
        if model is not _UNSET:
            changes["model"] = model
        if system_prompt is not _UNSET:
            changes["system_prompt"] = system_prompt
        if params is not _UNSET:
            changes["params"] = _dumps(dict(params))
        if endpoint is not _UNSET:
            changes["endpoint"] = clean_url(endpoint)  # a base URL may carry a key: never stored
        if adapters is not _UNSET:
            changes["adapters"] = _dumps([dict(a) for a in adapters])
        sets = ["updated_at = ?", *(f"{name} = ?" for name in changes)]
        values = [time.time(), *changes.values()]
        self._exec(f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?", (*values, conversation_id))

    def set_draft(self, conversation_id: str, text: str) -> None:
        """Keep the message box's text with its conversation (the list order is unchanged)."""
        self._exec("UPDATE conversations SET draft = ? WHERE id = ?", (text, conversation_id))

    def set_active_leaf(self, conversation_id: str, message_id: int) -> None:
        """Make ``message_id`` (a message of the conversation) the end of its active branch."""
        self.require_message(conversation_id, message_id)
        self._exec("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (message_id, conversation_id))

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
        _check_status(status)
        endpoint = clean_url(endpoint)  # a base URL may carry a key: never stored
        now = time.time()
        with self._lock:
            if parent_id is _UNSET:
                parent_id = self._active_leaf(conversation_id)
            elif parent_id is not None:
                self.require_message(conversation_id, parent_id)
            writer = self._writer if status == "streaming" else None
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, model, endpoint, adapter,"
                " adapter_sha256, params, status, error, meta, parent_id, system_prompt, writer)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, model, endpoint, adapter, adapter_sha256,
                 _dumps(dict(params or {})), status, error, _dumps(dict(meta or {})), parent_id, system_prompt,
                 writer),
            )  # fmt: skip
            new_id = int(cur.lastrowid or 0)
            leaf = ", active_leaf_id = ?" if activate else ""
            self._db.execute(f"UPDATE conversations SET updated_at = ?{leaf} WHERE id = ?",
                             (now, new_id, conversation_id) if activate else (now, conversation_id))  # fmt: skip
        return StoredMessage(new_id, conversation_id, role, content, now, model, endpoint, adapter, adapter_sha256,
                             dict(params or {}), status, error, dict(meta or {}), parent_id, system_prompt)  # fmt: skip

    def _active_leaf(self, conversation_id: str) -> int | None:
        row = self._db.execute(
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
        """Change the given fields of a message (one cheap UPDATE; called while streaming)."""
        if status is not None:
            _check_status(status)
        sets, values = sql_terms({"content = ?": content, "status = ?": status, "error = ?": error,
                                  "meta = ?": None if meta is None else _dumps(dict(meta))}, ", ")  # fmt: skip
        if sets:
            self._exec(f"UPDATE messages SET {sets} WHERE id = ?", (*values, message_id))

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        """Every message of the conversation (all branches), oldest first."""
        rows = self._exec("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)).fetchall()
        return [_message(r) for r in rows]

    def get_message(self, message_id: int) -> StoredMessage | None:
        """One message, or None."""
        row = self._exec("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return None if row is None else _message(row)

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
        return self.tree(conversation_id).path(leaf_id)

    def fork(self, conversation_id: str, message_id: int, title: str | None = None) -> Conversation:
        """A new conversation holding copies of the path up to ``message_id`` (with their
        figures), titled "Fork of …", with the source's model, endpoint, adapters, parameters
        and system prompt. An answer still streaming is copied as it is now, marked cut."""
        with self._lock:
            src = self.require(conversation_id)
            path = self.tree(conversation_id).path(self.require_message(conversation_id, message_id).id)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                conv = self.create_conversation(
                    title or f"Fork of {src.title}", model=src.model, system_prompt=src.system_prompt,
                    params=src.params, endpoint=src.endpoint, adapters=src.adapters,
                    meta={"forked_from": {"conversation_id": src.id, "message_id": message_id}},
                )  # fmt: skip
                parent: int | None = None
                for m in path:
                    streaming = m.status == "streaming"
                    cur = self._db.execute(
                        "INSERT INTO messages (conversation_id, role, content, created_at, model, endpoint, adapter,"
                        " adapter_sha256, params, status, error, meta, parent_id, system_prompt)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (conv.id, m.role, m.content, m.created_at, m.model, m.endpoint, m.adapter, m.adapter_sha256,
                         _dumps(m.params), "error" if streaming else m.status,
                         "copied while it was still streaming" if streaming else m.error, _dumps(m.meta), parent,
                         m.system_prompt),
                    )  # fmt: skip
                    parent = int(cur.lastrowid or 0)
                self._db.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (parent, conv.id))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return self.require(conv.id)

    # -- export --------------------------------------------------------------------------

    def export_json(self, conversation_id: str) -> dict[str, Any]:
        """The whole tree as a JSON-ready dict (see :func:`app.core.history_export.to_json`)."""
        from app.core.history_export import to_json

        return to_json(self.require(conversation_id), self.tree(conversation_id))

    def export_markdown(self, conversation_id: str) -> str:
        """The active branch as Markdown, naming the other branches."""
        from app.core.history_export import to_markdown

        return to_markdown(self.require(conversation_id), self.tree(conversation_id))

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()
