"""Another process holding a lock on a SQLite file, for busy-is-not-damage tests::

    with LockHolder(path):                       # BEGIN IMMEDIATE: a write transaction
        ...                                      # readers go on (WAL), writers wait
    with LockHolder(path, exclusive=True):       # locking_mode=EXCLUSIVE + a write:
        ...                                      # nobody can even read
    holder = LockHolder(path).start(); ...; holder.release()

The lock is taken before :meth:`LockHolder.start` returns and dropped by
:meth:`LockHolder.release` (or on leaving the ``with`` block); the process is a real
``python`` child, as another instance of the app would be.
"""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path
from typing import IO

_CHILD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
if sys.argv[2] == "exclusive":
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("BEGIN EXCLUSIVE")
    db.execute("CREATE TABLE IF NOT EXISTS _lock_probe (x)")
else:
    db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
db.close()
print("released", flush=True)
"""


def _readline(stream: IO[str], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"the lock holder did not answer within {timeout} s")
    return stream.readline()


class LockHolder:
    """A child process holding ``path``'s write lock (``exclusive``: all access)."""

    def __init__(self, path: Path, *, exclusive: bool = False) -> None:
        self.path = path
        self.exclusive = exclusive
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> LockHolder:
        """Start the child; return once it holds the lock."""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(self.path), "exclusive" if self.exclusive else "immediate"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, timeout)
        if line.strip() != "locked":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise RuntimeError(f"the lock holder failed: {line!r} {err}")
        return self

    def release(self, timeout: float = 30.0) -> None:
        """Drop the lock and end the child (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            _readline(proc.stdout, timeout)
            proc.wait(timeout)
        except (OSError, TimeoutError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout)
        finally:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> LockHolder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.release()
