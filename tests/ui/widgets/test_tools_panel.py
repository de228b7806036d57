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


def test_prompts_and_resources_are_listed_under_their_server_and_inserted(qtbot: Any) -> None:
    from app.tools.mcp_library import McpPrompt, McpPromptArgument, McpResource, McpResourceTemplate
    from app.ui.widgets.mcp_prompt_dialog import McpPromptDialog

    panel = ToolsPanel()
    qtbot.addWidget(panel)
    greet = McpPrompt("local", "greet", description="Say hello", arguments=(McpPromptArgument("who", "whom", True),
                                                                           McpPromptArgument("tone")))  # fmt: skip
    note = McpResource("local", "a", uri="note://a", mime_type="text/plain")
    topic = McpResourceTemplate("local", "topic", arguments=(McpPromptArgument("t", "", True),), uri_template="t://{t}")
    panel.set_servers([("local", "ready (1 tool, 1 prompt, 1 resource)", [("echo", "Echo")]), ("other", "ready", [])],
                      prompts=[greet], resources=[note, McpResource("other", "", uri="note://b")],
                      templates=[topic])  # fmt: skip
    top = panel.server_tree.topLevelItem(0)
    assert [top.child(i).text(0) for i in range(top.childCount())] == ["echo", "Prompts (1)", "Resources (1)",
                                                                       "Templates (1)"]  # fmt: skip
    template_item = top.child(3).child(0)
    assert (template_item.text(1), template_item.toolTip(0)) == ("template", "t://{t}")
    assert top.child(1).isExpanded() and top.child(2).isExpanded() and not top.child(0).isExpanded()
    prompt_item, resource_item = top.child(1).child(0), top.child(2).child(0)
    assert (prompt_item.text(0), prompt_item.toolTip(0)) == ("greet", "Say hello\nArguments: who*, tone")
    assert (resource_item.text(0), resource_item.text(1)) == ("a", "text/plain")
    other = panel.server_tree.topLevelItem(1)
    assert other.child(0).child(0).text(0) == "note://b"  # no name: its URI
    asked: list[object] = []
    panel.insert_prompt.connect(asked.append)
    panel.insert_resource.connect(asked.append)
    panel.insert_template.connect(asked.append)
    assert not panel.insert_button.isEnabled()
    panel.server_tree.setCurrentItem(top.child(1))  # the group itself
    assert not panel.insert_button.isEnabled()
    panel.server_tree.setCurrentItem(prompt_item)
    panel.insert_button.click()
    panel.server_tree.itemDoubleClicked.emit(resource_item, 0)
    panel.server_tree.itemDoubleClicked.emit(template_item, 0)
    assert asked == [greet, note, topic]

    dialog = McpPromptDialog(greet)
    qtbot.addWidget(dialog)
    assert list(dialog.fields) == ["who", "tone"] and dialog.fields["who"].placeholderText() == "whom"
    assert not dialog.insert_button.isEnabled() and dialog.insert_button.toolTip() == "Fill in: who"
    dialog.fields["who"].setText("Ada")
    assert dialog.insert_button.isEnabled() and dialog.values() == {"who": "Ada", "tone": ""}
    asking = McpPromptDialog(topic)
    qtbot.addWidget(asking)
    assert asking.windowTitle() == "MCP resource: topic" and list(asking.fields) == ["t"]
