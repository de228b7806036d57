"""The local server with real clients: the ``openai`` SDK (sync and async), raw HTTP, the
ledger; failures in OpenAI's shape (401, 404, 400, 413, 429)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.cli.test_ask import ledger_rows
from tests.serve.conftest import ServerThread

HELLO = [{"role": "user", "content": "hello from the sdk"}]


def test_sync_sdk_answers_with_usage_and_logprobs(served: ServerThread) -> None:
    client = served.sdk()
    reply = client.chat.completions.create(model="mock:echo", messages=HELLO, logprobs=True, top_logprobs=2)
    choice = reply.choices[0]
    assert choice.message.content == "hello from the sdk" and choice.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert reply.model == "mock:echo" and reply.object == "chat.completion"
    assert choice.logprobs is not None and [t.token for t in choice.logprobs.content] == ["hello", " from", " the", " sdk"]
    assert len(choice.logprobs.content[0].top_logprobs) == 2


def test_sync_sdk_streams_chunks_usage_and_done(served: ServerThread) -> None:
    stream = served.sdk().chat.completions.create(
        model="mock:lorem?n=40&rate=400", messages=HELLO, stream=True, stream_options={"include_usage": True},
        max_tokens=30, seed=3)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # it streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 30 == len(text.split())
    # the request log hears of the end once the last bytes are out
    assert served.call(_until(lambda: [(f.status, f.tokens) for f in served.figures][-1:] == [("finished", 30)]))


def test_async_sdk_streams_with_logprobs(served: ServerThread, run: Callable[..., Any]) -> None:
    async def scenario() -> tuple[str, list[str]]:
        client = served.async_sdk()
        stream = await client.chat.completions.create(model="mock:echo", messages=HELLO, stream=True,
                                                      logprobs=True, top_logprobs=1)
        text, tokens = "", []
        async for chunk in stream:
            delta = chunk.choices[0]
            text += delta.delta.content or ""
            if delta.logprobs is not None:
                tokens.extend(t.token for t in delta.logprobs.content)
        await client.close()
        return text, tokens

    text, tokens = run(scenario())
    assert text == "hello from the sdk" and "".join(tokens) == text


def test_models_and_health(serve_factory: Callable[..., ServerThread], tiny_local: tuple[Path, Path]) -> None:
    _model, adapter = tiny_local
    from app.core.types import AdapterSpec

    srv = serve_factory(adapters={"ada": AdapterSpec(str(adapter), 1.0, "ada")})
    ids = [m.id for m in srv.sdk().models.list().data]
    assert "mock:echo" in ids and "local:smollm2" in ids
    assert "local:smollm2+ada" in ids and not any(i.startswith("openai:") for i in ids)  # no --proxy
    with urllib.request.urlopen(srv.url.removesuffix("/v1") + "/health", timeout=10) as r:  # no key needed
        assert json.loads(r.read()) == {"status": "ok"}


@pytest.mark.parametrize("model", ["nope:x", "mock:nope", "openai:gpt-4o-mini", "mock:echo+unknown"])
def test_unknown_model_is_404(served: ServerThread, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        served.sdk().chat.completions.create(model=model, messages=HELLO)
    assert info.value.status_code == 404 and info.value.code == "model_not_found"


def test_bad_parameters_are_400(served: ServerThread) -> None:
    client = served.sdk()
    for kwargs in ({"temperature": 5}, {"n": 2}, {"messages": []}, {"stop": 3},
                   {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}}}):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(**{"model": "mock:echo", "messages": HELLO, **kwargs})
        assert info.value.status_code == 400, kwargs


def test_full_queue_is_429_with_retry_after(serve_factory: Callable[..., ServerThread]) -> None:
    srv = serve_factory(queue_limit=1)
    client = srv.sdk()
    slow = client.chat.completions.create(model="mock:tokens?n=100000&rate=200", messages=HELLO, stream=True)
    try:
        next(iter(slow))  # the first request streams: the queue is full
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="mock:echo", messages=HELLO)
        assert info.value.status_code == 429 and info.value.response.headers["retry-after"] == "1"
    finally:
        slow.close()
    assert srv.call(_until(lambda: srv.server.active_requests() == 0))
    assert client.chat.completions.create(model="mock:echo", messages=HELLO).choices[0].message.content


def _until(ok: Callable[[], bool], timeout: float = 5.0) -> Callable[[], Any]:
    async def wait() -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ok():
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    return wait


def test_served_requests_are_ledger_rows_tagged_with_the_client(served: ServerThread) -> None:
    served.sdk(default_headers={"User-Agent": "my-editor/1.2"}).chat.completions.create(model="mock:echo", messages=HELLO)
    rows = [dict(r) for r in ledger_rows()]
    assert [r["run_id"] for r in rows] == ["served:my-editor/1.2"]
    assert rows[0]["finish_reason"] == "stop" and rows[0]["completion_tokens"] == 4
    log = [f for f in served.figures if f.status == "finished"]
    assert log and log[-1].client == "my-editor/1.2" and log[-1].tokens == 4 and log[-1].ttft_s is not None


def test_the_key_is_in_no_file_under_the_profile(served: ServerThread, app_home: Path) -> None:
    served.sdk().chat.completions.create(model="mock:echo", messages=HELLO)
    assert served.call(lambda: _saved(served))
    key = served.key
    assert key
    files = [p for p in app_home.rglob("*") if p.is_file()]
    assert files  # the ledger and the settings are there
    assert not [p for p in files if key.encode() in p.read_bytes()]


async def _saved(srv: ServerThread) -> bool:
    srv.services.save_settings()
    srv.services.ledger.close()
    return True


def test_non_loopback_without_a_key_is_refused(app_home: Path, run: Callable[..., Any]) -> None:
    from app.core.errors import ConfigError
    from app.core.services import Services
    from app.serve.server import LocalServer

    async def scenario() -> str:
        services = Services.create()
        try:
            with pytest.raises(ConfigError) as info:
                await LocalServer(services, host="0.0.0.0", port=0, no_auth=True).start()
            return info.value.user_message()
        finally:
            await services.aclose()

    assert "without a key" in run(scenario())


def test_connections_send_without_delay(served: ServerThread) -> None:
    """Nagle off (TCP_NODELAY) on the accepted connections: else an answer's last small write
    waits for the client's delayed ACK, 40 ms per request on a kept-alive connection. And
    the requests are parsed by httptools (a dependency), not h11, in the protocol that writes a
    response's headers with its first body bytes."""
    import http.client
    import socket

    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=10)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b'{"status":"ok"}'  # the connection stays open

        async def nodelay() -> list[int]:
            connections = served.server._server.server_state.connections
            return [c.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                    for c in connections]  # fmt: skip

        async def parsers() -> list[str]:
            return [type(c).__name__ for c in served.server._server.server_state.connections]

        flags = served.call(nodelay)
        kinds = served.call(parsers)
    finally:
        conn.close()
    assert flags and all(flags)
    assert kinds == ["Protocol"]  # app.serve.transport's: httptools' C parser, not h11's pure Python one


def test_a_client_that_leaves_mid_stream_cancels_its_run(served: ServerThread) -> None:
    """The disconnect is seen while the answer streams (not only while it waits for its first
    text): the run is cancelled within tokens and its row says so."""
    stream = served.sdk().chat.completions.create(model="mock:lorem?n=100000&rate=200", messages=HELLO, stream=True)
    chunks = iter(stream)
    for _ in range(4):
        next(chunks)  # streaming: the role, then text
    stream.close()  # the client goes away mid-stream
    assert served.call(_until(lambda: served.server.active_requests() == 0))
    rows = [dict(r) for r in ledger_rows()]
    assert [r["finish_reason"] for r in rows] == ["cancelled"]
    assert rows[0]["completion_tokens"] < 1000  # cut at once, not run to its 100000 words
    assert [f.status for f in served.figures][-1] == "cancelled"
