"""Painting and editing the Workbench's cells (app/ui/workbench/cell_delegate.py): the verdict
of a cell, its badge and tint painted, and the Asserts column edited in a multi-line editor
that Enter does not commit."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette
from PySide6.QtWidgets import QLineEdit, QStyleOptionViewItem, QTableView, QWidget

from app.core.grid.assertions import AssertResult
from app.core.grid.cells import Cell
from app.ui.workbench.cell_delegate import BADGES, AssertEditor, CellDelegate, verdict_of
from tests.ui.workbench.test_grid_model import model


def test_the_verdict_of_a_cell() -> None:
    assert verdict_of(None) == "idle"
    assert verdict_of(Cell(0, 0, status="invalid")) == verdict_of(Cell(0, 0, status="failed")) == "ERROR"
    assert verdict_of(Cell(0, 0, status="cancelled")) == "STOPPED"
    assert verdict_of(Cell(0, 0, status="done")) == "done"  # no assertions: no pass or fail
    assert verdict_of(Cell(0, 0, status="done", asserts=[AssertResult("contains", True, "")])) == "PASS"
    assert verdict_of(Cell(0, 0, status="done", asserts=[AssertResult("contains", False, "")])) == "FAIL"
    assert verdict_of(Cell(0, 0, status="running")) == "running"


def paint(qapp: Any, status: str, passed: bool | None = None, base: str = "#ffffff") -> QImage:
    m, runner = model(qapp)
    cell = runner.cell(0, 0)
    assert cell is not None
    cell.status, cell.text = status, "Paris is the capital."
    if passed is not None:
        cell.asserts = [AssertResult("icontains", passed, "")]
    delegate = CellDelegate(m)
    image = QImage(200, 92, QImage.Format.Format_RGB32)
    image.fill(QColor("#123456"))
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 200, 92)
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.Base, QColor(base))
    option.palette = palette
    option.font = QWidget().font()
    painter = QPainter(image)
    delegate.paint(painter, option, m.index(0, m.column_of(0)))
    painter.end()
    return image


def badge_pixels(image: QImage, colour: str) -> int:
    """Pixels of ``colour`` where the badge is painted (the cell's top-left corner)."""
    return sum(image.pixelColor(x, y) == QColor(colour) for x in range(0, 60) for y in range(0, 22))


def test_a_passing_cell_gets_a_green_badge_and_tint_and_a_failing_one_red(qapp: Any) -> None:
    passing = paint(qapp, "done", True)
    failing = paint(qapp, "done", False)
    assert passing.pixelColor(199, 91) == QColor(BADGES["PASS"][1])  # the light tint, bottom right
    assert failing.pixelColor(199, 91) == QColor(BADGES["FAIL"][1])
    assert badge_pixels(passing, BADGES["PASS"][3]) > 20  # the badge, top left
    assert badge_pixels(failing, BADGES["FAIL"][3]) > 20 and badge_pixels(failing, BADGES["PASS"][3]) == 0
    dark = paint(qapp, "done", True, base="#1b1d21")
    assert dark.pixelColor(199, 91) == QColor(BADGES["PASS"][2])
    queued = paint(qapp, "queued")
    assert queued.pixelColor(199, 91) == QColor("#123456")  # no tint


def test_the_asserts_column_edits_in_a_multi_line_editor(qtbot: Any) -> None:
    m, _ = model(None)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(m)
    delegate = CellDelegate(m, view)
    view.setItemDelegate(delegate)
    view.show()
    asserts = m.index(0, m.fixed - 1)
    editor = delegate.createEditor(view.viewport(), QStyleOptionViewItem(), asserts)
    assert isinstance(editor, AssertEditor)
    delegate.setEditorData(editor, asserts)
    assert editor.toPlainText() == "icontains: paris"
    qtbot.keyClick(editor, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # a new line, not a commit
    qtbot.keyClicks(editor, "not-contains: Rome")
    assert editor.toPlainText() == "icontains: paris\nnot-contains: Rome"
    delegate.setModelData(editor, m, asserts)
    assert [a.type for a in m.config.tests[0].asserts] == ["icontains", "not-contains"]
    variable = delegate.createEditor(view.viewport(), QStyleOptionViewItem(), m.index(0, 0))
    assert isinstance(variable, QLineEdit)
    delegate.setEditorData(variable, m.index(0, 0))
    assert variable.text() == "France"
    assert delegate.sizeHint(QStyleOptionViewItem(), asserts).height() == 92
