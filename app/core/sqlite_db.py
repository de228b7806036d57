"""Opening the app's SQLite databases (usage ledger, history) the same way: WAL, a busy
timeout, a versioned schema, and damage told apart from a lock.

- **Busy is never damage.** Another process holding a write lock makes SQLite wait for the
  busy timeout and then report "database is locked": that raises :class:`StorageBusy`
  ("busy: another instance holds the ... database") and the file is left alone. Opening a
  healthy database whose schema is current writes nothing, so in WAL mode another
  instance's long write transaction does not even delay it.
- **Only damage is damage:** SQLite saying "file is not a database" / "database disk image
  is malformed", or ``PRAGMA quick_check`` failing. Then every readable row is copied
  (table by table, row by row around bad pages) into a new file, the damaged file (with its
  -wal/-shm) is moved aside under a unique name, the new file takes its place, and the
  caller gets a message saying where the old file is.
- Anything else (no permission, disk full) raises :class:`StorageError`; nothing is moved.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.errors import ConfigError, StorageBusy, StorageError

log = logging.getLogger(__name__)

Hook = Callable[[sqlite3.Connection], None]
Migration = Callable[[sqlite3.Connection, int], None]
"""``(connection, version found)``: bring an older schema up to date (inside the upgrade
transaction, before the schema script runs). Called for every version below the current
one, 0 (a new file) included, so it must look at what is there."""

BUSY_TIMEOUT_ENV = "LLM_PLAYGROUND_DB_BUSY_TIMEOUT"
"""Seconds to wait for another process's lock (default :data:`DEFAULT_BUSY_TIMEOUT_S`)."""
DEFAULT_BUSY_TIMEOUT_S = 5.0

_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
_DAMAGE_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_MAX_ROWID = 2**63 - 1

ErrorKind = Literal["busy", "damaged", "other"]


def default_busy_timeout() -> float:
    """The busy timeout in seconds: ``$LLM_PLAYGROUND_DB_BUSY_TIMEOUT`` or 5."""
    raw = os.environ.get(BUSY_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_BUSY_TIMEOUT_S
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %g", BUSY_TIMEOUT_ENV, raw, DEFAULT_BUSY_TIMEOUT_S)
        return DEFAULT_BUSY_TIMEOUT_S
    return max(0.0, value)


def error_kind(exc: BaseException) -> ErrorKind:
    """``busy`` (locked by someone else), ``damaged`` (not a database / malformed) or ``other``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        if code & 0xFF in _BUSY_CODES:
            return "busy"
        if code & 0xFF in _DAMAGE_CODES:
            return "damaged"
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "busy"
    if "not a database" in text or "malformed" in text:
        return "damaged"
    return "other"


def busy_error(what: str, path: Path, timeout_s: float) -> StorageBusy:
    """The :class:`StorageBusy` for ``what`` (``usage``, ``history``) at ``path``."""
    return StorageBusy(
        f"busy: another instance holds the {what} database {path} "
        f"(still locked after waiting {timeout_s:g} s)."
    )


def storage_error(what: str, path: Path, exc: BaseException) -> StorageError:
    """A :class:`StorageError` for a failure that is neither busy nor damage."""
    return StorageError(f"The {what} database {path} could not be used: {exc}.")


class _Damaged(Exception):
    """``PRAGMA quick_check`` found damage (internal)."""


@dataclass(frozen=True)
class DatabaseSpec:
    """How to open one kind of database (see :func:`open_database` for the fields)."""

    what: str
    schema: str
    version: int
    newer_hint: str
    fresh_note: str
    before_schema: Hook | None = None
    after_schema: Hook | None = None
    migrate: Migration | None = None
    after_salvage: Hook | None = None
    pragmas: tuple[str, ...] = ()


def aside_path(path: Path, tag: str = "corrupt") -> Path:
    """A new, unused name ``<name>.<tag>-YYYYmmdd-HHMMSS-ffffff-<random>`` next to ``path``
    (unique even for several files moved aside in the same second)."""
    while True:
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"
        aside = path.with_name(f"{path.name}.{tag}-{stamp}-{uuid.uuid4().hex[:6]}")
        if not any(aside.with_name(aside.name + s).exists() for s in ("", "-wal", "-shm")):
            return aside


def sql_terms(terms: Mapping[str, object], sep: str) -> tuple[str, tuple[object, ...]]:
    """The SQL fragments of ``terms`` whose value is not None, joined by ``sep``, and their
    values: ``sql_terms({"a = ?": 1, "b = ?": None}, " AND ")`` is ``("a = ?", (1,))``."""
    kept = {fragment: value for fragment, value in terms.items() if value is not None}
    return sep.join(kept), tuple(kept.values())


def move_aside(path: Path) -> Path:
    """Rename a damaged SQLite file (and its -wal/-shm files) to a unique ``.corrupt-`` name."""
    aside = aside_path(path)
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.replace(aside.with_name(aside.name + suffix))
    return aside


def _statements(script: str) -> Iterator[str]:
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=timeout_s, check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def _quick_check(db: sqlite3.Connection) -> None:
    rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
    if rows != ["ok"]:
        first = next((line for line in "\n".join(rows).splitlines() if line and not line.startswith("***")), "?")
        raise _Damaged(f"integrity check failed: {first[:120]}")


def _apply_schema(db: sqlite3.Connection, spec: DatabaseSpec) -> None:
    """Create or upgrade the schema in one write transaction (only when it is not current)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        found = int(db.execute("PRAGMA user_version").fetchone()[0])
        if found < spec.version:
            if spec.migrate is not None:
                spec.migrate(db, found)
            for statement in _statements(spec.schema):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={int(spec.version)}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _open(path: Path, spec: DatabaseSpec, timeout_s: float, check: bool) -> sqlite3.Connection:
    db = _connect(path, timeout_s)
    try:
        if spec.before_schema is not None:
            spec.before_schema(db)
        mode = str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        found = int(db.execute("PRAGMA user_version").fetchone()[0])
        if found > spec.version:
            raise ConfigError(
                f"The {spec.what} database {path} was written by a newer version of the app.",
                hint=spec.newer_hint,
            )
        if check and found:
            _quick_check(db)
        if mode != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        for pragma in ("synchronous=NORMAL", *spec.pragmas):
            db.execute(f"PRAGMA {pragma}")
        if found < spec.version:
            _apply_schema(db, spec)
        if spec.after_schema is not None:
            spec.after_schema(db)
    except BaseException:
        db.close()
        raise
    return db


def open_database(
    path: Path,
    *,
    what: str,
    schema: str,
    version: int,
    newer_hint: str,
    fresh_note: str,
    before_schema: Hook | None = None,
    after_schema: Hook | None = None,
    pragmas: tuple[str, ...] = (),
    migrate: Migration | None = None,
    after_salvage: Hook | None = None,
    busy_timeout_s: float | None = None,
) -> tuple[sqlite3.Connection, list[str]]:
    """Open (or create) ``path``; return the connection and user-facing warnings.

    ``what`` names the database in messages ("usage", "history"). A file written by a newer
    schema raises :class:`ConfigError` and is left alone; a locked one raises
    :class:`StorageBusy` after ``busy_timeout_s`` (default :func:`default_busy_timeout`);
    a damaged one is salvaged into a fresh file and moved aside (``fresh_note`` says what
    that means to the user; ``after_salvage`` may repair the salvaged rows, e.g. give
    orphans a parent). ``migrate`` upgrades an older schema (see :data:`Migration`).
    """
    spec = DatabaseSpec(what, schema, version, newer_hint, fresh_note, before_schema,
                        after_schema, migrate, after_salvage, pragmas)  # fmt: skip
    return open_spec(path, spec, busy_timeout_s)


def open_spec(
    path: Path, spec: DatabaseSpec, busy_timeout_s: float | None = None
) -> tuple[sqlite3.Connection, list[str]]:
    """:func:`open_database` with a prepared :class:`DatabaseSpec`."""
    timeout = default_busy_timeout() if busy_timeout_s is None else busy_timeout_s
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(spec.what, path, exc) from exc
    try:
        return _open(path, spec, timeout, check=True), []
    except _Damaged as exc:
        reason = str(exc)
    except sqlite3.DatabaseError as exc:
        kind = error_kind(exc)
        if kind == "busy":
            raise busy_error(spec.what, path, timeout) from exc
        if kind == "other":
            raise storage_error(spec.what, path, exc) from exc
        reason = str(exc)
    message = salvage_and_replace(path, spec, reason, timeout)
    try:
        db = _open(path, spec, timeout, check=False)
    except sqlite3.DatabaseError as exc:
        if error_kind(exc) == "busy":
            raise busy_error(spec.what, path, timeout) from exc
        raise storage_error(spec.what, path, exc) from exc
    return db, [message]


def salvage_and_replace(path: Path, spec: DatabaseSpec, reason: str, timeout_s: float) -> str:
    """Copy every readable row of the damaged ``path`` into a new database with the current
    schema, move the damaged file aside and put the new one in its place; return the
    user-facing message. Raises :class:`StorageBusy` (nothing moved) when another process
    holds the damaged file's write lock."""
    tmp = path.with_name(f"{path.name}.salvage-{uuid.uuid4().hex[:8]}")
    try:
        new = sqlite3.connect(tmp, isolation_level=None)
        try:
            if spec.before_schema is not None:
                spec.before_schema(new)
            if spec.migrate is not None:
                spec.migrate(new, 0)
            for statement in _statements(spec.schema):
                new.execute(statement)
            new.execute(f"PRAGMA user_version={int(spec.version)}")
            copied, holes = _copy_readable_rows(path, new, spec, timeout_s)
            if spec.after_salvage is not None:
                spec.after_salvage(new)
        finally:
            new.close()
        aside = move_aside(path)
        os.replace(tmp, path)
    except (OSError, sqlite3.Error) as exc:  # e.g. no room for the new file: nothing moved
        tmp.unlink(missing_ok=True)
        raise storage_error(spec.what, path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if copied:
        saved = f"with the {copied} rows that could still be read"
        if holes:
            saved += " (rows on damaged pages were lost)"
    else:
        saved = "no rows could be read from the damaged file"
    message = (
        f"The {spec.what} database {path} was damaged ({reason}); it was moved to {aside} and "
        f"{spec.fresh_note}, {saved}."
    )
    log.info("%s", message)  # the caller shows it to the user (its warnings)
    return message


def _copy_readable_rows(
    path: Path, new: sqlite3.Connection, spec: DatabaseSpec, timeout_s: float
) -> tuple[int, int]:
    """Copy rows table by table; return (rows copied, unreadable stretches skipped)."""
    try:
        src = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error:
        return 0, 1
    copied = holes = 0
    try:
        try:  # nobody may write while we copy; a lock held by another process is "busy"
            src.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            if error_kind(exc) == "busy":
                raise busy_error(spec.what, path, timeout_s) from exc
        if spec.before_schema is not None:
            try:
                spec.before_schema(src)
            except sqlite3.Error:
                pass
        tables = [str(r[0]) for r in new.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]  # fmt: skip
        for table in tables:
            n, h = _copy_table(src, new, table)
            copied += n
            holes += h
    finally:
        try:
            if src.in_transaction:
                src.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        src.close()
    return copied, holes


def _columns(db: sqlite3.Connection, table: str) -> list[tuple[str, bool]]:
    """(name, is the INTEGER PRIMARY KEY) for each column of ``table``."""
    return [(str(r[1]), str(r[2]).upper() == "INTEGER" and int(r[5]) == 1)
            for r in db.execute(f'PRAGMA table_info("{table}")')]  # fmt: skip


def _copy_table(src: sqlite3.Connection, new: sqlite3.Connection, table: str) -> tuple[int, int]:
    try:
        src_cols = {name for name, _ in _columns(src, table)}
    except sqlite3.DatabaseError:
        return 0, 1
    new_cols = _columns(new, table)
    cols = [name for name, _ in new_cols if name in src_cols]
    if not cols:
        return 0, 0
    keep_rowid = not any(pk for name, pk in new_cols if name in src_cols)
    names = ", ".join(f'"{c}"' for c in cols)
    select = f'SELECT rowid, {names} FROM "{table}" WHERE rowid >= ? ORDER BY rowid'
    target = ("rowid, " if keep_rowid else "") + names
    marks = ", ".join("?" * (len(cols) + (1 if keep_rowid else 0)))
    insert = f'INSERT OR IGNORE INTO "{table}" ({target}) VALUES ({marks})'
    copied = holes = 0
    pos: int | None = -_MAX_ROWID - 1
    new.execute("BEGIN")
    try:
        while pos is not None:
            start, pos = pos, None
            try:
                for row in src.execute(select, (start,)):
                    rowid = int(row[0])
                    values = tuple(row) if keep_rowid else tuple(row)[1:]
                    try:
                        copied += max(0, new.execute(insert, values).rowcount)
                    except sqlite3.Error:
                        log.debug("salvage: row %s of %s not copied", rowid, table, exc_info=True)
                    if rowid >= _MAX_ROWID:
                        break
                    start = rowid + 1
            except sqlite3.DatabaseError:  # a bad page: go on after it
                holes += 1
                pos = _next_readable(src, table, start)
        new.execute("COMMIT")
    except BaseException:
        if new.in_transaction:
            new.execute("ROLLBACK")
        raise
    return copied, holes


def _next_readable(src: sqlite3.Connection, table: str, pos: int) -> int | None:
    """The smallest rowid after ``pos`` from which ``table`` can be read again (past a bad
    page), or None when nothing further can be read. Seeks by rowid go straight to a leaf
    page through the b-tree, so a bad leaf costs only its own rows."""

    def readable(start: int) -> bool:
        try:
            src.execute(f'SELECT rowid FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT 1', (start,)).fetchall()
        except sqlite3.DatabaseError:
            return False
        return True

    base = max(pos, 0)  # the tables' rowids start at 1: no doubling up from -2**63
    lo, step = base, 1
    while True:
        start = base + step
        if start > _MAX_ROWID:
            return None
        if readable(start):
            break
        lo, step = start, step * 2
    hi = start
    while hi - lo > 1:  # the first start that reads again, between the last failure and hi
        mid = (lo + hi) // 2
        if readable(mid):
            hi = mid
        else:
            lo = mid
    return hi
