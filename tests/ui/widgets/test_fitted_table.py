"""The fitted table (app/ui/widgets/fitted_table.py): its own viewport looks and behaves as
Qt's, and the columns that fit are kept, most important first."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QTableWidget

from app.ui.widgets.fitted_table import FittedTable

COLUMNS = ("Model", "Prompt", "Completion", "Cost")


def _table(qtbot: Any, width: int) -> FittedTable:
    table = FittedTable(COLUMNS, stretch="Model", priority=("Cost", "Prompt", "Completion"))
    qtbot.addWidget(table)
    table.resize(width, 200)
    table.show()
    qtbot.waitExposed(table)
    return table


def test_the_viewport_is_set_up_as_qts_own(qtbot: Any) -> None:
    table = _table(qtbot, 400)
    plain = QTableWidget(0, 2)
    qtbot.addWidget(plain)
    ours, qts = table.viewport(), plain.viewport()
    assert ours.objectName() == qts.objectName() == "qt_scrollarea_viewport"
    assert ours.backgroundRole() == qts.backgroundRole()  # the white of a list, not the window's grey
    assert ours.autoFillBackground() == qts.autoFillBackground()
    assert ours.focusProxy() is table


def test_a_narrow_table_keeps_the_important_columns(qtbot: Any) -> None:
    wide, narrow = _table(qtbot, 600), _table(qtbot, 150)
    assert wide.visible_columns() == list(COLUMNS)
    assert "Model" in narrow.visible_columns() and len(narrow.visible_columns()) < len(COLUMNS)
    assert narrow.horizontalScrollBar().value() == 0
