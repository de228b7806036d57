"""The Workbench grid as a Qt table model (app/ui/workbench/grid_model.py): variables and
assertions as editable columns, one column per variant showing its cell, edits that change
the config (or are refused with a message), coalesced repaints, and the footer row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from PySide6.QtCore import QModelIndex, Qt

from app.core.events import UsageReport
from app.core.grid.assertions import AssertResult
from app.core.grid.config import parse_grid_text
from app.core.grid.runner import GridRunner
from app.ui.workbench.grid_model import CELL_ROLE, FooterModel, GridTableModel, variable_names

GRID = """\
prompts: ["Capital of {{country}}? {{style}}"]
providers: [mock:echo, {id: "mock:echo", label: Second}]
defaultTest:
  assert: [{type: not-icontains, value: sorry}]
tests:
  - vars: {country: France, style: Short., extra: 1}
    assert: [{type: icontains, value: paris}]
  - vars: {country: Italy, style: ""}
"""
DISPLAY, EDIT, TIP = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole, Qt.ItemDataRole.ToolTipRole


def model(qapp: Any) -> tuple[GridTableModel, GridRunner]:
    m = GridTableModel()
    config = parse_grid_text(GRID, source="g.yaml")
    runner = GridRunner(None, config)  # type: ignore[arg-type]  # planned, never started
    m.set_config(config, runner)
    return m, runner


def test_columns_are_the_variables_then_asserts_then_the_variants(qapp: Any) -> None:
    m, _ = model(qapp)
    assert variable_names(m.config) == ["country", "style", "extra"]  # the prompt's first
    assert (m.rowCount(), m.columnCount(), m.fixed) == (2, 6, 4)
    headers = [m.headerData(c, Qt.Orientation.Horizontal) for c in range(6)]
    assert headers == ["country", "style", "extra", "Asserts", "mock:echo", "Second"]
    assert m.headerData(5, Qt.Orientation.Horizontal, TIP) == "Second\nmock:echo"
    assert m.headerData(1, Qt.Orientation.Vertical) == "2" and m.headerData(1, Qt.Orientation.Vertical, TIP) == "test 2"
    assert (m.variant_of(3), m.variant_of(4), m.column_of(1)) == (None, 0, 5)
    assert m.rowCount(m.index(0, 0)) == 0 and m.columnCount(m.index(0, 0)) == 0


def test_case_cells_show_their_text_and_variant_cells_their_cell(qapp: Any) -> None:
    m, runner = model(qapp)
    assert m.data(m.index(0, 0)) == "France" and m.data(m.index(1, 1)) == ""
    assert m.data(m.index(0, 3)) == "icontains: paris"
    assert "every case also checks: not-icontains: sorry" in m.data(m.index(0, 3), TIP)
    cell = runner.cell(0, 1)
    assert cell is not None and m.data(m.index(0, 5), CELL_ROLE) is cell
    cell.status, cell.text, cell.error = "done", "Paris", None
    cell.usage, cell.cost_usd = UsageReport(3, 1), Decimal(0)
    cell.asserts = [AssertResult("icontains", True, "found")]
    assert m.data(m.index(0, 5)) == "Paris"
    assert "✔ icontains: found" in m.data(m.index(0, 5), TIP)
    assert m.data(m.index(0, 5), Qt.ItemDataRole.BackgroundRole) is None
    flags = m.flags(m.index(0, 0))
    assert flags & Qt.ItemFlag.ItemIsEditable and not m.flags(m.index(0, 4)) & Qt.ItemFlag.ItemIsEditable
    m.editable = False  # while a run goes on
    assert not m.flags(m.index(0, 0)) & Qt.ItemFlag.ItemIsEditable
    assert m.data(QModelIndex()) is None


def test_edits_change_the_config_or_are_refused_with_a_message(qapp: Any, qtbot: Any) -> None:
    m, _ = model(qapp)
    with qtbot.waitSignal(m.config_edited, timeout=2000) as edited:
        assert m.setData(m.index(1, 1), "Long.", EDIT)
    assert dict(edited.args[0].tests[1].vars) == {"country": "Italy", "style": "Long."}
    assert m.data(m.index(1, 1)) == "Long."
    assert not m.setData(m.index(1, 1), "Long.", EDIT)  # unchanged: no edit
    with qtbot.waitSignal(m.config_edited, timeout=2000):
        assert m.setData(m.index(1, 3), "icontains: rome\nnot-contains: Paris", EDIT)
    assert [a.type for a in m.config.tests[1].asserts] == ["icontains", "not-contains"]
    with qtbot.waitSignal(m.edit_failed, timeout=2000) as failed:
        assert not m.setData(m.index(0, 3), "webhook: x", EDIT)
    assert "webhook" in failed.args[0]
    assert [a.type for a in m.config.tests[0].asserts] == ["icontains"]  # unchanged
    assert not m.setData(m.index(0, 4), "typed into a result", EDIT)
    assert not m.setData(m.index(0, 0), "x", DISPLAY)


def test_streamed_changes_are_coalesced_into_one_repaint(qapp: Any, qtbot: Any) -> None:
    m, runner = model(qapp)
    changed: list[tuple[int, int]] = []
    m.dataChanged.connect(lambda a, b, *_: changed.append((a.row(), a.column())))
    cell = runner.cell(1, 0)
    assert cell is not None
    for _ in range(20):
        m.on_cell(cell, "delta")
    with qtbot.waitSignal(m.cells_flushed, timeout=2000) as flushed:
        pass
    assert flushed.args == [{(1, 0)}] and changed == [(1, 4)]
    m.flush()  # nothing dirty: nothing repainted
    assert changed == [(1, 4)]


def test_the_footer_sums_each_variant_once_cells_end(qapp: Any) -> None:
    m, runner = model(qapp)
    footer = FooterModel(m)
    assert (footer.rowCount(), footer.columnCount()) == (1, 6)
    assert footer.data(footer.index(0, 0)) == "Summary" and footer.data(footer.index(0, 1)) is None
    assert footer.data(footer.index(0, 4)) == "not run"
    for row in (0, 1):
        cell = runner.cell(row, 0)
        assert cell is not None
        cell.status, cell.latency_s, cell.cost_usd = "done", 1.0 + row, Decimal("0.001")
        cell.asserts = [AssertResult("icontains", row == 0, "")]
    assert footer.data(footer.index(0, 4)) == "$0.002000 · mean 1.50 s · p95 2.00 s · 1/2 pass"
    assert footer.data(footer.index(0, 5)) == "not run"
    assert footer.data(footer.index(0, 4), Qt.ItemDataRole.FontRole).bold()
    assert footer.headerData(0, Qt.Orientation.Vertical) == "Σ"
    m.set_config(parse_grid_text("prompts: [hi]\nproviders: [mock:echo]\n", source="g.yaml"))
    assert footer.columnCount() == 2 and footer.data(footer.index(0, 1)) == "not run"
