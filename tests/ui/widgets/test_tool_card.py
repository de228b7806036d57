"""A tool call's card: arguments pretty-printed or shown as written with the reason, the
result with its source, time and errors, editing and re-running; the schema badge."""

from __future__ import annotations

from typing import Any

from app.core.tools import ToolCall
from app.ui.widgets.tool_card import ToolCallCard, schema_verdict


def test_arguments_are_pretty_printed_and_the_result_shown(qtbot: Any) -> None:
    card = ToolCallCard(ToolCall("c1", "get_weather", '{"city":"Paris","days":2}'))
    qtbot.addWidget(card)
    assert card.arguments.text() == '{\n  "city": "Paris",\n  "days": 2\n}'
    assert not card.arguments_error.isVisibleTo(card) and not card.result.isVisibleTo(card)
    card.set_result('{"temp": 21}', source="mcp", server="local", elapsed_s=0.25, approval="allowed once",
                    message_id=7, branch=(1, 2))
    assert card.result_text == '{"temp": 21}' and card.info.text() == (
        "result \u00b7 MCP server local \u00b7 allowed once \u00b7 0.25 s")
    assert card.branch.text() == "\u2039 1/2 \u203a" and card.edit_button.isVisibleTo(card)


def test_arguments_that_are_not_json_are_shown_as_written_with_the_reason(qtbot: Any) -> None:
    card = ToolCallCard(ToolCall("c1", "f", '{"city": Paris}'))
    qtbot.addWidget(card)
    assert card.arguments.text() == '{"city": Paris}'
    assert card.arguments_error.isVisibleTo(card)
    assert card.arguments_error.text().startswith("arguments are not valid JSON: Expecting value")
    card.set_result("arguments are not valid JSON", is_error=True, source="error")
    assert card.is_error and "c62828" in card.result.styleSheet() and card.info.text().startswith("error")
    assert not card.edit_button.isVisibleTo(card)  # not stored yet: nothing to branch from


def test_an_edited_result_asks_for_a_rerun_and_cancel_restores_it(qtbot: Any) -> None:
    card = ToolCallCard(ToolCall("c1", "f", "{}"))
    qtbot.addWidget(card)
    card.set_result("old", source="stub", message_id=3)
    asked: list[tuple[int, str]] = []
    card.rerun_requested.connect(lambda mid, text: asked.append((mid, text)))
    card.start_edit()
    assert not card.result.isReadOnly() and card.rerun_button.isVisibleTo(card)
    card.result.setPlainText("typed")
    card.cancel_edit()
    assert card.result_text == "old" and card.result.isReadOnly() and not asked
    card.start_edit()
    card.result.setPlainText("new")
    card.rerun_button.click()
    assert asked == [(3, "new")] and card.result.isReadOnly()


def test_the_schema_verdict() -> None:
    assert schema_verdict({}) is None and schema_verdict({"loop": {"valid": None}}) is None
    assert schema_verdict({"loop": {"valid": True}}) == ("\u2713 valid", True)
    assert schema_verdict({"loop": {"valid": False, "invalid_reason": "$.a: 3 is not of type 'string'"}}) == (
        "\u2717 invalid: $.a: 3 is not of type 'string'", False)
