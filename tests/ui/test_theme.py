"""The theme: a palette for the OS scheme in which disabled widgets look disabled."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel

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


def test_applying_the_same_theme_again_repolishes_nothing(qapp: Any) -> None:
    """Start-up applies the system theme to the bare frame, then the saved settings (usually
    the same): every style, palette or font change re-polishes each widget, so only what
    changed is set."""
    label = QLabel("x")
    seen: list[str] = []

    class Watch(QObject):
        def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
            if event.type() in (QEvent.Type.StyleChange, QEvent.Type.PaletteChange, QEvent.Type.FontChange):
                seen.append(event.type().name)
            return False

    try:
        theme.apply(qapp, "light", 11)
        label.ensurePolished()
        qapp.processEvents()  # the changes of that first apply are delivered
        watch = Watch()
        label.installEventFilter(watch)
        assert theme.apply(qapp, "light", 11) is theme.LIGHT
        qapp.processEvents()
        assert seen == []
        theme.apply(qapp, "dark", 11)  # a real change still reaches the widgets
        qapp.processEvents()
        assert "PaletteChange" in seen and qapp.palette().color(QPalette.ColorRole.Window) == QColor(theme.DARK.window)
    finally:
        theme.apply(qapp)
