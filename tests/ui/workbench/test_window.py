"""Tests of app/ui/workbench/window.py: the window fits 1024 x 700, closes with its button and
Esc, and text typed just before closing counts as an edit."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.ui.workbench.test_edits import two_cases


def test_it_fits_1024x700_and_closes_with_its_button_and_esc(bench: Any, window: Any, qapp: Any) -> None:
    from app.ui import theme

    theme.apply(qapp)  # the app's stylesheet (padding, fonts), as at start
    try:
        bench.load_config(two_cases(), None)
        bench.resize(1024, 700)
        assert bench.minimumSizeHint().width() <= 1024 and bench.minimumSizeHint().height() <= 700
        bench.show()
        QTest.qWait(0)
        widgets = [bench.toolbar.widgetForAction(a) for a in bench.toolbar.actions()]
        shown = [w for w in widgets if w is not None]
        assert len(shown) >= 10 and all(w.isVisible() and w.geometry().right() <= bench.toolbar.width() for w in shown)
        assert bench.toolbar.sizeHint().width() <= bench.toolbar.width()  # nothing hidden behind an overflow arrow
        assert bench.table.viewport().height() > 150 and bench.tabs.height() > 120
    finally:
        qapp.setStyleSheet("")
    bench.close_action.trigger()
    assert not bench.isVisible()
    window.workbench_action.trigger()  # Ctrl+Shift+W / View > Workbench shows the same one again
    assert bench.isVisible() and window.dialogs["workbench"] is bench
    assert window.workbench_action.shortcut().toString() == "Ctrl+Shift+W"
    assert window.workbench_action in window.view_menu.actions()
    QTest.keyClick(bench, Qt.Key.Key_Escape)
    assert not bench.isVisible()


@pytest.mark.parametrize("field", ["description", "prompt"])
def test_text_typed_just_before_closing_counts_as_an_edit(bench: Any, window: Any, field: str) -> None:
    """Seen in a real window: a description typed, then Close at once (the field never lost
    focus, the prompt's pause had not passed) closed without asking."""
    from PySide6.QtWidgets import QMessageBox

    bench.set_config(bench.config)
    bench.dirty = False
    widget = bench.description if field == "description" else bench.prompt_edit
    widget.setFocus()
    QTest.keyClick(widget, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(widget, " typed last")
    assert not bench.dirty  # not applied yet
    bench.close_action.trigger()
    assert bench.isVisible() and bench.save_box is not None
    text = bench.config.description if field == "description" else bench.config.prompts[0].template
    assert text.endswith("typed last")
    bench.save_box.button(QMessageBox.StandardButton.Discard).click()
