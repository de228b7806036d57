"""An excepthook (and asyncio exception handler) that logs errors with keys redacted, shows
them in the UI and makes sure nothing stays stuck in the "generating" state.

``asyncSlot`` sends exceptions to ``sys.excepthook``; plain tasks go to the loop's exception
handler. Both end up in :meth:`ErrorReporter.report`.

Signals:
    error_reported(str message): a redacted, one-line message for the status bar / banner.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.core.errors import AppError, redact

if TYPE_CHECKING:
    import asyncio
    import os

log = logging.getLogger("app.ui.errors")


def describe(exc: BaseException) -> str:
    """A redacted one-line message for ``exc``."""
    if isinstance(exc, AppError):
        return exc.user_message()
    return redact(f"Unexpected error: {type(exc).__name__}: {exc}")


class ErrorReporter(QObject):
    """Installed as ``sys.excepthook``; ``recover`` callbacks reset busy states."""

    error_reported = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._recover: list[Callable[[], None]] = []
        self._previous: Callable[[type[BaseException], BaseException, TracebackType | None], object] | None = None
        self.installed = False

    def add_recovery(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every reported error (e.g. the window's reset of Send/Stop)."""
        self._recover.append(callback)

    def report(self, exc: BaseException, tb: TracebackType | None = None) -> str:
        """Log (redacted), run the recovery callbacks and emit ``error_reported``."""
        text = redact("".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__)))
        log.error("unhandled error:\n%s", text)
        if sys.stderr is not None:
            sys.stderr.write(text)
        message = describe(exc)
        for callback in list(self._recover):
            try:
                callback()
            except Exception:  # recovery must never raise out of the hook
                log.exception("error recovery failed")
        self.error_reported.emit(message)
        return message

    def excepthook(self, etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        """The ``sys.excepthook`` entry point."""
        if issubclass(etype, KeyboardInterrupt):
            if self._previous is not None:
                self._previous(etype, value, tb)
            return
        self.report(value, tb)

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """The asyncio loop exception handler."""
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            self.report(exc)
        else:
            message = redact(str(context.get("message", "unknown asyncio error")))
            log.error("asyncio: %s", message)
            self.error_reported.emit(message)

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Install as ``sys.excepthook`` (and as ``loop``'s exception handler)."""
        self._previous = sys.excepthook
        sys.excepthook = self.excepthook
        if loop is not None:
            loop.set_exception_handler(self.loop_handler)
        self.installed = True

    def uninstall(self) -> None:
        """Restore the previous hook."""
        if self.installed and sys.excepthook == self.excepthook:
            sys.excepthook = self._previous or sys.__excepthook__
        self.installed = False


def setup_logging(log_file: str | os.PathLike[str]) -> None:
    """Log to ``log_file`` (keys redacted by a filter)."""
    root = logging.getLogger()
    if any(getattr(h, "_llm_playground", False) for h in root.handlers):
        return
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler._llm_playground = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactFilter())
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.msg += "\n" + redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True
