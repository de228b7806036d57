"""OpenAIProvider's request bodies, keys, endpoints and model listing, against the loopback
server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.core.errors import AuthError, ConfigError, Unreachable
from app.core.events import TextDelta
from app.core.settings import EndpointConfig
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.openai import OpenAIProvider, context_length
from tests.support.openai_server import OpenAIServer, auth_error, provider_context, text

SECRET = "sk-test-SECRET123456"
Run = Callable[..., Any]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=["gpt-4o-mini", "text-embedding-3-small", "llama-3-8b"]) as s:
        yield s


def closed_url() -> str:
    dead = OpenAIServer().start()
    dead.stop()
    return dead.base_url


def req(model: str, endpoint: str | None, **params: Any) -> GenerationRequest:
    messages = (ChatMessage("user", "hi"),)
    return GenerationRequest(
        ModelRef("openai", model), messages, GenerationParams(**params), endpoint=endpoint
    )


async def body_of(provider: OpenAIProvider, server: OpenAIServer, r: GenerationRequest) -> Any:
    try:
        async for _ in provider.stream(r):
            pass
    finally:
        await provider.aclose()
    return server.chat_requests[-1].json


def test_openai_endpoint_body(server: OpenAIServer, run: Run) -> None:
    ep = server.endpoint("OpenAI", kind="openai", needs_key=True)
    provider = OpenAIProvider(provider_context([ep], keys={"openai": SECRET}))
    params = dict(temperature=0.3, top_p=0.9, max_tokens=77, seed=42, stop=("END", "###"), top_k=5)
    body = run(body_of(provider, server, req("gpt-4o-mini", None, **params)))
    assert body["max_completion_tokens"] == 77 and "max_tokens" not in body
    assert (body["temperature"], body["top_p"], body["seed"], body["stop"]) == (
        0.3,
        0.9,
        42,
        ["END", "###"],
    )
    assert "top_k" not in body  # OpenAI's API rejects it
    assert server.chat_requests[-1].authorization == f"Bearer {SECRET}"


def test_reasoning_model_on_openai_gets_no_sampling_params(server: OpenAIServer, run: Run) -> None:
    ep = server.endpoint("OpenAI", kind="openai", needs_key=True)
    provider = OpenAIProvider(provider_context([ep], keys={"openai": SECRET}))
    body = run(body_of(provider, server, req("o4-mini", None, max_tokens=10)))
    assert body["max_completion_tokens"] == 10
    assert "temperature" not in body and "top_p" not in body


def test_compatible_server_body_with_extras(server: OpenAIServer, run: Run) -> None:
    provider = OpenAIProvider(provider_context([server.endpoint("vLLM box", kind="vllm")]))
    params = dict(
        max_tokens=12,
        top_k=40,
        repetition_penalty=1.1,
        extras={"min_p": 0.05, "presence_penalty": 0.5},
    )
    body = run(body_of(provider, server, req("llama-3-8b", "vLLM box", **params)))
    assert body["max_tokens"] == 12 and "max_completion_tokens" not in body
    assert (body["top_k"], body["repetition_penalty"], body["min_p"], body["presence_penalty"]) == (
        40,
        1.1,
        0.05,
        0.5,
    )
    assert "seed" not in body and "stop" not in body
    assert server.chat_requests[-1].authorization == "Bearer not-needed"


def test_ad_hoc_base_url_needs_no_key(server: OpenAIServer, run: Run) -> None:
    provider = OpenAIProvider(provider_context([]))
    body = run(body_of(provider, server, req("llama-3-8b", server.base_url + "/")))
    assert body["model"] == "llama-3-8b"


def test_base_url_of_a_configured_endpoint_uses_its_key(server: OpenAIServer, run: Run) -> None:
    ep = server.endpoint("Private", needs_key=True)
    provider = OpenAIProvider(provider_context([ep], keys={"endpoint:Private": SECRET}))
    run(body_of(provider, server, req("llama-3-8b", server.base_url)))
    assert server.chat_requests[-1].authorization == f"Bearer {SECRET}"


def test_missing_key_fails_before_any_request(server: OpenAIServer, run: Run) -> None:
    ep = server.endpoint("OpenAI", kind="openai", needs_key=True)
    provider = OpenAIProvider(provider_context([ep]))
    with pytest.raises(AuthError) as info:
        run(body_of(provider, server, req("gpt-4o-mini", None)))
    assert "python -m app keys set openai" in info.value.hint
    assert server.requests == []


def test_unknown_endpoint_name(server: OpenAIServer) -> None:
    provider = OpenAIProvider(provider_context([server.endpoint("Loopback")]))
    with pytest.raises(ConfigError, match="no endpoint called 'Nope'") as info:
        provider.endpoint("Nope")
    assert "Loopback" in info.value.hint


def test_client_is_reused_and_rebuilt_when_the_key_changes(server: OpenAIServer, run: Run) -> None:
    ep = server.endpoint("Private", needs_key=True)
    provider = OpenAIProvider(provider_context([ep], keys={"endpoint:Private": SECRET}))

    async def scenario() -> tuple[bool, bool]:
        try:
            first = await provider.client(ep)
            same = first is await provider.client(ep)
            provider.context.secrets.set("endpoint:Private", "sk-test-NEWKEY987654")
            rebuilt = first is not await provider.client(ep)
            return same, rebuilt
        finally:
            await provider.aclose()

    assert run(scenario()) == (True, True)


def test_list_models_from_every_enabled_endpoint(server: OpenAIServer, run: Run) -> None:
    endpoints = [
        server.endpoint("OpenAI", kind="openai", needs_key=True),  # no key set
        server.endpoint("Local"),
        EndpointConfig(name="Down", base_url=closed_url()),
        EndpointConfig(name="Off", base_url=closed_url(), enabled=False),
    ]
    provider = OpenAIProvider(provider_context(endpoints))

    async def scenario() -> Any:
        try:
            return await provider.list_models()
        finally:
            await provider.aclose()

    models = run(scenario())
    local = [m for m in models if m.endpoint == "Local"]
    assert [m.ref.name for m in local] == ["gpt-4o-mini", "llama-3-8b", "text-embedding-3-small"]
    assert all(m.state == "ready" and str(m.ref).startswith("openai:") for m in local)
    keyless = [m for m in models if m.endpoint == "OpenAI"]
    assert keyless and all(m.state == "needs_key" for m in keyless)
    assert "gpt-4o-mini" in {m.ref.name for m in keyless}
    assert not any("embedding" in m.ref.name for m in keyless)
    assert (
        set(provider.list_errors) == {"Down"}
        and "Could not connect" in provider.list_errors["Down"]
    )
    assert [r.path for r in server.requests] == ["/v1/models"]  # the keyless endpoint was not asked


def test_openai_endpoint_lists_chat_models_only(server: OpenAIServer, run: Run) -> None:
    ep = server.endpoint("OpenAI", kind="openai", needs_key=True)
    provider = OpenAIProvider(provider_context([ep], keys={"openai": SECRET}))

    async def scenario() -> Any:
        try:
            return await provider.list_endpoint_models("OpenAI")
        finally:
            await provider.aclose()

    models = run(scenario())
    assert [m.ref.name for m in models] == ["gpt-4o-mini", "llama-3-8b"]
    assert models[0].context_length == 128_000 and models[0].tokenizer == "o200k_base"


def test_list_endpoint_models_by_url_and_errors(server: OpenAIServer, run: Run) -> None:
    provider = OpenAIProvider(provider_context([]))

    async def scenario() -> tuple[list[str], BaseException]:
        try:
            names = [m.ref.name for m in await provider.list_endpoint_models(server.base_url)]
            server.enqueue(auth_error())
            with pytest.raises(AuthError) as info:
                await provider.list_endpoint_models(server.base_url)
            return names, info.value
        finally:
            await provider.aclose()

    names, exc = run(scenario())
    assert names == ["gpt-4o-mini", "llama-3-8b", "text-embedding-3-small"]
    assert "401" in str(exc)


def test_test_connection_summary_and_failure(server: OpenAIServer, run: Run) -> None:
    endpoints = [server.endpoint("Local"), EndpointConfig(name="Down", base_url=closed_url())]
    provider = OpenAIProvider(provider_context(endpoints))

    async def scenario() -> tuple[str, BaseException]:
        try:
            summary = await provider.test_connection("Local")
            with pytest.raises(Unreachable) as info:
                await provider.test_connection("Down")
            return summary, info.value
        finally:
            await provider.aclose()

    summary, exc = run(scenario())
    assert summary.startswith("Connected to Local") and "3 models" in summary
    assert "Down" in str(exc) and "/v1" in exc.hint


def test_wrong_key_in_test_connection_is_redacted(run: Run) -> None:
    with OpenAIServer(require_key="sk-good-key-0000000") as server:
        ep = server.endpoint("OpenAI", kind="openai", needs_key=True)
        provider = OpenAIProvider(provider_context([ep], keys={"openai": SECRET}))

        async def scenario() -> None:
            try:
                await provider.test_connection("OpenAI")
            finally:
                await provider.aclose()

        with pytest.raises(AuthError) as info:
            run(scenario())
    assert SECRET not in str(info.value) and "keys set openai" in info.value.hint


def test_model_info_and_count_tokens() -> None:
    provider = OpenAIProvider(provider_context([]))
    info = provider.model_info("gpt-4.1-mini-2025-04-14")
    assert info.context_length == 1_047_576 and info.ref == ModelRef(
        "openai", "gpt-4.1-mini-2025-04-14"
    )
    assert provider.model_info("my-local-llama").context_length is None
    assert provider.model_info("my-local-llama").tokenizer == "estimate"
    count = provider.count_tokens("gpt-4o", [ChatMessage("user", "hello world")])
    assert count.exact and count.tokens > 2
    assert context_length("gpt-4o-mini") == 128_000 and context_length("gpt-4") == 8_192


def test_server_supports_concurrent_streams(server: OpenAIServer, run: Run) -> None:
    """Two streams at once (the first held mid-way) both complete: the server is concurrent."""
    server.enqueue(text("held", " then", hold_after=1), text("quick"))
    provider = OpenAIProvider(provider_context([server.endpoint("Local")]))

    async def stream_text(r: GenerationRequest, first: asyncio.Event | None = None) -> str:
        parts: list[str] = []
        async for event in provider.stream(r):
            if isinstance(event, TextDelta):
                parts.append(event.text)
                if first is not None:
                    first.set()
        return "".join(parts)

    async def scenario() -> tuple[str, str]:
        try:
            first = asyncio.Event()
            held = asyncio.create_task(stream_text(req("m", "Local"), first))
            await asyncio.wait_for(first.wait(), 10)
            quick = await stream_text(req("m", "Local"))
            server.release()
            return await held, quick
        finally:
            await provider.aclose()

    assert run(scenario(), timeout=15) == ("held then", "quick")


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ([{"id": "b"}, {"id": "a"}], ["a", "b"]),  # a bare list
        ({"models": [{"name": "qwen3:8b", "model": "qwen3:8b"}]}, ["qwen3:8b"]),
        ({"id": "tgi", "object": "model"}, ["tgi"]),  # one model object
        ({"object": "list", "data": ["x", "y"]}, ["x", "y"]),  # plain strings
        ({"object": "list", "data": [{"object": "model"}, {"id": None}, {"id": 5}, {"id": "ok"}]}, ["ok"]),
        ({"object": "list", "data": [{"id": "b"}, {"id": "b"}, {"id": "a"}]}, ["a", "b"]),
        ({"object": "list", "data": None}, []),  # a Go server with no models
    ],
    ids=["bare-list", "models-key", "single-object", "strings", "bad-ids", "duplicates", "data-null"],
)  # fmt: skip
def test_unusual_models_payloads_are_listed(payload: Any, names: list[str], run: Run) -> None:
    with OpenAIServer(models_body=payload) as server:
        provider = OpenAIProvider(provider_context([server.endpoint("Local")]))

        async def scenario() -> list[str]:
            try:
                return [m.ref.name for m in await provider.list_models()]
            finally:
                await provider.aclose()

        assert run(scenario()) == names
        assert provider.list_errors == {}


def test_a_web_page_instead_of_the_api_is_a_clear_error_and_others_still_list(
    server: OpenAIServer, run: Run
) -> None:
    html = "<!doctype html><html><head><title>Open WebUI</title></head><body></body></html>"
    with OpenAIServer(models_body=html, models_content_type="text/html") as web:
        endpoints = [web.endpoint("Web UI"), server.endpoint("Local")]
        provider = OpenAIProvider(provider_context(endpoints))

        async def scenario() -> tuple[list[str], BaseException]:
            try:
                names = [m.ref.name for m in await provider.list_models()]
                with pytest.raises(Unreachable) as info:
                    await provider.test_connection("Web UI")
                return names, info.value
            finally:
                await provider.aclose()

        names, exc = run(scenario())
    assert names == ["gpt-4o-mini", "llama-3-8b", "text-embedding-3-small"]
    assert set(provider.list_errors) == {"Web UI"}
    assert "text/html" in str(exc) and "Open WebUI" in str(exc) and "/v1" in exc.hint


def test_a_server_that_never_answers_the_model_list_times_out(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint's 600 s generation timeout is not what listing waits for."""
    import app.providers.openai as module

    monkeypatch.setattr(module, "LIST_TIMEOUT_S", 0.3)
    with OpenAIServer(models_hold=True) as silent, OpenAIServer() as good:
        endpoints = [silent.endpoint("Silent"), good.endpoint("Local")]
        assert endpoints[0].timeout_s == 600
        provider = OpenAIProvider(provider_context(endpoints))

        async def scenario() -> list[str]:
            try:
                return [m.ref.name for m in await provider.list_models()]
            finally:
                await provider.aclose()

        assert run(scenario(), timeout=10) == ["gpt-4o-mini", "test-model"]
        assert "did not list its models within 0.3 s" in provider.list_errors["Silent"]
        assert silent.wait_disconnected(5)
