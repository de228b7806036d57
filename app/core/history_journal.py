"""The history's journal: writes that waited while another program held the history.

Another process holding the history's write lock never stops or breaks an answer: the writes
of an exchange (the conversation, the user message, the answer as it streams and as it ends)
become *records*, kept in order in memory and appended to a journal beside the database,
``history.sqlite3.journal-<pid>-<token>``. They are written into the history, in order and in
one transaction, as soon as the lock frees; a process that ends first leaves its journal, and
the next start writes it in (a journal whose process still runs, and has not closed its
history, is left to that process).

The journal is JSON lines, one record a line, each written with one ``write`` and fsync'd. A
torn line (a process killed while writing it) is skipped and the lines around it are kept.
It holds the same data as the history, which never has keys (endpoints are stored without
credentials).

Records (``op``): ``conv`` (a new conversation), ``add`` (a message; ``ref`` is its
provisional id, at least :data:`PENDING_ID_BASE`, which later records may name), ``update``
(a message's text, status, error, meta), ``state`` (a conversation's model, endpoint,
adapters, parameters, system prompt), ``leaf`` (its active leaf), ``draft`` and ``closed``
(the history was closed with this journal pending).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

from app.core.json_steps import dumps
from app.core.process_id import writer_alive

log = logging.getLogger(__name__)

Record = dict[str, Any]
PENDING_ID_BASE = 1 << 30
"""Provisional message ids (of messages not written yet) start here: above any real id, and
increasing, so a tree with them still orders its messages (and fits a 32-bit int)."""
_TAG = ".journal-"
_CONV_FIELDS = ("model", "system_prompt", "params", "endpoint", "adapters")
_JSON_FIELDS = ("params", "adapters", "meta")


def journals(db_path: Path) -> list[Path]:
    """The journals beside ``db_path``, oldest first."""
    found = [p for p in db_path.parent.glob(f"{db_path.name}{_TAG}*") if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


class Journal:
    """This process's journal for one history (created on the first :meth:`append`)."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(f"{db_path.name}{_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def append(self, record: Record) -> None:
        """Add one record (one write, then fsync). Raises OSError when it cannot be written."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _sync_dir(self.path.parent)

    def discard(self) -> None:
        """Remove the journal (its records are in the history now)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove the written history journal %s", self.path, exc_info=True)


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible everywhere (Windows): the file itself is synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_journal(path: Path) -> tuple[list[Record], int]:
    """The records of a journal and the number of lines that could not be read (torn)."""
    records: list[Record] = []
    bad = 0
    with path.open("rb") as f:
        for raw in f:
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                bad += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("op"), str):
                records.append(record)
            else:
                bad += 1
    return records, bad


def adoptable(records: Iterable[Record]) -> bool:
    """True when the journal's process has closed its history or is gone (its records are
    then for the next start to write)."""
    writers = set()
    for record in records:
        if record["op"] == "closed":
            return True
        writers.add(record.get("by"))
    return not any(isinstance(w, str) and writer_alive(w) for w in writers)


def _id(value: Any, ids: MutableMapping[int, int]) -> int | None:
    """A message id with provisional ids replaced by the real ones (KeyError: not written)."""
    if value is None:
        return None
    value = int(value)
    return ids[value] if value >= PENDING_ID_BASE else value


def apply_record(db: sqlite3.Connection, rec: Record, ids: MutableMapping[int, int]) -> int | None:
    """Write one record (the caller holds the transaction); an ``add`` returns the new
    message's id (and maps its ``ref`` to it in ``ids``)."""
    op = rec["op"]
    if op == "conv":
        db.execute(
            "INSERT OR IGNORE INTO conversations (id, title, created_at, updated_at, model, system_prompt, params,"
            " endpoint, adapters, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["cid"], rec["title"], rec["created_at"], rec["created_at"], rec["model"], rec["system_prompt"],
             dumps(rec["params"]), rec["endpoint"], dumps(rec["adapters"]), dumps(rec["meta"])),
        )  # fmt: skip
    elif op == "add":
        cur = db.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at, model, endpoint, adapter,"
            " adapter_sha256, params, status, error, meta, parent_id, system_prompt, writer)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["cid"], rec["role"], rec["content"], rec["created_at"], rec["model"], rec["endpoint"], rec["adapter"],
             rec["adapter_sha256"], dumps(rec["params"]), rec["status"], rec["error"], dumps(rec["meta"]),
             _id(rec["parent_id"], ids), rec["system_prompt"], rec["writer"]),
        )  # fmt: skip
        new_id = int(cur.lastrowid or 0)
        if "ref" in rec:
            ids[int(rec["ref"])] = new_id
        touched = rec.get("updated_at", rec["created_at"])
        if rec.get("activate", True):
            db.execute("UPDATE conversations SET updated_at = ?, active_leaf_id = ? WHERE id = ?",
                       (touched, new_id, rec["cid"]))  # fmt: skip
        else:
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (touched, rec["cid"]))
        return new_id
    elif op == "update":
        changes = message_changes(rec)
        if changes:
            values = [dumps(v) if k in _JSON_FIELDS else v for k, v in changes.items()]
            sets = ", ".join(f"{k} = ?" for k in changes)
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*values, _id(rec["id"], ids)))
    elif op == "state":
        changes = {k: rec[k] for k in _CONV_FIELDS if k in rec}
        values = [dumps(v) if k in _JSON_FIELDS else v for k, v in changes.items()]
        sets = "".join(f", {k} = ?" for k in changes)
        db.execute(f"UPDATE conversations SET updated_at = ?{sets} WHERE id = ?", (rec["at"], *values, rec["cid"]))
    elif op == "leaf":
        db.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (_id(rec["leaf"], ids), rec["cid"]))
    elif op == "draft":
        db.execute("UPDATE conversations SET draft = ? WHERE id = ?", (rec["text"], rec["cid"]))
    elif op != "closed":
        raise ValueError(f"unknown history journal record {op!r}")
    return None


def message_changes(rec: Record) -> dict[str, Any]:
    """What an ``update`` record changes: the fields it gives; a new status always comes
    with its error (None clears an old one)."""
    changes = {k: rec[k] for k in ("content", "status", "error", "meta") if rec.get(k) is not None}
    if "status" in changes:
        changes["error"] = rec.get("error")
    return changes


def replay(db: sqlite3.Connection, records: Iterable[Record], ids: MutableMapping[int, int]) -> list[str]:
    """Write ``records`` in order (the caller holds the transaction); return why each record
    that could not be written was skipped (e.g. its conversation was deleted meanwhile)."""
    skipped: list[str] = []
    for rec in records:
        db.execute("SAVEPOINT journal_record")
        try:
            apply_record(db, rec, ids)
        except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, KeyError, TypeError,
                ValueError) as exc:  # fmt: skip
            db.execute("ROLLBACK TO journal_record")
            skipped.append(f"{rec.get('op')}: {type(exc).__name__}: {exc}")
        db.execute("RELEASE journal_record")
    return skipped


def mark_cut(db: sqlite3.Connection, message_ids: Iterable[int], error: str) -> None:
    """Answers of an adopted journal still ``streaming`` (their process ended mid-stream)
    become errors that keep their text."""
    ids = sorted(set(message_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        db.execute(f"UPDATE messages SET status = 'error', error = ? WHERE status = 'streaming' AND id IN "
                   f"({', '.join('?' * len(chunk))})", (error, *chunk))  # fmt: skip
