"""Garbage collection on the GUI thread only.

Python's cyclic collector runs in whichever thread happens to allocate when a threshold is
crossed - here often the local-model worker thread. If a cycle then holds a Qt object, the
object is destroyed off the GUI thread, which can crash the process. While the window runs,
automatic collection is switched off and this guard collects on a GUI-thread timer instead,
following the same generation thresholds. A full (generation 2) collection walks every object
the process keeps (tens of milliseconds): while :attr:`GuiThreadCollector.busy` says an answer
streams, a due one waits, at most :data:`FULL_WAIT_MAX_S` (the younger generations are still
collected meanwhile, so memory stays bounded).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

FULL_WAIT_MAX_S = 30.0
"""A full collection waits for a stream to end at most this long."""


class GuiThreadCollector(QObject):
    """Disables automatic ``gc`` and collects from a QTimer on the thread that owns it.

    Signals: none. Call :meth:`stop` (or delete it) to restore automatic collection.
    """

    def __init__(self, interval_ms: int = 500, parent: QObject | None = None, was_enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled() if was_enabled is None else was_enabled
        self.collections = 0
        self.busy: Callable[[], bool] | None = None
        """True while an answer streams: a due full collection waits (see the module doc)."""
        self._clock = clock
        self._full_due: float | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        gc.disable()
        self._timer.start()

    def freeze_start(self) -> None:
        """Move every object tracked now into the permanent generation (``gc.freeze``).

        The launcher runs the start-up with collection off and calls this once the window and
        services are built: what the start-up made (modules, classes, the window's wrappers)
        lives as long as the process, so later collections, during a stream too, never walk it
        again. What the start-up left as cyclic garbage (a few hundred objects, measured) stays.
        """
        gc.freeze()

    def check(self) -> None:
        """Collect the oldest generation whose threshold has been crossed (if any; a full
        collection not while :attr:`busy`, up to :data:`FULL_WAIT_MAX_S`)."""
        thresholds = gc.get_threshold()
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                if generation == 2 and self._full_waits():
                    continue
                gc.collect(generation)
                self.collections += 1
                return

    def _full_waits(self) -> bool:
        """A due full collection waits now (an answer streams, and it has not waited too long)."""
        if self.busy is None or not self.busy():
            self._full_due = None
            return False
        now = self._clock()
        if self._full_due is None:
            self._full_due = now
        if now - self._full_due < FULL_WAIT_MAX_S:
            return True
        self._full_due = None
        return False

    def stop(self) -> None:
        """Stop the timer and give collection back to Python."""
        self._timer.stop()
        gc.unfreeze()  # what freeze_start kept is collectable again
        if self._was_enabled:
            gc.enable()
