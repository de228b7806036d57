"""The Workbench's details tabs: the word diff of two answers."""

from __future__ import annotations

from typing import Any

from app.ui.workbench.details import DiffView


def test_replaced_words_are_kept_apart_in_the_diff(qapp: Any) -> None:
    """Seen in a real window: removed and added words ran together ("TheWhat", "isOne")."""
    view = DiffView()
    view.show_diff("The answer is two.", "What answer is One.", "left", "right")
    text = view.body.toPlainText()
    assert "The What" in text and "two One" in text and "TheWhat" not in text
    assert view.removed == ["The", "two"] and view.added == ["What", "One"]
    view.show_diff("a b", "a  c", "left", "right")  # whitespace between them already: nothing added
    assert view.body.toPlainText().count(" ") == 3
    view.deleteLater()


def test_a_cells_tool_calls_show_compactly_in_the_grid_and_pretty_printed_in_its_details(qapp: Any) -> None:
    from app.core.grid.cells import Cell
    from app.core.tools import ToolCall
    from app.ui.workbench.cell_delegate import preview_text
    from app.ui.workbench.details import AnswerView

    calls = (ToolCall("call_0", "get_weather", '{"city": "Paris"}'), ToolCall("call_1", "get_time", '{"tz": "CE'))
    cell = Cell(0, 0, status="done", text="", tool_calls=calls)
    assert preview_text(cell) == '→ get_weather({"city": "Paris"}) → get_time({"tz": "CE)'
    assert preview_text(Cell(0, 0, status="done", text="Sunny.", tool_calls=calls[:1])) == (
        '→ get_weather({"city": "Paris"})\nSunny.')
    view = AnswerView()
    view.show_cell(cell, "weather")
    assert not view.calls.isHidden()
    assert view.calls.text() == '→ get_weather  (call_0)\n{\n  "city": "Paris"\n}\n→ get_time  (call_1)\n{"tz": "CE'
    view.show_cell(Cell(0, 0, status="done", text="Paris"), "plain")
    assert view.calls.isHidden() and view.calls.text() == ""
    view.deleteLater()
