"""PITFALLS canary: PySide6 6.12.0 on Python 3.11 drops a reference to None on every void
method call and aborts after a few thousand. This must never regress."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_void_qt_calls_keep_none_refcount(qapp: object) -> None:
    label = QLabel()
    for _ in range(100):  # warm up caches
        label.setText("x")
    before = sys.getrefcount(None)
    for i in range(5000):
        label.setText(str(i % 7))
        label.resize(10, 10)
    after = sys.getrefcount(None)
    assert after >= before - 50, f"None refcount fell by {before - after}: PySide6 is the broken 6.12.0"


def test_pyside_version_is_pinned_below_6_12() -> None:
    import PySide6

    major, minor = (int(x) for x in PySide6.__version__.split(".")[:2])
    assert (major, minor) < (6, 12)
