"""The theme: a palette for the OS scheme in which disabled widgets look disabled."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor, QPalette

from app.ui import theme


def test_disabled_text_is_muted(qapp: Any) -> None:
    t = theme.apply(qapp)
    pal = qapp.palette()
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        assert pal.color(QPalette.ColorGroup.Active, role) == QColor(t.text)
        assert pal.color(QPalette.ColorGroup.Disabled, role) == QColor(t.muted)
    assert QColor(t.muted) != QColor(t.text)
