"""A history database as the schema-1 app wrote it: its SQL verbatim (app/core/history.py before
the conversation tree), opened the way it opened it (WAL, ``user_version`` 1), rows written
with its INSERT and UPDATE statements. Used by the upgrade tests."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.sqlite_db import open_database

SCHEMA_V1 = """
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

INSERT_CONVERSATION = (
    "INSERT INTO conversations (id, title, created_at, updated_at, model, system_prompt, params) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, role, content, created_at, model, endpoint, adapter,"
    " adapter_sha256, params, status, error, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _dumps(value: dict[str, Any] | None) -> str:
    return json.dumps(dict(value or {}), ensure_ascii=False, sort_keys=True, default=str)


def open_v1(path: Path) -> sqlite3.Connection:
    """Open (or create) ``path`` exactly as the schema-1 HistoryStore did."""
    db, warnings = open_database(
        path, what="history", schema=SCHEMA_V1, version=1, newer_hint="Update the app to open it.",
        fresh_note="a new history was started (the old file is kept for recovery)", pragmas=("foreign_keys=ON",),
    )  # fmt: skip
    assert warnings == []
    return db


@dataclass
class V1Message:
    """One message row as schema 1 stored it."""

    role: str
    content: str
    model: str | None = None
    endpoint: str | None = None
    adapter: str | None = None
    adapter_sha256: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "complete"
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class V1Conversation:
    """One conversation as schema 1 stored it."""

    id: str
    title: str
    model: str | None
    system_prompt: str
    params: dict[str, Any]
    messages: list[V1Message]
    message_ids: list[int] = field(default_factory=list)


FIGURES = {"prompt_tokens": 31, "completion_tokens": 8, "cost_usd": "0.000012", "ttft_s": 0.21,
           "tokens_per_s": 30.5, "duration_s": 0.5, "finish_reason": "stop", "seed": 7}  # fmt: skip
SHA = "ab" * 32


def sample() -> list[V1Conversation]:
    """Three conversations: a sampled answer with an adapter, a failed and a cancelled one, an
    answer left streaming by a crash, and an empty conversation."""
    params = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 512, "seed": 7, "stop": [], "top_k": None,
              "repetition_penalty": None, "extras": {}}  # fmt: skip
    return [
        V1Conversation("c" * 32, "Pirate talk", "local:tiny", "Talk like a pirate.", params, [
            V1Message("user", "Hello"),
            V1Message("assistant", "Ahoy!", "local:tiny", None, "pirate:0.8", SHA, params, "complete", None,
                      {**FIGURES, "model": "local:tiny", "adapter": "pirate:0.8", "adapter_sha256": SHA}),
            V1Message("user", "Where is the gold?"),
            V1Message("assistant", "Buried", "local:tiny", None, "pirate:0.8", SHA, params, "error",
                      "The connection was cut mid-way.", {"model": "local:tiny"}),
        ]),
        V1Conversation("d" * 32, "Remote", "openai:gpt-4o-mini", "", {}, [
            V1Message("user", "Count to ten"),
            V1Message("assistant", "one two", "openai:gpt-4o-mini", "http://127.0.0.1:9/v1", None, None, {},
                      "cancelled", None, {"model": "openai:gpt-4o-mini"}),
            V1Message("user", "Again"),
            V1Message("assistant", "one two three", "openai:gpt-4o-mini", "http://127.0.0.1:9/v1", status="streaming"),
        ]),
        V1Conversation("e" * 32, "Empty", None, "", {}, []),
    ]


def write_v1_history(path: Path, conversations: list[V1Conversation] | None = None) -> list[V1Conversation]:
    """Write ``conversations`` (default :func:`sample`) with schema-1 statements; return them
    with their message ids filled in."""
    convs = sample() if conversations is None else conversations
    db = open_v1(path)
    try:
        now = 1_700_000_000.0
        for conv in convs:
            db.execute(INSERT_CONVERSATION, (conv.id, conv.title, now, now, conv.model, conv.system_prompt,
                                             _dumps(conv.params)))  # fmt: skip
            for m in conv.messages:
                now += 1
                cur = db.execute(INSERT_MESSAGE, (conv.id, m.role, m.content, now, m.model, m.endpoint, m.adapter,
                                                  m.adapter_sha256, _dumps(m.params), m.status, m.error,
                                                  _dumps(m.meta)))  # fmt: skip
                db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conv.id))
                conv.message_ids.append(int(cur.lastrowid or 0))
    finally:
        db.close()
    return convs
