"""The Tools panel: functions and the response schema checked as you type, the content as a
ToolSetup, the MCP servers listed."""

from __future__ import annotations

from typing import Any

from app.core.tool_setup import FunctionEntry, ToolSetup
from app.ui.widgets.tools_panel import ToolsPanel


def test_a_function_is_checked_as_you_type(qtbot: Any) -> None:
    panel = ToolsPanel()
    qtbot.addWidget(panel)
    panel.add_button.click()
    assert panel.function_error.text().startswith("\u2713 'get_weather'")
    assert panel.function_list.item(0).text() == "get_weather"
    panel.function_edit.setPlainText('{"type": "function", "function": {"name": "f", '
                                     '"parameters": {"type": "object", "properties": {"n": {"minimum": "zero"}}}}}')
    assert panel.function_error.text() == ("function 1: tool 'f': parameters: $.properties.n.minimum: "
                                           "'zero' is not of type 'number'.")
    assert "color: #c62828" in panel.function_error.styleSheet()
    assert panel.function_list.item(0).text() == "f"
    panel.function_edit.setPlainText('{"type": "function", "function": {"name": "f",')
    assert panel.function_error.text().startswith("function 1: not valid JSON (line 1, column")


def test_the_schema_is_checked_as_you_type(qtbot: Any) -> None:
    panel = ToolsPanel()
    qtbot.addWidget(panel)
    panel.schema_check.setChecked(True)
    panel.schema_edit.setPlainText('{"type": "object", "properties": {"a": {"type": "strin"}}}')
    assert panel.schema_error.text().startswith("response schema: $.properties.a.type: ")
    panel.schema_edit.setPlainText('{"type": "object"}')
    assert panel.schema_error.text() == "\u2713 a valid JSON Schema"
    panel.json_mode_check.setChecked(True)
    assert not panel.schema_edit.isEnabled() and panel.setup().response_schema() is not None


def test_the_content_round_trips_with_stubs_enabling_and_choice(qtbot: Any) -> None:
    panel = ToolsPanel()
    qtbot.addWidget(panel)
    changes: list[int] = []
    panel.changed.connect(lambda: changes.append(1))
    panel.add_function()
    panel.stub_edit.setPlainText('{"temp": 21}')
    panel.choice_box.setCurrentText("get_weather")
    panel.steps_box.setValue(3)
    setup = panel.setup()
    assert setup.functions[0].stub == '{"temp": 21}' and setup.tool_choice == "get_weather" and setup.max_steps == 3
    assert setup.stubs() == {"get_weather": '{"temp": 21}'} and changes
    panel.function_list.item(0).setCheckState(panel.function_list.item(0).checkState().Unchecked)
    assert panel.setup().specs() == () and not panel.setup().functions[0].enabled
    other = ToolsPanel()
    qtbot.addWidget(other)
    other.set_setup(setup)
    assert other.setup() == setup and other.stub_edit.toPlainText() == '{"temp": 21}'
    other.remove_function()
    assert other.setup().functions == () and other.choice_box.currentText() == "auto"


def test_mcp_servers_are_listed_with_state_and_tools(qtbot: Any) -> None:
    panel = ToolsPanel()
    qtbot.addWidget(panel)
    panel.set_servers([("local", "ready (2 tools)", [("echo", "Echo"), ("add", "Add")]),
                       ("broken", "failed: no such command", [])])
    top = panel.server_tree.topLevelItem(0)
    assert (top.text(0), top.text(1), top.childCount(), top.child(1).text(0)) == ("local", "ready (2 tools)", 2, "add")
    assert panel.server_tree.topLevelItem(1).text(1) == "failed: no such command"
    panel.set_servers([])
    assert "No MCP servers" in panel.mcp_note.text()
    assert ToolSetup(use_mcp=True).active and not ToolSetup((FunctionEntry("{}", False),)).active
