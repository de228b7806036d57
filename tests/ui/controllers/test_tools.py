"""ToolsController through its public interface, without the window: real parts (session,
prompt editor, history, settings), a Tools panel made here and attached, and the real stdio
MCP server of tests/support. (The window end to end is in tests/ui/test_tools_window.py.)"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QTextCursor

from app.core.errors import ToolSchemaError
from app.core.mcp_config import McpServerConfig
from app.core.settings import Preset
from app.core.tool_setup import SETUP_KEY, FunctionEntry, ToolSetup
from app.core.tools import ToolCall
from app.ui.controllers.tools import ToolsController
from app.ui.widgets.tools_panel import ToolsPanel
from tests.ui.controllers.conftest import Parts

SERVER = str(Path(__file__).resolve().parents[2] / "support" / "mcp_servers.py")
WEATHER = json.dumps({"type": "function", "function": {
    "name": "get_weather", "description": "The weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})


@pytest.fixture
def control(parts: Parts, qloop: Any) -> Any:
    made = ToolsController(parts.services, parts.session, parts.editor, parts.parent)
    made.connect_sources()
    yield made
    qloop.run_until_complete(asyncio.wait_for(made.aclose(), 20))


@pytest.fixture
def panel(control: ToolsController, parts: Parts) -> ToolsPanel:
    made = ToolsPanel(parts.parent)
    control.attach(made)
    return made


def _local_server(parts: Parts) -> None:
    parts.services.settings.mcp_servers = [McpServerConfig(name="local", command=sys.executable,
                                                           args=[SERVER, "stdio"])]  # fmt: skip


def _drive(qloop: Any, coro: Any, timeout: float = 40) -> Any:
    return qloop.run_until_complete(asyncio.wait_for(coro, timeout))


def test_the_controller_is_the_sessions_tool_source(control: ToolsController, parts: Parts) -> None:
    assert parts.session.tool_source is control
    assert not control.prepare().active  # no panel yet: no tools


def test_the_panels_functions_stubs_and_limits_make_the_send(control: ToolsController, panel: ToolsPanel,
                                                             parts: Parts) -> None:  # fmt: skip
    setup = ToolSetup((FunctionEntry(WEATHER, True, "sunny"), FunctionEntry(WEATHER.replace("get_weather", "off"), False)),
                      tool_choice="get_weather")  # fmt: skip
    panel.set_setup(setup)
    config = control.prepare()
    assert [s.name for s in config.specs] == ["get_weather"] and dict(config.stubs) == {"get_weather": "sunny"}
    assert config.tool_choice == "get_weather" and config.servers is None and config.setup == setup.to_json()
    assert config.max_steps == parts.services.settings.max_tool_steps  # the settings' limit unless the panel sets one
    panel.set_setup(ToolSetup((FunctionEntry(WEATHER),), max_steps=3))
    assert control.prepare().max_steps == 3


def test_a_tool_choice_that_names_no_offered_function_is_refused(control: ToolsController, panel: ToolsPanel) -> None:
    panel.set_setup(ToolSetup((FunctionEntry(WEATHER, False),)))  # off: not offered
    panel.choice_box.addItem("get_weather")  # what the panel offered before the function was turned off
    panel.choice_box.setCurrentText("get_weather")
    with pytest.raises(ToolSchemaError) as caught:
        control.prepare()
    assert "no offered function is called 'get_weather'" in caught.value.user_message()
    assert "Pick auto" in caught.value.user_message()


def test_configured_servers_are_listed_before_they_start(control: ToolsController, parts: Parts) -> None:
    _local_server(parts)
    parts.services.settings.mcp_servers.append(McpServerConfig(name="off", command="x", enabled=False))
    panel = ToolsPanel(parts.parent)
    control.attach(panel)
    assert panel.server_tree.topLevelItemCount() == 1  # the disabled one is not listed
    item = panel.server_tree.topLevelItem(0)
    assert (item.text(0), item.text(1)) == ("local", "not started") and "turn on" in panel.mcp_note.text()
    assert not panel.start_button.isHidden()
    assert control.servers is None  # listing does not start anything


def test_offering_mcp_tools_starts_the_servers_lists_their_tools_and_offers_them(
    control: ToolsController, panel: ToolsPanel, parts: Parts, qloop: Any
) -> None:
    _local_server(parts)

    async def scenario() -> None:
        panel.mcp_check.setChecked(True)  # the person turns the MCP servers on
        servers = control.servers
        assert servers is not None
        await asyncio.wait_for(servers.wait_started(), 20)
        for _ in range(100):  # the listing follows the state on the loop's next turn
            if panel.server_tree.topLevelItem(0).text(1).startswith("ready"):
                break
            await asyncio.sleep(0.05)
        item = panel.server_tree.topLevelItem(0)
        assert item.text(0) == "local" and item.text(1).startswith("ready (")
        assert {"echo", "add", "crash"} <= {item.child(i).text(0) for i in range(item.childCount())}
        panel.set_setup(ToolSetup((FunctionEntry(WEATHER),), use_mcp=True))
        config = control.prepare()
        names = [s.name for s in config.specs]
        assert names[0] == "get_weather" and {"echo", "add"} <= set(names) and config.servers is servers
        assert config.approve is not None
        assert control.start_servers() is servers  # started once
        await asyncio.wait_for(control.aclose(), 20)
        assert control.servers is None

    _drive(qloop, scenario())


@pytest.mark.parametrize(("button", "answer", "said"), [("Allow once", "once", "allowed once"),
                                                         ("Always for this server", "always", "always allowed for this server"),
                                                         ("Deny", "deny", "denied")])  # fmt: skip
def test_a_call_asks_without_blocking_and_the_answer_is_remembered(control: ToolsController, qloop: Any,
                                                                   button: str, answer: str, said: str) -> None:  # fmt: skip
    call = ToolCall("call_7", "add", '{"a": 1, "b": 2}')

    async def scenario() -> None:
        asking = asyncio.ensure_future(control.approve(call, "local"))
        for _ in range(100):  # the dialog opens on the loop's next turn
            if control.approval_box is not None:
                break
            await asyncio.sleep(0.01)
        box = control.approval_box
        assert box is not None and box.isVisible()  # shown, and this coroutine goes on: nothing blocks
        assert "<b>add</b>" in box.text() and "<b>local</b>" in box.text() and '"a": 1' in box.informativeText()
        assert control.approval_of("call_7") is None  # not answered yet
        next(b for b in box.buttons() if b.text() == button).click()
        assert await asyncio.wait_for(asking, 5) == answer
        assert control.approval_box is None and control.approval_of("call_7") == said

    _drive(qloop, scenario())


def test_closing_the_question_or_quitting_denies(control: ToolsController, qloop: Any) -> None:
    async def ask(call_id: str) -> Any:
        asking = asyncio.ensure_future(control.approve(ToolCall(call_id, "add"), "local"))
        for _ in range(100):
            if control.approval_box is not None:
                break
            await asyncio.sleep(0.01)
        assert control.approval_box is not None
        return asking

    async def scenario() -> None:
        asking = await ask("c1")
        control.approval_box.reject()  # type: ignore[union-attr]  # Escape / the window's close button
        assert await asyncio.wait_for(asking, 5) == "deny"
        asking = await ask("c2")
        await asyncio.wait_for(control.aclose(), 10)  # quitting while asking
        assert await asyncio.wait_for(asking, 5) == "deny" and control.approval_of("c2") == "denied"

    _drive(qloop, scenario())


def test_a_preset_keeps_the_tools_and_brings_them_back(control: ToolsController, panel: ToolsPanel,
                                                       parts: Parts) -> None:  # fmt: skip
    panel.set_setup(ToolSetup((FunctionEntry(WEATHER, True, "sunny"),)))
    parts.services.settings.presets = [Preset(name="weather", params={})]  # stored by the chat controller
    parts.editor.save_preset("weather")
    saved = next(p for p in parts.services.settings.presets if p.name == "weather")
    assert saved.tools is not None and saved.tools["functions"][0]["stub"] == "sunny"
    panel.set_setup(ToolSetup())
    parts.services.settings.presets = [*parts.services.settings.presets, Preset(name="plain", params={})]
    parts.editor.set_presets(parts.services.settings.presets)
    parts.editor.preset_box.activated.emit(parts.editor.preset_box.findText("plain"))  # no tools kept: unchanged
    assert panel.setup().functions == ()
    parts.editor.preset_box.activated.emit(parts.editor.preset_box.findText("weather"))
    assert panel.setup().functions == (FunctionEntry(WEATHER, True, "sunny"),)


def test_a_reopened_conversation_brings_its_tools_back(control: ToolsController, panel: ToolsPanel,
                                                       parts: Parts) -> None:  # fmt: skip
    setup = ToolSetup((FunctionEntry(WEATHER, True, "rain"),), tool_choice="required")
    history = parts.services.history
    with_tools = history.create_conversation("with tools", params={SETUP_KEY: setup.to_json()}).id
    without = history.create_conversation("without").id
    parts.session.open(with_tools)
    assert panel.setup() == setup
    parts.session.open(without)  # a conversation that kept no tools leaves the panel as it is
    assert panel.setup() == setup


def _library_items(panel: ToolsPanel) -> dict[str, Any]:
    """The panel's prompt and resource items by their text (under the first server)."""
    server = panel.server_tree.topLevelItem(0)
    found = {}
    for i in range(server.childCount()):
        group = server.child(i)
        for j in range(group.childCount()):
            found[group.child(j).text(0)] = group.child(j)
    return found


async def _started(control: ToolsController, panel: ToolsPanel) -> Any:
    panel.mcp_check.setChecked(True)
    assert control.servers is not None
    await asyncio.wait_for(control.servers.wait_started(), 20)
    for _ in range(100):  # the listing follows the state on the loop's next turn
        if "prompt" in panel.server_tree.topLevelItem(0).text(1):
            break
        await asyncio.sleep(0.05)
    return _library_items(panel)


async def _settled(control: ToolsController) -> None:
    while control._tasks:
        await asyncio.wait(set(control._tasks), timeout=20)


async def _inserted(control: ToolsController, panel: ToolsPanel, item: Any) -> None:
    """Insert ``item`` as a double-click does, and wait until its request is done."""
    panel._insert(item)
    await _settled(control)


@pytest.fixture
def said(control: ToolsController, parts: Parts) -> list[tuple[str, bool]]:
    """The status messages (message, error) of a controller with the local test server."""
    _local_server(parts)
    seen: list[tuple[str, bool]] = []
    control.status.connect(lambda message, error: seen.append((message, error)))
    return seen


def test_a_prompt_asks_its_arguments_and_goes_into_the_message_after_the_typed_text(
    control: ToolsController, panel: ToolsPanel, parts: Parts, qloop: Any, said: list[tuple[str, bool]]
) -> None:
    parts.editor.set_message("My own words.")
    parts.editor.message_edit.moveCursor(QTextCursor.MoveOperation.End)  # where typing leaves it

    async def scenario() -> None:
        items = await _started(control, panel)
        assert {"greet", "review", "broken", "hello", "logo", "big"} <= set(items)
        assert items["greet"].text(1) == "prompt" and "Arguments: who*" in items["greet"].toolTip(0)
        panel.server_tree.setCurrentItem(panel.server_tree.topLevelItem(0))
        assert not panel.insert_button.isEnabled()  # a server is not something to insert
        panel.server_tree.setCurrentItem(items["greet"])
        assert panel.insert_button.isEnabled()
        panel.insert_button.click()
        dialog = control.prompt_dialog
        assert dialog is not None and dialog.isVisible()
        assert not dialog.insert_button.isEnabled()  # "who" is required
        dialog.fields["who"].setText("Ada")
        assert dialog.insert_button.isEnabled()
        dialog.insert_button.click()
        await _settled(control)
        assert parts.editor.message() == "My own words.\n\nSay hello to Ada."
        assert said[-1] == ("Inserted the prompt 'greet' from 'local' into the message.", False)
        panel.server_tree.setCurrentItem(items["broken"])
        panel.insert_button.click()  # no arguments: no dialog
        await _settled(control)
        assert said[-1][1] and "prompt 'broken'" in said[-1][0] and "Error rendering prompt broken" in said[-1][0]
        assert parts.editor.message() == "My own words.\n\nSay hello to Ada."  # nothing lost, nothing added

    _drive(qloop, scenario())


def test_resources_go_into_the_message_binary_refused_and_long_ones_cut(
    control: ToolsController, panel: ToolsPanel, parts: Parts, qloop: Any, said: list[tuple[str, bool]]
) -> None:
    from app.tools.mcp_library import MAX_INSERT_CHARS

    async def scenario() -> None:
        items = await _started(control, panel)
        await _inserted(control, panel, items["hello"])  # a double-click on the item
        assert parts.editor.message() == "hello from the resource"
        await _inserted(control, panel, items["logo"])
        assert said[-1][1] and "blob://logo" in said[-1][0] and "no text" in said[-1][0]
        assert parts.editor.message() == "hello from the resource"
        parts.editor.set_message("above\nbelow")
        cursor = parts.editor.message_edit.textCursor()
        cursor.setPosition(len("above\n"))  # the cursor between two lines
        parts.editor.message_edit.setTextCursor(cursor)
        await _inserted(control, panel, items["hello"])
        assert parts.editor.message() == "above\n\nhello from the resource\n\nbelow"  # a blank line each side
        parts.editor.set_message("")
        await _inserted(control, panel, items["big"])
        assert parts.editor.message() == "x" * MAX_INSERT_CHARS
        assert said[-1] == (f"Inserted 'note://big' from 'local', cut to its first {MAX_INSERT_CHARS:,} characters "
                            f"({200_000 - MAX_INSERT_CHARS:,} more were left out).", True)  # fmt: skip

    _drive(qloop, scenario())


def test_a_resource_template_asks_its_variables_and_the_resource_goes_in(
    control: ToolsController, panel: ToolsPanel, parts: Parts, qloop: Any, said: list[tuple[str, bool]]
) -> None:
    async def scenario() -> None:
        items = await _started(control, panel)
        panel._insert(items["topic_notes"])
        dialog = control.prompt_dialog
        assert dialog is not None and list(dialog.fields) == ["topic", "lang"]
        assert not dialog.insert_button.isEnabled()
        dialog.fields["topic"].setText("owls")
        dialog.insert_button.click()
        await _settled(control)
        assert parts.editor.message() == "notes about owls (en)"
        assert said[-1] == ("Inserted 'topic://owls/notes' from 'local' into the message.", False)

    _drive(qloop, scenario())


def test_start_servers_lists_their_prompts_without_offering_their_tools(
    control: ToolsController, panel: ToolsPanel, parts: Parts, qloop: Any
) -> None:
    _local_server(parts)
    control.refresh_servers()

    async def scenario() -> None:
        panel.start_button.click()
        servers = control.servers
        assert servers is not None and not panel.mcp_check.isChecked()
        await asyncio.wait_for(servers.wait_started(), 20)
        control.refresh_servers()
        assert panel.start_button.isHidden()
        assert "greet" in _library_items(panel)
        config = control.prepare()
        assert config.servers is None and not config.specs  # nothing offered to the model

    _drive(qloop, scenario())
