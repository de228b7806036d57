"""Tools in the main window end to end (offscreen, qasync loop, mock provider, real history
and a real stdio MCP server): the Tools panel, the tool loop, tool-call cards, re-running
from an edited result, approval, the schema badge, presets and reopening."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core.mcp_config import McpServerConfig
from app.core.services import Services
from app.core.settings import Preset
from app.core.tool_setup import SETUP_KEY, FunctionEntry, ToolSetup
from app.ui.backend_manager import BackendManager
from app.ui.main_window import MainWindow
from tests.conftest import expect_signal

SERVER = str(Path(__file__).resolve().parents[1] / "support" / "mcp_servers.py")
WEATHER = json.dumps({"type": "function", "function": {
    "name": "get_weather", "description": "The weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})


@pytest.fixture
def window(qloop: Any, qapp: Any, services: Services) -> Any:
    backend = BackendManager(services, model_id="mock:tools")
    win = MainWindow(services, backend=backend)
    win.show()
    yield win
    win.close()
    qloop.run_until_complete(asyncio.wait_for(win.tools.aclose(), 20))
    qloop.run_until_complete(backend.aclose())


def _run(qloop: Any, coro: Any, timeout: float = 40) -> None:
    qloop.run_until_complete(asyncio.wait_for(coro, timeout))


async def _send(win: MainWindow, text: str, timeout: float = 15) -> Any:
    """Send ``text``; the loop's result once it ended."""
    done = expect_signal(win.session.loop_done)
    win.editor.set_message(text)
    win.editor.send_button.click()
    (_gen, result), = await done.wait(timeout)
    return result


def _stored(win: MainWindow) -> list[Any]:
    cid = win.session.conversation_id
    assert cid is not None
    return win.services.history.messages(cid)


def _weather(win: MainWindow, stub: str = '{"temp": 21}') -> None:
    assert win.tools_panel is not None
    win.tools_panel.set_setup(ToolSetup((FunctionEntry(WEATHER, True, stub),)))


def test_a_stub_result_shows_as_a_card_and_the_answer_follows(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        _weather(window)
        result = await _send(window, "Weather in Paris?")
        assert result is not None and result.finish_reason == "stop" and len(result.steps) == 2
        (card,) = window.transcript.tool_cards()
        assert card.call.name == "get_weather" and '"city": "example"' in card.arguments.text()
        assert card.result_text == '{"temp": 21}' and "stub" in card.info.text() and not card.is_error
        final = window.transcript.cards()[-1]
        assert final.text == 'Results: get_weather={"temp": 21}'
        roles = [m.role for m in _stored(window)]
        assert roles == ["user", "assistant", "tool", "assistant"]
        assert not window.backend.is_busy() and window.editor.send_button.isEnabled()
        cid = window.session.conversation_id
        assert cid is not None
        window.conversations.new_conversation()
        assert window.transcript.tool_cards() == []
        window.open_conversation(cid)  # reopened: the card comes from the history
        (again,) = window.transcript.tool_cards()
        assert again.result_text == '{"temp": 21}' and again.message_id is not None
        assert window.transcript.cards()[-1].text == final.text

    _run(qloop, scenario())


def test_an_edited_result_reruns_as_a_new_branch(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        _weather(window)
        await _send(window, "Weather in Paris?")
        (card,) = window.transcript.tool_cards()
        first_id = card.message_id
        done = expect_signal(window.session.loop_done)
        card.edit_button.click()
        card.result.setPlainText('{"temp": -5}')
        card.rerun_button.click()
        (_gen, result), = await done.wait(15)
        assert result.text == 'Results: get_weather={"temp": -5}'
        (card,) = window.transcript.tool_cards()
        assert card.result_text == '{"temp": -5}' and "edited" in card.info.text()
        assert card.branch.text() == "\u2039 2/2 \u203a" and card.message_id != first_id
        tools = [m for m in _stored(window) if m.role == "tool"]
        assert len(tools) == 2 and tools[0].parent_id == tools[1].parent_id  # siblings
        card.branch.step_requested.emit(-1)  # ‹: back to the first result and its answer
        (card,) = window.transcript.tool_cards()
        assert card.result_text == '{"temp": 21}' and card.branch.text() == "\u2039 1/2 \u203a"
        assert window.transcript.cards()[-1].text == 'Results: get_weather={"temp": 21}'

    _run(qloop, scenario())


def test_an_untrusted_mcp_server_is_listed_asks_and_deny_gives_an_error(window: MainWindow, qloop: Any) -> None:
    window.services.settings.mcp_servers = [McpServerConfig(name="local", command=sys.executable,
                                                            args=[SERVER, "stdio"])]  # fmt: skip
    window.backend.set_model("mock:tools?call=add")
    panel = window.tools_panel
    assert panel is not None

    async def scenario() -> None:
        panel.mcp_check.setChecked(True)
        servers = window.tools.servers
        assert servers is not None
        await asyncio.wait_for(servers.wait_started(), 20)
        item = panel.server_tree.topLevelItem(0)
        assert item.text(0) == "local" and item.text(1).startswith("ready (")
        tools = {item.child(i).text(0) for i in range(item.childCount())}
        assert {"echo", "add", "crash"} <= tools
        done = expect_signal(window.session.loop_done)
        window.editor.set_message("Add two numbers")
        window.editor.send_button.click()
        for _ in range(200):  # the dialog opens when the call comes (non-modal)
            if window.tools.approval_box is not None:
                break
            await asyncio.sleep(0.05)
        box = window.tools.approval_box
        assert box is not None and "add" in box.text() and box.isVisible()
        assert window.backend.is_busy()  # the loop waits for the answer
        deny = next(b for b in box.buttons() if b.text() == "Deny")
        deny.click()
        (_gen, result), = await done.wait(15)
        (card,) = window.transcript.tool_cards()
        assert card.is_error and card.result_text == "denied by the user" and "denied" in card.info.text()
        assert result.calls[0].result.is_error
        stored = [m for m in _stored(window) if m.role == "tool"]
        assert stored[0].meta["is_error"] and stored[0].meta["server"] == "local"

    _run(qloop, scenario())


@pytest.mark.parametrize(("text", "badge"), [('{"answer": "yes"}', "valid"),
                                             ('{"answer": 3}', "invalid: $.answer: 3 is not of type 'string'")])
def test_a_schema_answer_shows_its_badge(window: MainWindow, qloop: Any, text: str, badge: str) -> None:
    window.backend.set_model("mock:echo")
    schema = json.dumps({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})
    assert window.tools_panel is not None
    window.tools_panel.set_setup(ToolSetup(schema_on=True, schema_text=schema))

    async def scenario() -> None:
        result = await _send(window, text)
        assert result.schema is not None
        card = window.transcript.cards()[-1]
        assert card.badge.isVisible() and card.badge.text().endswith(badge)
        cid = window.session.conversation_id
        assert cid is not None
        window.conversations.new_conversation()
        window.open_conversation(cid)  # the verdict is stored with the answer
        assert window.transcript.cards()[-1].badge.text().endswith(badge)

    _run(qloop, scenario())


def test_an_invalid_function_is_not_sent_and_the_text_stays(window: MainWindow, qloop: Any) -> None:
    assert window.tools_panel is not None
    window.tools_panel.set_setup(ToolSetup((FunctionEntry('{"type": "function", "function": {"name": "f", '
                                                          '"parameters": {"type": "objekt"}}}'),)))  # fmt: skip
    window.editor.set_message("keep me")
    window.editor.send_button.click()
    assert window.editor.message() == "keep me" and window.session.conversation_id is None
    assert "Not sent" in window.status_label.text() and "tool 'f'" in window.status_label.text()
    assert "$.type" in window.status_label.text()


def test_presets_and_reopen_restore_the_tools(window: MainWindow, qloop: Any) -> None:
    panel = window.tools_panel
    assert panel is not None

    async def scenario() -> None:
        _weather(window, stub="sunny")
        await _send(window, "Weather?")
        cid = window.session.conversation_id
        assert cid is not None
        window.editor.save_preset("weather")
        saved = next(p for p in window.services.settings.presets if p.name == "weather")
        assert saved.tools is not None and saved.tools["functions"][0]["stub"] == "sunny"
        panel.set_setup(ToolSetup())
        window.conversations.new_conversation()
        window.open_conversation(cid)  # the conversation brings its tools back
        assert panel.setup().functions == (FunctionEntry(WEATHER, True, "sunny"),)
        panel.set_setup(ToolSetup())
        window.services.settings.presets = [*window.services.settings.presets,
                                            Preset(name="empty", params={}, tools=ToolSetup().to_json())]  # fmt: skip
        window.editor.set_presets(window.services.settings.presets)
        index = window.editor.preset_box.findText("weather")
        window.editor.preset_box.activated.emit(index)  # the preset brings its tools back
        assert panel.setup().functions[0].stub == "sunny"

    _run(qloop, scenario())


def test_tools_to_a_model_without_tool_support_fail_inline_and_nothing_is_lost(
    window: MainWindow, qloop: Any, tmp_path: Path
) -> None:
    from tests.providers.local_fixtures import build_tiny_llama

    tiny = build_tiny_llama(tmp_path / "tiny-llama")  # its chat template never mentions tools
    window.backend.set_model(f"local:{tiny}")
    _weather(window)

    async def scenario() -> None:
        result = await _send(window, "Weather in Paris?", timeout=60)
        assert result is None  # the step failed: no loop result
        user, answer = _stored(window)
        assert (user.role, user.content) == ("user", "Weather in Paris?")
        assert answer.status == "error" and "no tool support" in (answer.error or "")
        card = window.transcript.cards()[-1]
        assert card.error_label.isVisibleTo(card) and "no tool support" in card.error_label.text()
        assert window.transcript.tool_cards() == [] and not window.backend.is_busy()
        window.tools_panel.set_setup(ToolSetup())  # type: ignore[union-attr]
        result = await _send(window, "And without tools?", timeout=60)
        assert result is not None and result.finish_reason in ("stop", "length")  # the model is still usable

    _run(qloop, scenario(), timeout=90)


def test_the_step_limit_and_calls_nobody_answers_are_said_on_the_answer(window: MainWindow, qloop: Any) -> None:
    assert window.tools_panel is not None
    window.backend.set_model("mock:tools?steps=5")

    async def scenario() -> None:
        window.tools_panel.set_setup(ToolSetup((FunctionEntry(WEATHER, True, "sunny"),), max_steps=2))
        result = await _send(window, "Loop")
        assert result.finish_reason == "max_tool_steps"
        card = window.transcript.cards()[-1]
        assert "Stopped after 2 steps (max_tool_steps = 2)" in card.note_label.text()
        assert window.transcript.tool_cards()[-1].info.text() == "not run: the step limit was reached"
        window.tools_panel.set_setup(ToolSetup((FunctionEntry(WEATHER, True, ""),)))  # no stub, no server
        result = await _send(window, "Again")
        assert result.finish_reason == "tool_calls"
        assert "which no stub result or MCP server answers" in window.transcript.cards()[-1].note_label.text()
        assert window.transcript.tool_cards()[-1].info.text().startswith("no result")
        cid = window.session.conversation_id
        assert cid is not None
        window.conversations.new_conversation()
        window.open_conversation(cid)  # reopened: the unanswered call says so
        assert window.transcript.tool_cards()[-1].info.text() == "no result: the run stopped at this call"

    _run(qloop, scenario())


def _window_on(services: Services, setup: ToolSetup) -> MainWindow:
    """A window that reopens a conversation kept with ``setup`` (as a start does)."""
    services.settings.mcp_servers = [McpServerConfig(name="local", command=sys.executable,
                                                     args=[SERVER, "stdio"])]  # fmt: skip
    conv = services.history.create_conversation(params={SETUP_KEY: setup.to_json()})
    services.settings.last_conversation_id = conv.id
    win = MainWindow(services, backend=BackendManager(services, model_id="mock:tools"))
    win.show()
    return win


def _close(win: MainWindow, qloop: Any) -> None:
    win.close()
    qloop.run_until_complete(asyncio.wait_for(win.tools.aclose(), 20))
    qloop.run_until_complete(asyncio.wait_for(win.backend.aclose(), 20))


def test_the_tools_and_server_panels_are_made_when_first_shown_with_what_they_hold(
    qloop: Any, qapp: Any, services: Services
) -> None:
    setup = ToolSetup((FunctionEntry(WEATHER, True, "sunny"),), "get_weather", 3, True, '{"type": "object"}')
    win = _window_on(services, setup)
    try:
        qapp.processEvents()
        tools, server = win.tools_dock, win.server_dock
        assert tools is not None and server is not None
        assert win.lora_dock is not None and not win.lora_dock.built
        assert not tools.built and not server.built and win.tools.panel is None  # tabs behind Usage
        assert win.dashboard is not None and win.dashboard.isVisible()
        tools.raise_()  # the user picks the Tools tab
        qapp.processEvents()
        panel = win.tools.panel
        assert tools.built and panel is tools.widget() and panel.isVisible()
        assert panel.setup() == setup  # the reopened conversation's tools, as an eager panel shows them
        assert panel.function_list.item(0).text() == "get_weather" and panel.stub_edit.toPlainText() == "sunny"
        assert panel.choice_box.currentText() == "get_weather" and panel.steps_box.value() == 3
        assert panel.schema_check.isChecked() and "valid JSON Schema" in panel.schema_error.text()
        item = panel.server_tree.topLevelItem(0)
        assert (item.text(0), item.text(1)) == ("local", "not started")  # the settings' MCP servers
        assert not server.built
        server.raise_()
        qapp.processEvents()
        assert server.built and win.server_panel is server.widget()
        assert win.server_panel.start_button.text() == "Start" and win.server_panel.address_label.text() == "Stopped"
    finally:
        _close(win, qloop)


def test_a_send_before_the_tools_dock_is_shown_offers_the_tools_it_holds(
    qloop: Any, qapp: Any, services: Services
) -> None:
    win = _window_on(services, ToolSetup((FunctionEntry(WEATHER, True, '{"temp": 21}'),)))
    try:
        assert win.tools_dock is not None and not win.tools_dock.built
        result: list[Any] = []

        async def scenario() -> None:
            result.append(await _send(win, "Weather in Paris?"))

        _run(qloop, scenario())
        assert result[0].finish_reason == "stop" and len(result[0].steps) == 2
        (card,) = win.transcript.tool_cards()
        assert card.result_text == '{"temp": 21}'
        assert win.tools_dock.built and win.tools.panel is win.tools_dock.widget()  # made for the send
    finally:
        _close(win, qloop)
