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


def test_the_chosen_theme_and_font_size_apply_and_go_back(qapp: Any) -> None:
    before = qapp.font().pointSizeF()
    try:
        assert theme.apply(qapp, "dark", 15) is theme.DARK
        assert qapp.palette().color(QPalette.ColorRole.Window) == QColor(theme.DARK.window)
        assert qapp.font().pointSizeF() == 15
        assert theme.apply(qapp, "light") is theme.LIGHT
        assert qapp.palette().color(QPalette.ColorRole.Window) == QColor(theme.LIGHT.window)
        assert qapp.font().pointSizeF() == before  # None: the system's size again
    finally:
        theme.apply(qapp)
