"""The token lens's part of saving an answer: its tokens with their probabilities are written
to the history one event-loop turn after the answer itself (content, status, figures), so the
end of a long answer is two short steps on the GUI thread instead of one long one. Anything
that reads the history first (a reopen, a fork, closing) writes them at once (:meth:`flush`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

from app.core.history import HistoryStore

log = logging.getLogger(__name__)

LENS_KEYS = ("tokens", "tokens_total")
"""The meta keys written one turn later (the mean logprob is small: it is saved with the answer)."""


def split_lens(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``meta`` without its tokens, and the whole meta when it has tokens (else ``{}``)."""
    if not any(k in meta for k in LENS_KEYS):
        return meta, {}
    return {k: v for k, v in meta.items() if k not in LENS_KEYS}, meta


class LensWriter(QObject):
    """Writes answers' whole meta (with tokens) on the next turn of the event loop;
    ``written(message_id, meta)`` is called after each write (the session updates its tree)."""

    def __init__(self, history: HistoryStore, written: Callable[[int, dict[str, Any]], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._history = history
        self._written = written
        self._pending: dict[int, dict[str, Any]] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.flush)

    def defer(self, message_id: int, meta: dict[str, Any]) -> None:
        """Write ``meta`` (with the tokens) for ``message_id`` on the next turn."""
        self._pending[message_id] = meta
        self._timer.start()

    def flush(self) -> None:
        """Write what is pending now. A failure is logged: the answer itself is saved already."""
        self._timer.stop()
        pending, self._pending = self._pending, {}
        for message_id, meta in pending.items():
            try:
                self._history.update_message(message_id, meta=meta)
            except Exception:  # the probabilities are extra; the answer is in the history
                log.warning("could not save the probabilities of message %s", message_id, exc_info=True)
                continue
            self._written(message_id, meta)
