"""Shared widgets and helpers (app/ui/widgets/common.py): error texts without keys, background
tasks that report failures, values that shrink to fit and are never cut, readable banners on
any palette, elided labels, Esc closing a window, layouts made with their margins, labels
whose text can be selected, short text boxes."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QVBoxLayout, QWidget

from app.core.errors import InvalidParams
from app.core.services import Services
from app.ui.widgets.common import (
    ElidedLabel,
    EscapeClosesWindow,
    FitLabel,
    MessageLabel,
    Tile,
    contrast_ratio,
    error_text,
    fit_to_screen,
    is_dark,
    laid_out,
    message_colours,
    selectable_label,
    spawn,
    text_box,
    tone,
)


def test_saved_messages_read_well_on_both_palettes(qtbot: Any, services: Services) -> None:
    """"Saved for this session." was pale green on green: the text must stand out from its
    background on a light and a dark palette, also when the palette changes after it is shown."""
    import re

    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QWidget

    from app.ui.widgets.common import MessageLabel, contrast_ratio

    holder = QWidget()
    qtbot.addWidget(holder)
    label = MessageLabel(holder)

    def ratio() -> float:
        fg, bg = re.findall(r"(?:color|background): (#[0-9a-f]{6})", label.styleSheet())
        return contrast_ratio(QColor(fg), QColor(bg))

    for window, text in (("#f3f4f6", "#1f2328"), ("#1b1d21", "#e6e8eb"), ("#f3f4f6", "#1f2328")):
        pal = holder.palette()
        pal.setColor(QPalette.ColorRole.Window, QColor(window))
        pal.setColor(QPalette.ColorRole.WindowText, QColor(text))
        holder.setPalette(pal)  # the theme switched while the message is shown
        if not label.text():
            label.show_message("Saved for this session.", "ok")
        assert ratio() >= 4.5, (window, label.styleSheet())


def test_error_texts_are_user_messages_with_keys_redacted() -> None:
    assert error_text(InvalidParams("bad value.", hint="Fix it.")) == "bad value. Fix it."
    text = error_text(RuntimeError("failed with sk-abcdefghijklmnopqrstuvwx"))
    assert text.startswith("RuntimeError: failed with") and "abcdefghijklmnop" not in text


def test_spawned_tasks_report_failures_and_stay_quiet_when_cancelled(qloop: Any) -> None:
    errors: list[str] = []

    async def fail() -> None:
        raise InvalidParams("no good.")

    async def scenario() -> None:
        task = spawn(fail(), errors.append)
        await asyncio.wait([task], timeout=5)
        slow = spawn(asyncio.sleep(30), errors.append)
        await asyncio.sleep(0)
        slow.cancel()
        await asyncio.wait([slow], timeout=5)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 10))
    assert errors == ["no good."]


def test_a_fit_label_shrinks_its_font_before_eliding(qtbot: Any) -> None:
    label = FitLabel("51,143 tok/s", min_point_size=6.0)
    qtbot.addWidget(label)
    wide = label.fontMetrics().horizontalAdvance(label.text())
    assert label.fits(wide + 4) and label.fitted_font(wide + 4).pointSizeF() == label.font().pointSizeF()
    smaller = label.fitted_font(int(wide * 0.7))
    assert smaller.pointSizeF() < label.font().pointSizeF() and label.fits(int(wide * 0.7))
    assert not label.fits(5)  # even the smallest font does not fit: then it is elided
    assert label.minimumSizeHint().width() == 0  # it never widens its layout


def test_a_tile_shows_its_value_whole(qtbot: Any) -> None:
    tile = Tile("speed")
    qtbot.addWidget(tile)
    assert tile.value() == "\u2014"
    tile.set_value("42.0 tok/s")
    tile.resize(200, 60)
    tile.show()
    assert tile.value() == "42.0 tok/s" and tile.value_fits()


def test_banner_colours_read_well_and_follow_the_palette(qtbot: Any) -> None:
    for window, text in (("#ffffff", "#1f2328"), ("#f3f4f6", "#1f2328"), ("#1b1d21", "#e6e8eb"), ("#000000", "#ffffff")):
        for kind in ("error", "warning", "info", "ok"):
            fg, bg = message_colours(kind, QColor(window), QColor(text))
            assert contrast_ratio(fg, bg) >= 4.5, (window, kind)
    assert contrast_ratio(QColor("#000000"), QColor("#ffffff")) == 21.0
    holder = QWidget()
    qtbot.addWidget(holder)
    pal = holder.palette()
    pal.setColor(QPalette.ColorRole.Window, QColor("#1b1d21"))
    pal.setColor(QPalette.ColorRole.Text, QColor("#e6e8eb"))
    holder.setPalette(pal)
    assert is_dark(holder) and tone("error", holder) == "#ff8a80"
    assert tone("info", holder) == "#e6e8eb"  # no colour of its own: the palette's text


def test_a_message_label_hides_when_empty_and_tells_its_kind(qtbot: Any) -> None:
    holder = QWidget()
    qtbot.addWidget(holder)
    label = MessageLabel(holder)
    holder.show()
    assert not label.isVisible() and label.kind() == ""
    label.show_message("Could not save.", "warning")
    assert label.isVisible() and label.kind() == "warning" and "Could not save." == label.text()
    label.show_message("")
    assert not label.isVisible() and label.kind() == "" and label.text() == ""


def test_an_elided_label_keeps_the_whole_text_in_its_tooltip_and_stays_narrow(qtbot: Any) -> None:
    label = ElidedLabel("short", min_width=40)
    qtbot.addWidget(label)
    label.setText("a very long endpoint name that would widen the window")
    assert label.toolTip() == label.text()
    assert label.minimumSizeHint().width() == 40


def test_escape_closes_the_window_unless_a_child_takes_it(qtbot: Any) -> None:
    window = EscapeClosesWindow()
    qtbot.addWidget(window)
    QVBoxLayout(window).addWidget(QLineEdit())
    window.show()
    qtbot.keyClick(window, Qt.Key.Key_A)
    assert window.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.isVisible()


def test_fit_to_screen_leaves_sizes_alone_offscreen(qapp: Any) -> None:
    assert fit_to_screen(QSize(5000, 4000), QSize(0, 30)) == QSize(5000, 4000)


def test_laid_out_gives_the_widget_a_layout_with_its_margins_and_spacing(qtbot: Any) -> None:
    box = QWidget()
    qtbot.addWidget(box)
    lay = laid_out(box, QHBoxLayout, (1, 2, 3, 4), 5)
    assert isinstance(lay, QHBoxLayout) and box.layout() is lay
    m = lay.contentsMargins()
    assert (m.left(), m.top(), m.right(), m.bottom(), lay.spacing()) == (1, 2, 3, 4, 5)


def test_a_selectable_label_can_be_selected_and_wraps_unless_told(qtbot: Any) -> None:
    mono = QFont("Monospace")
    label = selectable_label("<b>x</b>", name="toolArguments", text_format=Qt.TextFormat.PlainText, font=mono)
    qtbot.addWidget(label)
    assert label.text() == "<b>x</b>" and label.objectName() == "toolArguments"
    assert label.textInteractionFlags() == Qt.TextInteractionFlag.TextSelectableByMouse
    assert label.wordWrap() and label.textFormat() == Qt.TextFormat.PlainText and label.font().family() == mono.family()
    plain = selectable_label(wrap=False)
    qtbot.addWidget(plain)
    assert not plain.wordWrap() and plain.textFormat() == Qt.TextFormat.AutoText and plain.objectName() == ""


def test_a_text_box_shows_its_placeholder_at_its_fixed_height(qtbot: Any) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    box = text_box("The prompt", 48, parent)
    assert box.parent() is parent and box.placeholderText() == "The prompt"
    assert box.minimumHeight() == box.maximumHeight() == 48 and box.toPlainText() == ""
