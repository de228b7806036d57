"""Garbage collection on the GUI thread only.

Python's cyclic collector runs in whichever thread happens to allocate when a threshold is
crossed - here often the local-model worker thread. If a cycle then holds a Qt object, the
object is destroyed off the GUI thread, which can crash the process. While the window runs,
automatic collection is switched off and this guard collects on a GUI-thread timer instead,
following the same generation thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadCollector(QObject):
    """Disables automatic ``gc`` and collects from a QTimer on the thread that owns it.

    Signals: none. Call :meth:`stop` (or delete it) to restore automatic collection.
    """

    def __init__(self, interval_ms: int = 500, parent: QObject | None = None, was_enabled: bool | None = None) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled() if was_enabled is None else was_enabled
        self.collections = 0
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
        """Collect the oldest generation whose threshold has been crossed (if any)."""
        thresholds = gc.get_threshold()
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                self.collections += 1
                return

    def stop(self) -> None:
        """Stop the timer and give collection back to Python."""
        self._timer.stop()
        gc.unfreeze()  # what freeze_start kept is collectable again
        if self._was_enabled:
            gc.enable()
