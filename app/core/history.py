"""Conversation history in SQLite (WAL). Replies are saved while they stream, so a crash
loses nothing: on open, messages left ``streaming`` become ``error`` ("interrupted (app
closed)") and keep their text. Exports (Markdown, JSON) carry what is needed to reproduce an
answer - model, endpoint, adapter + sha256, parameters incl. seed, system prompt, usage - and
never a key (every exported string goes through :func:`app.core.errors.redact`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from app.core.errors import ConfigError, redact
from app.core.sqlite_db import error_kind, open_database
from app.core.types import Role
from app.core.urls import clean_url

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
INTERRUPTED = "interrupted (app closed)"
MessageStatus = Literal["complete", "streaming", "error", "cancelled"]
STATUSES: tuple[str, ...] = ("complete", "streaming", "error", "cancelled")
_UNSET: Any = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    model TEXT,
    system_prompt TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at REAL NOT NULL,
    model TEXT,
    endpoint TEXT,
    adapter TEXT,
    adapter_sha256 TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'complete',
    error TEXT,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id, id);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated_at);
"""


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation's header (its messages come from :meth:`HistoryStore.messages`)."""

    id: str
    title: str
    created_at: float
    updated_at: float
    model: str | None
    system_prompt: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored message. ``meta`` holds usage, cost, ttft and tokens/s figures."""

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


def _dumps(value: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(value or {}), ensure_ascii=False, sort_keys=True, default=str)


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model=row["model"],
        system_prompt=row["system_prompt"],
        params=_loads(row["params"]),
    )


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        model=row["model"],
        endpoint=row["endpoint"],
        adapter=row["adapter"],
        adapter_sha256=row["adapter_sha256"],
        params=_loads(row["params"]),
        status=cast(MessageStatus, row["status"]),
        error=row["error"],
        meta=_loads(row["meta"]),
    )


def _contains(haystack: str | None, needle: str) -> int:
    return int(haystack is not None and needle in haystack.casefold())


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def _mark_interrupted(db: sqlite3.Connection) -> None:
    """Answers left 'streaming' by a crash keep their text and become errors. Writes only
    when there are such answers; a lock held by another instance skips it (next start)."""
    if db.execute("SELECT 1 FROM messages WHERE status = 'streaming' LIMIT 1").fetchone() is None:
        return
    try:
        db.execute("UPDATE messages SET status = 'error', error = ? WHERE status = 'streaming'", (INTERRUPTED,))
    except sqlite3.OperationalError as exc:
        if error_kind(exc) != "busy":
            raise
        log.info("history is busy; interrupted answers will be marked at the next start")


def _adopt_orphans(db: sqlite3.Connection) -> None:
    """After a salvage: messages whose conversation row was on a damaged page get a
    "Recovered conversation" to belong to, so they stay listed."""
    db.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at) "
        "SELECT m.conversation_id, 'Recovered conversation', MIN(m.created_at), MAX(m.created_at) "
        "FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id) "
        "GROUP BY m.conversation_id"
    )


class HistoryStore:
    """Conversations and messages. Thread-safe (one connection guarded by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.warnings: list[str] = []
        """What went wrong on open (a damaged file salvaged and moved aside), as user messages.
        A database another instance keeps locked raises :class:`StorageBusy` (nothing moved)."""
        self._db, found = open_database(
            path,
            what="history",
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            newer_hint="Update the app to open it.",
            fresh_note="a new history was started (the old file is kept for recovery)",
            before_schema=lambda db: db.create_function("contains_ci", 2, _contains, deterministic=True),
            after_schema=_mark_interrupted,
            after_salvage=_adopt_orphans,
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
    ) -> Conversation:
        """Create and return a new conversation."""
        now = time.time()
        conv = Conversation(uuid.uuid4().hex, title, now, now, model, system_prompt, dict(params or {}))
        self._exec(
            "INSERT INTO conversations (id, title, created_at, updated_at, model, system_prompt, params) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conv.id, title, now, now, model, system_prompt, _dumps(params)),
        )
        return conv

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        row = self._exec("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return None if row is None else _conversation(row)

    def list_conversations(self, search: str | None = None, limit: int = 500) -> list[Conversation]:
        """Conversations, most recently updated first; ``search`` matches the title or any
        message text, case-insensitively."""
        if search and search.strip():
            needle = search.strip().casefold()
            rows = self._exec(
                "SELECT * FROM conversations c WHERE contains_ci(c.title, ?) OR EXISTS ("
                "SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND contains_ci(m.content, ?)) "
                "ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
                (needle, needle, limit),
            ).fetchall()
        else:
            rows = self._exec(
                "SELECT * FROM conversations ORDER BY updated_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
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
    ) -> None:
        """Change only the given fields."""
        sets: list[str] = ["updated_at = ?"]
        values: list[Any] = [time.time()]
        if model is not _UNSET:
            sets.append("model = ?")
            values.append(model)
        if system_prompt is not _UNSET:
            sets.append("system_prompt = ?")
            values.append(system_prompt)
        if params is not _UNSET:
            sets.append("params = ?")
            values.append(_dumps(params))
        self._exec(f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?", (*values, conversation_id))

    # -- messages ------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        model: str | None = None,
        endpoint: str | None = None,
        adapter: str | None = None,
        adapter_sha256: str | None = None,
        params: Mapping[str, Any] | None = None,
        status: MessageStatus = "complete",
        error: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> StoredMessage:
        """Append a message (use ``status="streaming"`` for a reply that is still coming)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        endpoint = clean_url(endpoint)  # a base URL may carry a key: never stored
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, model, endpoint, adapter,"
                " adapter_sha256, params, status, error, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, model, endpoint, adapter, adapter_sha256,
                 _dumps(params), status, error, _dumps(meta)),
            )
            self._db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return StoredMessage(
            int(cur.lastrowid or 0), conversation_id, role, content, now, model, endpoint, adapter,
            adapter_sha256, dict(params or {}), status, error, dict(meta or {}),
        )

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
        sets: list[str] = []
        values: list[Any] = []
        if content is not None:
            sets.append("content = ?")
            values.append(content)
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
            sets.append("status = ?")
            values.append(status)
        if error is not None:
            sets.append("error = ?")
            values.append(error)
        if meta is not None:
            sets.append("meta = ?")
            values.append(_dumps(meta))
        if sets:
            self._exec(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", (*values, message_id))

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        """The conversation's messages, oldest first."""
        rows = self._exec("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)).fetchall()
        return [_message(r) for r in rows]

    def delete_messages_from(self, conversation_id: str, message_id: int) -> None:
        """Delete ``message_id`` and every later message of the conversation."""
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conversation_id, message_id))
            self._db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conversation_id))

    # -- export --------------------------------------------------------------------------

    def _require(self, conversation_id: str) -> Conversation:
        conv = self.get_conversation(conversation_id)
        if conv is None:
            raise ConfigError(f"There is no conversation '{conversation_id}'.", hint="Pick one from the history list.")
        return conv

    def export_json(self, conversation_id: str) -> dict[str, Any]:
        """The conversation and its messages as a JSON-ready dict (keys redacted)."""
        conv = self._require(conversation_id)
        data: dict[str, Any] = {
            "format": "llm-playground.conversation",
            "version": 1,
            "conversation": asdict(conv),
            "messages": [asdict(m) for m in self.messages(conversation_id)],
        }
        return cast(dict[str, Any], _redacted(data))

    def export_markdown(self, conversation_id: str) -> str:
        """The conversation as Markdown, with each reply's model, settings and figures."""
        data = self.export_json(conversation_id)
        conv = data["conversation"]
        lines = [f"# {conv['title']}", ""]
        lines.append(f"- Created: {time.strftime('%Y-%m-%d %H:%M', time.localtime(conv['created_at']))}")
        if conv["model"]:
            lines.append(f"- Model: `{conv['model']}`")
        if conv["params"]:
            lines.append(f"- Parameters: `{json.dumps(conv['params'], sort_keys=True)}`")
        lines.append("")
        if conv["system_prompt"]:
            lines += ["## System prompt", "", conv["system_prompt"], ""]
        for m in data["messages"]:
            lines += [f"## {m['role'].capitalize()}", ""]
            reasoning = (m["meta"] or {}).get("reasoning")
            if reasoning and isinstance(reasoning, str):  # a thinking model's reasoning, folded
                lines += ["<details><summary>Thinking</summary>", "", reasoning.strip(), "", "</details>", ""]
            lines += [m["content"], ""]
            details = _details(m)
            if details:
                lines += [f"> {d}" for d in details] + [""]
        return "\n".join(lines).rstrip() + "\n"

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()


def _details(m: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if m["model"]:
        out.append(f"model: `{m['model']}`" + (f" at `{m['endpoint']}`" if m["endpoint"] else ""))
    if m["adapter"]:
        out.append(f"adapter: `{m['adapter']}`" + (f" (sha256 `{m['adapter_sha256']}`)" if m["adapter_sha256"] else ""))
    if m["params"]:
        out.append(f"parameters: `{json.dumps(m['params'], sort_keys=True)}`")
    if m["meta"]:
        figures = {k: v for k, v in m["meta"].items() if k != "reasoning"}
        if figures:
            out.append("figures: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items())))
    if m["status"] != "complete":
        out.append(f"status: {m['status']}" + (f" ({m['error']})" if m["error"] else ""))
    return out
