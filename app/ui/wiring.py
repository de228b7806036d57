"""Wiring by name: a widget's slots for another object's signals are named
``_on_<source>_<signal>`` (the style's slot naming), so one call connects them all. Imports
only QtCore: the main window uses it before it shows."""

from __future__ import annotations

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
