"""The Server panel in the real window (offscreen, qasync loop): started and stopped by its
buttons on a free port, the openai SDK streaming through it (in a thread) while the live log
and the status-bar indicator follow, the key's mask and Copy button, the LoRA dock's adapters
as BASE+NAME models, the app as a client of its own server, the proxy option and the CORS
origins (kept in the settings), and closing the window."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLineEdit

from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.controllers.server import ENDPOINT_NAME
from app.ui.main_window import MainWindow
from app.ui.widgets.server_panel import ServerPanel
from tests.cli.conftest import tiny_local  # noqa: F401 - a tiny local model and its adapter
from tests.conftest import expect_signal
from tests.support.openai_server import OpenAIServer, text
from tests.support.sdk_client import in_thread, listens, stream_text, with_sdk


@pytest.fixture
def window(qloop: Any, qapp: Any, services: Services) -> Any:
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend, restore=False)
    win.resize(1024, 700)
    win.show()
    yield win
    win.close()
    qloop.run_until_complete(asyncio.wait_for(win.server_control.aclose(), 20))
    qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 20))


def panel_of(win: MainWindow) -> ServerPanel:
    assert win.server_panel is not None
    return win.server_panel


async def click_start(qtbot: Any, panel: ServerPanel) -> None:
    """Start on a free port with the panel's button; wait until it serves."""
    panel.port_spin.setValue(0)
    changed = expect_signal(panel.control.state_changed)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert not panel.start_button.isEnabled()  # until it has started
    assert await changed.wait(15) == [(True,)]


def test_start_stream_log_indicator_and_stop_from_the_panel(window: MainWindow, qtbot: Any, qloop: Any) -> None:
    panel, control = panel_of(window), window.server_control
    indicator = window.server_indicator
    assert indicator.isHidden() and panel.start_button.text() == "Start"
    seen_while_streaming: list[str] = []
    control.request_seen.connect(lambda f: seen_while_streaming.append(indicator.text()) if f.status == "running" else None)

    async def scenario() -> None:
        await click_start(qtbot, panel)
        port = control.port
        assert port and listens(port) and panel.start_button.text() == "Stop"
        assert panel.address_label.text() == f"http://127.0.0.1:{port}/v1" and panel.port_spin.value() == port
        assert not indicator.isHidden() and indicator.text() == f"Serving on 127.0.0.1:{port} · 0 active"
        ended = expect_signal(control.request_seen, where=lambda f: f.status != "running")
        text = await asyncio.wait_for(with_sdk(control.address, control.key,
                                               lambda c: stream_text(c, "mock:tokens?n=30")), 30)  # fmt: skip
        await ended.wait(15)
        assert text
        [row] = panel.log_rows()
        assert (row["Model"], row["Tokens"], row["Status"]) == ("mock:tokens?n=30", "30", "200")
        assert row["Client"].startswith("OpenAI/Python") and row["TTFT"].endswith(" s") and float(row["tok/s"]) > 0
        assert indicator.text().endswith("· 0 active")
        stopped = expect_signal(control.state_changed)
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        assert await stopped.wait(15) == [(False,)]
        assert not listens(port) and indicator.isHidden() and panel.start_button.text() == "Start"
        assert panel.address_label.text() == "Stopped" and panel.key_edit.text() == ""

    qloop.run_until_complete(asyncio.wait_for(scenario(), 60))
    assert seen_while_streaming == [seen_while_streaming[0]] and seen_while_streaming[0].endswith("· 1 active")


def test_the_key_is_masked_revealed_copied_and_in_no_file(window: MainWindow, qtbot: Any, qloop: Any,
                                                          app_home: Path) -> None:  # fmt: skip
    panel = panel_of(window)
    assert not panel.copy_button.isEnabled()
    qloop.run_until_complete(asyncio.wait_for(click_start(qtbot, panel), 30))
    key = window.server_control.key
    assert key and key.startswith("sk-local-")
    assert panel.key_edit.echoMode() == QLineEdit.EchoMode.Password and key not in panel.key_edit.displayText()
    qtbot.mouseClick(panel.reveal_button, Qt.MouseButton.LeftButton)
    assert panel.key_edit.displayText() == key and panel.reveal_button.text() == "Hide"
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(panel.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == key
    qtbot.mouseClick(panel.endpoint_button, Qt.MouseButton.LeftButton)  # writes the settings
    window.dialog_control.save_settings()
    files = [p for p in app_home.rglob("*") if p.is_file()]
    assert files and not [p for p in files if key.encode() in p.read_bytes()]
    assert key not in window.status_label.text()


def test_lora_dock_adapters_appear_as_base_plus_name(window: MainWindow, qloop: Any,
                                                     tiny_local: tuple[Path, Path]) -> None:  # noqa: F811  # fmt: skip
    model, adapter = tiny_local
    panel, backend = panel_of(window), window.backend

    async def scenario() -> list[str]:
        await click_start_quietly(window)
        loaded = expect_signal(backend.model_loaded)
        backend.set_model(f"local:{model}")
        await loaded.wait(60)
        listed = expect_signal(window.server_control.models_changed, where=lambda ids: any("+ada" in i for i in ids))
        assert window.lora_panel is not None and window.lora_panel.load_path(str(adapter))
        await listed.wait(60)
        return panel.models()

    ids = qloop.run_until_complete(asyncio.wait_for(scenario(), 120))
    assert "local:smollm2+ada" in ids and f"local:{model}+ada" in ids
    assert "mock:echo" in ids and "mock:echo+ada" not in ids
    assert panel.models_label.text() == f"Models ({len(ids)})"


async def click_start_quietly(window: MainWindow) -> None:
    changed = expect_signal(window.server_control.state_changed)
    window.server_control.start(port=0)
    assert await changed.wait(15) == [(True,)]


def test_the_window_answers_through_its_own_server(window: MainWindow, qtbot: Any, qloop: Any) -> None:
    panel, control = panel_of(window), window.server_control

    async def scenario() -> tuple[str, str]:
        await click_start(qtbot, panel)
        qtbot.mouseClick(panel.endpoint_button, Qt.MouseButton.LeftButton)
        endpoint = window.services.settings.endpoint(ENDPOINT_NAME)
        assert endpoint is not None and endpoint.base_url == control.address
        assert window.services.secrets.get(endpoint.secret_name) == control.key
        window.backend.set_model("openai:mock:echo", endpoint=ENDPOINT_NAME)
        served = expect_signal(control.request_seen, where=lambda f: f.status == "finished")
        done = expect_signal(window.session.answer_done)
        window.editor.set_message("hello through my own server")
        qtbot.mouseClick(window.editor.send_button, Qt.MouseButton.LeftButton)
        [(_gen, status)] = await done.wait(30)
        await served.wait(15)
        return status, window.transcript.cards()[-1].body.toPlainText()

    status, answer = qloop.run_until_complete(asyncio.wait_for(scenario(), 60))
    assert (status, answer) == ("complete", "hello through my own server")
    [row] = panel.log_rows()
    assert row["Client"].startswith("AsyncOpenAI/Python") and row["Model"] == "mock:echo" and row["Status"] == "200"


def test_closing_the_window_stops_the_server(window: MainWindow, qloop: Any) -> None:
    qloop.run_until_complete(asyncio.wait_for(click_start_quietly(window), 30))
    port = window.server_control.port
    assert port and listens(port)
    stopped = expect_signal(window.server_control.state_changed)
    window.close()  # the window begins stopping it; launch awaits the end before closing the services
    assert qloop.run_until_complete(asyncio.wait_for(stopped.wait(20), 25)) == [(False,)]
    assert not window.server_control.running and not listens(port)


async def click_stop(qtbot: Any, panel: ServerPanel) -> None:
    changed = expect_signal(panel.control.state_changed)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert await changed.wait(15) == [(False,)]


def test_the_proxy_option_forwards_the_endpoints_models_with_the_keyring_key(
    window: MainWindow, qtbot: Any, qloop: Any, openai_server: OpenAIServer,
) -> None:  # fmt: skip
    panel, control, services = panel_of(window), window.server_control, window.services
    remote_key = "sk-remote-for-the-proxy-1234"
    openai_server.require_key = remote_key
    openai_server.default = text("proxied", " answer")
    services.settings.endpoints = [*services.settings.endpoints, openai_server.endpoint("Remote", needs_key=True)]
    services.secrets.set("endpoint:Remote", remote_key)
    assert not panel.proxy_check.isChecked()  # off by default

    async def scenario() -> tuple[list[str], str]:
        panel.proxy_check.click()
        listed = expect_signal(control.models_changed, where=lambda ids: any(i.endswith("@Remote") for i in ids))
        await click_start(qtbot, panel)
        assert not panel.proxy_check.isEnabled()  # applied on start; fixed while serving
        [(ids,)] = await listed.wait(15)
        answer = await asyncio.wait_for(with_sdk(control.address, control.key,
                                                 lambda c: stream_text(c, "openai:test-model@Remote")), 30)  # fmt: skip
        return ids, answer

    ids, answer = qloop.run_until_complete(asyncio.wait_for(scenario(), 60))
    assert "openai:test-model@Remote" in ids and answer == "proxied answer"
    [request] = openai_server.chat_requests
    assert request.authorization == f"Bearer {remote_key}" and request.json["model"] == "test-model"
    assert services.settings.serve_proxy and ServerPanel(control).proxy_check.isChecked()  # kept for next time
    assert json.loads(services.paths.settings_file.read_text())["serve_proxy"] is True


def _preflight(address: str, origin: str) -> tuple[int, dict[str, str]]:
    """A browser's CORS preflight of POST /v1/chat/completions: (status, headers lower-cased)."""
    request = urllib.request.Request(address + "/chat/completions", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


def test_cors_origins_answer_the_preflight_and_none_send_no_cors_headers(window: MainWindow, qtbot: Any,
                                                                         qloop: Any) -> None:  # fmt: skip
    panel, control, settings = panel_of(window), window.server_control, window.services.settings
    page = "http://localhost:3000"

    async def preflight(origin: str) -> tuple[int, dict[str, str]]:
        assert control.address is not None
        address = control.address
        return await asyncio.wait_for(in_thread(lambda: _preflight(address, origin)), 15)

    async def scenario() -> list[tuple[int, dict[str, str]]]:
        failed = expect_signal(control.failed)
        panel.cors_edit.setText("localhost:3000/app")
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        [(message,)] = await failed.wait(15)
        assert "'localhost:3000/app' is not a web origin" in message and "http://localhost:3000" in message
        assert not control.running and panel.start_button.isEnabled() and settings.serve_cors_origins == []
        panel.cors_edit.setText(page + "/")
        await click_start(qtbot, panel)
        got = [await preflight(page), await preflight("http://elsewhere.example")]
        await click_stop(qtbot, panel)
        assert settings.serve_cors_origins == [page] and ServerPanel(control).cors_edit.text() == page
        panel.cors_edit.clear()
        await click_start(qtbot, panel)
        got.append(await preflight(page))
        return got

    allowed, other, without = qloop.run_until_complete(asyncio.wait_for(scenario(), 60))
    assert allowed[0] == 200 and allowed[1]["access-control-allow-origin"] == page
    assert "POST" in allowed[1]["access-control-allow-methods"]
    assert "access-control-allow-origin" not in other[1]
    assert not [h for h in without[1] if h.startswith("access-control-")] and settings.serve_cors_origins == []


def test_a_client_waiting_as_the_window_closes_leaves_no_socket_behind(window: MainWindow, qloop: Any) -> None:
    """A client that connected while the loop was busy elsewhere (the prompt's counter probing
    the server from its thread, say) is accepted in the turn the server stops: asyncio 3.11
    builds its transport on a closed server and leaks the socket (a ResourceWarning later)."""
    import gc
    import socket
    import time
    import warnings

    qloop.run_until_complete(asyncio.wait_for(click_start_quietly(window), 30))
    client = socket.create_connection(("127.0.0.1", window.server_control.port), timeout=5)  # in the backlog
    time.sleep(0.25)  # the loop stalls: the server's 0.1 s tick falls due with the connection
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        window.close()
        qloop.run_until_complete(asyncio.wait_for(window.server_control.aclose(), 20))
        client.close()
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []
