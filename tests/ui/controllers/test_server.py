"""ServerController: the real LocalServer on the qasync loop, on a free port of 127.0.0.1, with
the real openai SDK (in a thread) as its client."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QGuiApplication

from app.core.run_events import RunFinished
from app.core.types import AdapterInfo, ChatMessage, GenerationParams
from app.ui.controllers.server import ENDPOINT_NAME, ServerController, indicator_text
from tests.conftest import expect_signal, wait_run_event
from tests.support.sdk_client import listens, stream_text, with_sdk
from tests.ui.controllers.conftest import Parts, Said


async def started(control: ServerController, port: int = 0) -> None:
    """Start ``control`` on ``port`` and wait until it serves."""
    changed = expect_signal(control.state_changed)
    control.start(port=port)
    assert await changed.wait(15) == [(True,)]


@pytest.fixture
def control(parts: Parts, qloop: Any) -> Any:
    made = ServerController(parts.services, parts.backend, parts.parent)
    yield made
    qloop.run_until_complete(asyncio.wait_for(made.aclose(), 20))


def test_start_stop_on_a_free_port_with_the_keyring_key(control: ServerController, parts: Parts, qloop: Any) -> None:
    async def scenario() -> None:
        await started(control)
        assert control.running and re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", control.address or "")
        port = control.port
        assert port and listens(port) and control.indicator() == f"Serving on 127.0.0.1:{port} · 0 active"
        assert control.key and control.key == parts.services.secrets.get("serve")  # made on first start, kept
        answer = await asyncio.wait_for(with_sdk(control.address, control.key, lambda c: c.models.list()), 30)
        assert "mock:echo" in [m.id for m in answer.data]
        stopped = expect_signal(control.state_changed)
        control.stop()
        assert await stopped.wait(15) == [(False,)]
        assert not control.running and control.indicator() == "" and control.address is None
        assert not listens(port)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 60))


def test_a_busy_port_is_a_clear_failure(control: ServerController, qloop: Any) -> None:
    said = Said(control)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]

        async def scenario() -> list[tuple[Any, ...]]:
            failed = expect_signal(control.failed)
            control.start(port=port)
            return await failed.wait(15)

        [(message,)] = qloop.run_until_complete(asyncio.wait_for(scenario(), 30))
    assert f"Cannot listen on 127.0.0.1:{port}" in message and "another port" in message
    assert not control.running and said.last == (message, True)


def test_the_lora_docks_adapters_are_offered_as_base_plus_name(control: ServerController, qloop: Any) -> None:
    adapter = AdapterInfo("allcaps", "/adapters/allcaps", "0" * 64, 4, 8.0, ("q_proj",), scale=0.5)

    async def scenario() -> None:
        await started(control)
        listed = expect_signal(control.models_changed, where=lambda ids: any("+" in i for i in ids))
        control.set_adapters([adapter])
        [(ids,)] = await listed.wait(15)
        assert "local:smollm2+allcaps" in ids and "mock:echo" in ids and "mock:echo+allcaps" not in ids
        assert control.server is not None  # the request runs the adapter at the dock's scale
        assert control.server.catalog.resolve("local:smollm2+allcaps").adapters == (adapter.spec(),)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 60))


def test_the_sdk_streams_while_the_log_sees_each_request_start_and_end(control: ServerController, qloop: Any) -> None:
    seen: list[tuple[Any, str]] = []
    control.request_seen.connect(lambda f: seen.append((f, control.indicator())))

    async def scenario() -> None:
        await started(control)
        ended = expect_signal(control.request_seen, where=lambda f: f.status != "running")
        stream = with_sdk(control.address, control.key, lambda c: stream_text(c, "mock:tokens?n=40"))
        text = await asyncio.wait_for(stream, 30)
        await ended.wait(15)
        assert text

    qloop.run_until_complete(asyncio.wait_for(scenario(), 60))
    (start, during), (end, after) = seen
    assert start.status == "running" and during.endswith("· 1 active")
    assert (end.status, end.http_status, end.model, end.tokens) == ("finished", 200, "mock:tokens?n=40", 40)
    assert end.client.startswith("OpenAI/Python") and end.ttft_s is not None and end.tokens_per_s
    assert after.endswith("· 0 active")


def test_copy_key_puts_it_on_the_clipboard_and_in_no_file(control: ServerController, parts: Parts, qloop: Any,
                                                          app_home: Path) -> None:  # fmt: skip
    assert not control.copy_key()  # nothing to copy while stopped
    qloop.run_until_complete(asyncio.wait_for(started(control), 30))
    assert control.copy_key()
    key = control.key
    assert key and QGuiApplication.clipboard().text() == key
    assert control.add_as_endpoint() is not None  # the settings are written, the key kept aside
    files = [p for p in app_home.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".json") for p in files)
    assert not [p for p in files if key.encode() in p.read_bytes()]


def test_add_as_endpoint_makes_the_app_a_client_of_its_own_server(control: ServerController, parts: Parts,
                                                                  qloop: Any) -> None:  # fmt: skip
    assert control.add_as_endpoint() is None  # not running: nothing to add
    seen: list[Any] = []
    control.request_seen.connect(seen.append)

    async def scenario() -> str:
        await started(control)
        endpoint = control.add_as_endpoint()
        assert endpoint is not None and endpoint.base_url == control.address
        assert parts.services.secrets.get(endpoint.secret_name) == control.key
        assert [e.name for e in parts.services.settings.endpoints].count(ENDPOINT_NAME) == 1
        b = parts.backend
        request = b.request([ChatMessage("user", "hello from myself")], GenerationParams(temperature=0),
                            model_id="openai:mock:echo", endpoint=ENDPOINT_NAME)  # fmt: skip
        finished = asyncio.ensure_future(wait_run_event(b, RunFinished, timeout=30))
        b.generate(request)
        return str((await finished).result.text)

    assert qloop.run_until_complete(asyncio.wait_for(scenario(), 60)) == "hello from myself"
    ended = [f for f in seen if f.status == "finished"]
    assert [f.model for f in ended] == ["mock:echo"] and ended[0].client.startswith("AsyncOpenAI/Python")


def test_indicator_text() -> None:
    assert indicator_text(None, 3) == ""
    assert indicator_text("http://127.0.0.1:8080/v1", 2) == "Serving on 127.0.0.1:8080 · 2 active"


def test_without_a_keyring_the_failure_says_what_to_do(parts: Parts, qloop: Any) -> None:
    from keyring.backends.fail import Keyring as NoKeyring

    from app.core.secrets import SecretStore

    parts.services.secrets = SecretStore(backend=NoKeyring(), environ={})  # what keyring finds without one
    control = ServerController(parts.services, parts.backend, parts.parent)

    async def scenario() -> list[tuple[Any, ...]]:
        failed = expect_signal(control.failed)
        control.start(port=0)
        return await failed.wait(15)

    [(message,)] = qloop.run_until_complete(asyncio.wait_for(scenario(), 30))
    assert "No secure keyring" in message and "session only" in message and "Require a key" in message
    assert not control.running
