"""Wiring by name: a widget's slots for another object's signals are named
``_on_<source>_<signal>`` (the style's slot naming), so one call connects them all. Imports
only QtCore: the main window uses it before it shows."""

from __future__ import annotations

import re

from PySide6.QtCore import QObject, Signal


def connect_slots(source: QObject, target: object, prefix: str) -> int:
    """Connect every Qt signal of ``source`` to the method ``prefix + <signal name>`` of
    ``target`` where it has one (slots named ``_on_<source>_<signal>``, as the style asks);
    return how many were connected."""
    count = 0
    for name in dir(type(source)):
        if isinstance(getattr(type(source), name, None), Signal):
            slot = getattr(target, prefix + name, None)
            if callable(slot):
                getattr(source, name).connect(slot)
                count += 1
    return count


class RunEventSlots:
    """A mixin for receivers of ``BackendManager.run_event`` (connected by :func:`connect_slots`
    as ``_on_backend_run_event``): each event goes to the method named for its type,
    ``_on_run_<kind>(event)`` (``_on_run_text`` for RunText, ``_on_run_finished`` for
    RunFinished...), where the class has one; other events are ignored. A receiver that shows
    the streamed text connects ``run_delta`` too: ``_on_backend_run_delta = RunEventSlots.dispatch``."""

    def dispatch(self, event: object) -> None:
        """Call the slot of ``event``'s type, if there is one."""
        slot = getattr(self, run_slot_name(type(event)), None)
        if slot is not None:
            slot(event)

    _on_backend_run_event = dispatch


_SLOT_NAMES: dict[type, str] = {}


def run_slot_name(kind: type) -> str:
    """The slot of a run event's type: ``_on_run_text`` for RunText."""
    name = _SLOT_NAMES.get(kind)
    if name is None:
        name = _SLOT_NAMES[kind] = "_on_run_" + re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__[3:]).lower()
    return name
