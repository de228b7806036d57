"""Endpoint states in a few words, the quiet probe of local servers and the Test button's check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core import endpoint_status
from app.core.endpoint_status import EndpointState, diagnose, short_state
from app.core.settings import EndpointConfig
from tests.support.openai_server import OpenAIServer, auth_error

Run = Callable[..., Any]


def test_listing_errors_become_a_few_words() -> None:
    assert short_state("Could not connect to X (http://127.0.0.1:9/v1): ConnectError: [Errno 111] Connection refused.") \
        == "unreachable: connection refused"  # fmt: skip
    assert short_state("X (http://h/v1) did not list its models within 30 s.") == "unreachable: no answer (timed out)"
    assert short_state("X (http://h/v1) refused the request (401): Incorrect API key provided.") == "key refused (401)"
    assert short_state("No API key is set for X.") == "needs key"
    assert short_state("X (http://h/v1) does not list models (404).") == "no model list here (404): check the URL"
    assert short_state("Something odd happened. More words.") == "error: Something odd happened"


def test_diagnose_names_the_reason() -> None:
    assert diagnose("http://127.0.0.1:9/v1") == "unreachable: connection refused"
    assert diagnose("http://no-such-host.invalid/v1") == "unreachable: unknown host"
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert diagnose(f"http://127.0.0.1:{port}/v1") is None  # it connects: the problem is elsewhere


def test_probe_finds_switched_off_local_servers_only(run: Run) -> None:
    with OpenAIServer(models=["llama3.2:1b", "qwen3:0.6b"]) as server:
        endpoints = [
            EndpointConfig(name="Ollama", base_url=server.base_url, kind="ollama", enabled=False),
            EndpointConfig(name="vLLM", base_url="http://127.0.0.1:9/v1", kind="vllm", enabled=False),
            EndpointConfig(name="Mine", base_url=server.base_url, kind="custom", enabled=False),  # not a profile
            EndpointConfig(name="LM Studio", base_url=server.base_url, kind="lmstudio"),  # enabled: listed anyway
        ]
        found = run(endpoint_status.probe(endpoints), timeout=10)
    assert [(s.name, s.models) for s in found] == [("Ollama", ("llama3.2:1b", "qwen3:0.6b"))]


def test_check_tests_an_endpoint_as_edited(run: Run) -> None:
    with OpenAIServer(require_key="sk-right-key-123") as server:
        ep = EndpointConfig(name="Edited", base_url=server.base_url, needs_key=True)
        ok: EndpointState = run(endpoint_status.check(ep, "sk-right-key-123"))
        bad: EndpointState = run(endpoint_status.check(ep, "sk-wrong-key-456"))
        server.enqueue(auth_error())
    assert ok.ok and ok.text == "ready" and ok.detail.startswith("Connected to Edited in ") and "2 models" in ok.detail
    assert not bad.ok and bad.text == "key refused (401)" and "sk-wrong" not in bad.detail
    gone: EndpointState = run(endpoint_status.check(EndpointConfig(name="Gone", base_url="http://127.0.0.1:9/v1"), None))
    assert gone.text == "unreachable: connection refused" and "Is the server running?" in gone.detail
