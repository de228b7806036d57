"""The history database's schema (version 2: a tree of messages) and how older files become it.

Schema 1 held linear conversations. Schema 2 adds, per message, ``parent_id`` (the message it
answers or follows; None for a root), the ``system_prompt`` in force for an answer and the
``writer`` (the process streaming it, see :mod:`app.core.process_id`); per conversation, its
``active_leaf_id``, ``endpoint``, ``adapters`` (path, scale, sha256), the ``draft`` in the
message box and a ``meta`` object (``forked_from``).

The upgrade runs inside the one write transaction :func:`app.core.sqlite_db.open_database`
holds for it: first the file is copied aside (``history.sqlite3.schema1-<time>-<id>``, through
SQLite's backup API, so the copy is exactly what is being upgraded), then the columns are
added and each conversation becomes a chain (a message's parent is the one before it). A
process killed half-way leaves the transaction uncommitted: the file is still schema 1 and
the next start upgrades it again.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from app.core.process_id import writer_alive
from app.core.sqlite_db import aside_path, error_kind

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
INTERRUPTED = "interrupted (app closed)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    model TEXT,
    system_prompt TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    endpoint TEXT,
    adapters TEXT NOT NULL DEFAULT '[]',
    active_leaf_id INTEGER,
    draft TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}'
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
    meta TEXT NOT NULL DEFAULT '{}',
    parent_id INTEGER,
    system_prompt TEXT,
    writer TEXT
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id, id);
CREATE INDEX IF NOT EXISTS messages_parent ON messages(conversation_id, parent_id);
CREATE INDEX IF NOT EXISTS messages_streaming ON messages(writer) WHERE status = 'streaming';
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated_at);
"""

_V2_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("conversations", "endpoint", "TEXT"),
    ("conversations", "adapters", "TEXT NOT NULL DEFAULT '[]'"),
    ("conversations", "active_leaf_id", "INTEGER"),
    ("conversations", "draft", "TEXT NOT NULL DEFAULT ''"),
    ("conversations", "meta", "TEXT NOT NULL DEFAULT '{}'"),
    ("messages", "parent_id", "INTEGER"),
    ("messages", "system_prompt", "TEXT"),
    ("messages", "writer", "TEXT"),
)

_CHAIN = (
    "UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages p WHERE "
    "p.conversation_id = messages.conversation_id AND p.id < messages.id) WHERE parent_id IS NULL"
)
_LEAF = (
    "UPDATE conversations SET active_leaf_id = (SELECT MAX(m.id) FROM messages m WHERE "
    "m.conversation_id = conversations.id) WHERE active_leaf_id IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM messages m WHERE m.id = conversations.active_leaf_id "
    "AND m.conversation_id = conversations.id)"
)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in db.execute(f'PRAGMA table_info("{table}")')}


def migrate(db: sqlite3.Connection, found: int) -> None:
    """Bring a schema-1 file up to schema 2 (called inside the upgrade transaction, before the
    schema script). A new file (no tables yet) needs nothing."""
    existing = _columns(db, "messages")
    if not existing or "parent_id" in existing:
        return
    copy_aside(db, found or 1)
    add_columns(db)
    chain_messages(db)


def copy_aside(db: sqlite3.Connection, version: int) -> Path | None:
    """Copy the database (as this transaction sees it: nothing written yet) to a unique
    ``<name>.schema<version>-...`` file next to it; return its path (None for a memory db)."""
    row = db.execute("PRAGMA database_list").fetchone()
    file = str(row[2]) if row is not None else ""
    if not file:
        return None
    path = Path(file)
    dest = aside_path(path, tag=f"schema{version}")
    src = sqlite3.connect(path, timeout=5)  # a reader beside our write lock (WAL)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    log.info("history schema %d copied to %s before the upgrade", version, dest)
    return dest


def add_columns(db: sqlite3.Connection) -> None:
    """Add the schema-2 columns that are missing."""
    have = {table: _columns(db, table) for table in ("conversations", "messages")}
    for table, column, decl in _V2_COLUMNS:
        if column not in have[table]:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def chain_messages(db: sqlite3.Connection) -> None:
    """Linear conversations become chains: each message's parent is the one before it, and the
    last message is the active leaf."""
    db.execute(_CHAIN)
    db.execute(_LEAF)


def repair_after_salvage(db: sqlite3.Connection) -> None:
    """After a salvage: messages whose conversation row was on a damaged page get a "Recovered
    conversation"; rows copied from a schema-1 file (no parent links, no active leaf) become
    chains; a message whose parent was lost becomes a root (still listed, one branch more);
    a lost active leaf becomes the newest message."""
    db.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at) "
        "SELECT m.conversation_id, 'Recovered conversation', MIN(m.created_at), MAX(m.created_at) "
        "FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id) "
        "GROUP BY m.conversation_id"
    )
    db.execute(
        "UPDATE messages SET parent_id = NULL WHERE parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
        "messages p WHERE p.id = messages.parent_id AND p.conversation_id = messages.conversation_id)"
    )
    db.execute(
        _CHAIN + " AND conversation_id IN (SELECT c.id FROM conversations c WHERE c.active_leaf_id IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.parent_id IS NOT NULL))"
    )
    db.execute(_LEAF)


def mark_interrupted(db: sqlite3.Connection) -> None:
    """Answers left "streaming" by a process that is gone keep their text and become errors
    ("interrupted (app closed)"); those of another live instance (or of this process) are left
    alone. Rows without a writer (schema 1) count as gone. Writes only when there are such
    answers; a lock held by another instance skips it (the next start does it)."""
    writers = [r[0] for r in db.execute("SELECT DISTINCT writer FROM messages WHERE status = 'streaming'")]
    dead = [w for w in writers if not writer_alive(w)]
    if not dead:
        return
    try:
        for writer in dead:
            db.execute("UPDATE messages SET status = 'error', error = ? WHERE status = 'streaming' AND writer IS ?",
                       (INTERRUPTED, writer))  # fmt: skip
    except sqlite3.OperationalError as exc:
        if error_kind(exc) != "busy":
            raise
        log.info("history is busy; interrupted answers will be marked at the next start")
