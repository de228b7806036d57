"""Opening the app's SQLite databases (usage ledger, history) the same way: WAL, a versioned
schema, and a damaged file moved aside (kept for recovery) instead of a crash."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from app.core.errors import ConfigError

log = logging.getLogger(__name__)

Hook = Callable[[sqlite3.Connection], None]


def move_aside(path: Path) -> Path:
    """Rename a damaged SQLite file (and its -wal/-shm files) to ``<name>.corrupt-<time>``."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.replace(aside.with_name(aside.name + suffix))
    return aside


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
) -> tuple[sqlite3.Connection, list[str]]:
    """Open (or create) ``path``; return the connection and user-facing warnings.

    ``what`` names the database in messages ("usage", "history"); a file written by a newer
    schema raises :class:`ConfigError` and is left alone; a damaged one is moved aside and a
    fresh database started (``fresh_note`` says what that means to the user).
    """
    path.parent.mkdir(parents=True, exist_ok=True)

    def _open() -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            if before_schema is not None:
                before_schema(db)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", *pragmas):
                db.execute(f"PRAGMA {pragma}")
            found = db.execute("PRAGMA user_version").fetchone()[0]
            if found > version:
                raise ConfigError(
                    f"The {what} database {path} was written by a newer version of the app.",
                    hint=newer_hint,
                )
            db.executescript(schema)
            db.execute(f"PRAGMA user_version={version}")
            if after_schema is not None:
                after_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    try:
        return _open(), []
    except sqlite3.DatabaseError as exc:
        aside = move_aside(path)
        msg = f"The {what} database {path} was damaged ({exc}); it was moved to {aside} and {fresh_note}."
        log.warning(msg)
        return _open(), [msg]
