"""Another process with the history open: it adds an answer left "streaming", then either
stays alive (another instance still writing) or dies without closing anything (a crash)::

    with HistoryWriter(path, conversation_id) as writer:   # alive until the block ends
        ...                                                 # writer.message_id is streaming
    HistoryWriter(path, conversation_id).crash()            # the process is gone
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.sqlite_lock import _readline

_CHILD = """
import os, sys
from pathlib import Path
from app.core.history import HistoryStore
store = HistoryStore(Path(sys.argv[1]))
msg = store.add_message(sys.argv[2], "assistant", sys.argv[3], status="streaming")
print(msg.id, flush=True)
if sys.argv[4] == "crash":
    os._exit(9)  # killed: nothing closed, the row stays "streaming"
sys.stdin.readline()
store.close()
"""


class HistoryWriter:
    """A child process that streams one answer into ``conversation_id``."""

    def __init__(self, path: Path, conversation_id: str, text: str = "partial answer") -> None:
        self.path = path
        self.conversation_id = conversation_id
        self.text = text
        self.message_id = 0
        self.proc: subprocess.Popen[str] | None = None

    def _start(self, mode: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(self.path), self.conversation_id, self.text,
                                      mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parents[2])  # fmt: skip
        assert self.proc.stdout is not None
        self.message_id = int(_readline(self.proc.stdout, 60).strip())

    def crash(self) -> int:
        """Run the child to its crash; return the id of the answer it left streaming."""
        self._start("crash")
        self._finish()
        return self.message_id

    def _finish(self) -> None:
        assert self.proc is not None
        self.proc.communicate(timeout=30)  # waits, and closes the pipes

    def __enter__(self) -> HistoryWriter:
        self._start("live")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.communicate("\n", timeout=30)
