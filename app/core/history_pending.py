"""Writes of the history that wait while another process holds it (see
:mod:`app.core.history_journal` for the journal that keeps them).

:class:`PendingWrites` is the part of :class:`app.core.history.HistoryStore` that writes:
an exchange's writes that find the file locked (for more than :data:`QUICK_WAIT_S`) are kept
pending, in order, in memory and in the journal, and are written as soon as the lock frees
(at the next write or :meth:`PendingWrites.flush`); reads show them meanwhile, with
provisional ids (:meth:`PendingWrites.resolve` gives the real id once written). What only
changes the history (rename, delete, fork) waits the busy timeout, then raises
:class:`StorageBusy`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from app.core.errors import StorageBusy, StorageError
from app.core.history_journal import (
    Journal,
    Record,
    adoptable,
    apply_record,
    journals,
    mark_cut,
    message_changes,
    read_journal,
    replay,
)
from app.core.history_schema import INTERRUPTED
from app.core.history_types import (
    Conversation,
    StoredMessage,
    pending_conversation,
    pending_message,
    with_record,
)
from app.core.json_steps import plain
from app.core.sqlite_db import busy_error, error_kind
from app.core.usage_store import OPEN_WAIT_S

log = logging.getLogger(__name__)
T = TypeVar("T")

QUICK_WAIT_S = OPEN_WAIT_S
"""How long a write of an exchange waits for another process's lock before it is kept
pending (as long as the usage ledger waits to open a request's row)."""


class PendingWrites:
    """The history's connection, its writes and those waiting for a lock (a mixin of
    :class:`app.core.history.HistoryStore`, which opens the database)."""

    path: Path
    busy_timeout_s: float
    journal: Journal
    warnings: list[str]
    _db: sqlite3.Connection
    _lock: threading.RLock
    _writer: str
    _queue: list[Record]
    _ids: dict[int, int]
    _next_ref: int

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if error_kind(exc) == "busy":
                    raise busy_error("history", self.path, self.busy_timeout_s) from exc
                raise

    # -- writes, pending writes and the journal ------------------------------------------

    def _txn(self, op: Callable[[sqlite3.Connection], T], wait_s: float) -> T:
        """Run ``op`` in a write transaction, waiting at most ``wait_s`` for the lock
        (:class:`StorageBusy` after that; nothing written)."""
        db = self._db
        with self._lock:
            db.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    out = op(db)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if error_kind(exc) == "busy":
                    raise busy_error("history", self.path, wait_s) from exc
                raise
            finally:
                db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            return out

    def _write(self, rec: Record) -> int | None:
        """Write ``rec`` now, or keep it pending (behind those already pending) when another
        process holds the lock; return an added message's id (provisional when pending)."""
        with self._lock:
            if not self._queue:
                try:
                    return self._txn(lambda db: apply_record(db, rec, self._ids), QUICK_WAIT_S)
                except StorageBusy as exc:
                    log.info("history write pending: %s", exc)
            rec = self._resolved(rec)
            if rec["op"] == "add":
                rec["ref"] = self._next_ref
                self._next_ref += 1
            first = not self._queue
            self._queue.append(rec)
            try:
                self.journal.append(rec)
            except OSError as exc:
                self._warn(f"The history journal {self.journal.path} could not be written ({exc}); the "
                           "pending history writes are kept in memory until the history is free.")  # fmt: skip
            if not first:
                self.flush(0)
            return cast(int | None, rec.get("ref"))

    def _resolved(self, rec: Record) -> Record:
        """``rec`` (a copy) naming the real ids of provisional ones already written."""
        rec = {**rec, "by": self._writer}
        if isinstance(rec.get("meta"), dict):  # kept and shown as values (an Encoded is for the write)
            rec["meta"] = plain(rec["meta"])
        for key in ("id", "parent_id", "leaf"):
            value = rec.get(key)
            if isinstance(value, int):
                rec[key] = self._ids.get(value, value)
        return rec

    def _warn(self, message: str) -> None:
        log.info("%s", message)
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def pending(self) -> int:
        """Writes waiting for another process to release the history (0: all written)."""
        return len(self._queue)

    def resolve(self, message_id: int) -> int:
        """The real id of a message added while the history was busy (once written), else
        ``message_id`` itself."""
        return self._ids.get(message_id, message_id)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Write the pending writes, waiting at most ``timeout_s`` (default
        :attr:`busy_timeout_s`) for the lock; True when nothing is pending any more."""
        with self._lock:
            if not self._queue:
                return True
            ids = dict(self._ids)
            try:
                skipped = self._txn(lambda db: replay(db, self._queue, ids), self.busy_timeout_s
                                    if timeout_s is None else timeout_s)  # fmt: skip
            except StorageBusy:
                return False
            except (StorageError, sqlite3.Error) as exc:
                log.info("pending history writes not written now", exc_info=True)
                self._warn(f"The history {self.path} could not be written ({exc}); the pending writes are "
                           f"kept in {self.journal.path} for the next start.")  # fmt: skip
                return False
            self._ids = ids
            self._queue.clear()
            self.journal.discard()
            for why in skipped:
                self._warn(f"A history write kept while the history was busy could not be made ({why}); "
                           "its conversation was probably deleted meanwhile.")  # fmt: skip
            return True

    def _strict(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """A change the user asked for (rename, delete, fork): the pending writes first, then
        ``op``; each waits :attr:`busy_timeout_s`, then :class:`StorageBusy`."""
        with self._lock:
            if not self.flush():
                raise busy_error("history", self.path, self.busy_timeout_s)
            return self._txn(op, self.busy_timeout_s)

    def _adopt_journals(self) -> None:
        """Write in the journals that earlier runs left (their process ended or closed its
        history first); one that cannot be written now stays for the next start."""
        for path in journals(self.path):
            try:
                records, torn = read_journal(path)
            except OSError as exc:
                self._warn(f"The history journal {path} could not be read ({exc}); it is kept.")
                continue
            if torn:
                log.info("history journal %s: %d torn line(s) skipped", path, torn)
            if records and not adoptable(records):
                continue  # another instance's, still running: it writes them itself
            try:
                skipped = self._txn(partial(self._replay_adopted, records=records), QUICK_WAIT_S)
            except StorageBusy:
                self._warn(f"The history is busy (another program holds it): the answers kept in {path} "
                           "will be written into it at the next start.")  # fmt: skip
                continue
            except (StorageError, sqlite3.Error) as exc:
                self._warn(f"The history journal {path} could not be written into the history ({exc}); "
                           "it is kept.")  # fmt: skip
                continue
            for why in skipped:
                self._warn(f"A history write from {path.name} could not be made ({why}).")
            try:
                path.unlink()
            except OSError:
                log.warning("could not remove the written history journal %s", path, exc_info=True)
            log.info("history journal %s written into the history (%d records)", path, len(records))

    @staticmethod
    def _replay_adopted(db: sqlite3.Connection, records: list[Record]) -> list[str]:
        ids: dict[int, int] = {}
        skipped = replay(db, records, ids)
        updated = [int(r["id"]) for r in records if r["op"] == "update" and isinstance(r.get("id"), int)]
        mark_cut(db, [*ids.values(), *(ids.get(i, i) for i in updated)], INTERRUPTED)
        return skipped

    # -- conversations -------------------------------------------------------------------
    def _overlay_conversation(self, conversation_id: str, conv: Conversation | None) -> Conversation | None:
        for rec in list(self._queue):
            if rec.get("cid") != conversation_id:
                continue
            if rec["op"] == "conv":
                conv = pending_conversation(rec)
            elif conv is not None:
                conv = with_record(conv, rec)
        return conv

    def _overlay_messages(self, found: list[StoredMessage], keep: Callable[[Record], bool]) -> list[StoredMessage]:
        by_id = {m.id: m for m in found}
        for rec in list(self._queue):
            if rec["op"] == "add" and keep(rec):
                by_id[rec["ref"]] = pending_message(rec)
            elif rec["op"] == "update" and rec["id"] in by_id:
                by_id[rec["id"]] = replace(by_id[rec["id"]], **message_changes(rec))
        return sorted(by_id.values(), key=lambda m: m.id)

    def _close_pending(self) -> None:
        """Write what is pending if the history is free now, else mark the journal closed
        (the next start writes it in)."""
        try:
            if self._queue and not self.flush(0):
                self.journal.append({"op": "closed", "by": self._writer})
        except (OSError, sqlite3.Error):  # no room: the journal has the records
            log.info("closing the history with pending writes", exc_info=True)
