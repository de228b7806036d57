"""The token lens over OpenAI-compatible servers, against the real loopback server: logprobs
asked for and passed through unchanged, a server that refuses or ignores them, and the
continuation of a given answer start (assistant prefill)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from app.core.errors import BadRequest
from app.core.events import Notice, StreamEvent, TextDelta, TokenChoice, TokenLogprob
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.openai import OpenAIProvider
from tests.support.openai_server import OpenAIServer, provider_context, text, token_logprobs

MESSAGES = (ChatMessage("user", "Say hello"),)
Run = Callable[..., Any]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


def _provider(server: OpenAIServer, **endpoint: Any) -> OpenAIProvider:
    return OpenAIProvider(provider_context([server.endpoint(**endpoint)]))


def _request(*, logprobs: int | None = None, prefix: str = "") -> GenerationRequest:
    return GenerationRequest(ModelRef("openai", "test-model"), MESSAGES, GenerationParams(logprobs=logprobs),
                             endpoint="Loopback", prefix=prefix)


async def _collect(provider: OpenAIProvider, req: GenerationRequest) -> list[StreamEvent]:
    try:
        return [event async for event in provider.stream(req)]
    finally:
        await provider.aclose()


def test_logprobs_are_asked_for_and_arrive_unchanged(server: OpenAIServer, run: Run) -> None:
    chunks = ("Hello", " there", ",", " friend")
    server.enqueue(text(*chunks))
    events = run(_collect(_provider(server), _request(logprobs=3)))
    body = server.chat_requests[0].json
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    tokens = [t for e in events if isinstance(e, TextDelta) for t in e.tokens]
    sent = [token_logprobs(c, i, 3) for i, c in enumerate(chunks)]
    assert tokens == [
        TokenLogprob(s["token"], s["logprob"], tuple(TokenChoice(a["token"], a["logprob"]) for a in s["top_logprobs"]))
        for s in sent
    ]
    assert "".join(t.text for t in tokens) == "Hello there, friend"
    assert not [e for e in events if isinstance(e, Notice)]


def test_no_logprobs_are_asked_for_unless_wanted(server: OpenAIServer, run: Run) -> None:
    events = run(_collect(_provider(server), _request()))
    assert "logprobs" not in server.chat_requests[0].json
    assert all(not e.tokens for e in events if isinstance(e, TextDelta))


def test_a_server_that_refuses_logprobs_still_answers_with_a_note(run: Run) -> None:
    with OpenAIServer(reject_logprobs=True) as server:
        provider = _provider(server)
        events = run(_collect(provider, _request(logprobs=5)))
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello from the loopback server."
        notes = [e.message for e in events if isinstance(e, Notice)]
        assert len(notes) == 1 and "does not give token probabilities" in notes[0]
        assert "logprobs" in server.chat_requests[0].json and "logprobs" not in server.chat_requests[1].json
        again = run(_collect(provider, _request(logprobs=5)))  # remembered: not asked again
        assert len(server.chat_requests) == 3 and "logprobs" not in server.chat_requests[2].json
        assert any(isinstance(e, Notice) for e in again)


def test_a_server_that_ignores_logprobs_gets_a_note(server: OpenAIServer, run: Run) -> None:
    server.enqueue(replace(text("Hi", " you"), logprobs=False))
    events = run(_collect(_provider(server), _request(logprobs=2)))
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert notes and "sent no token probabilities" in notes[0]


@pytest.mark.parametrize("kind", ["llamacpp", "custom"])
def test_a_prefix_is_sent_as_the_last_assistant_message(server: OpenAIServer, run: Run, kind: str) -> None:
    run(_collect(_provider(server, kind=kind), _request(prefix="Once upon")))
    body = server.chat_requests[0].json
    assert body["messages"][-1] == {"role": "assistant", "content": "Once upon"}
    assert "continue_final_message" not in body


def test_vllm_is_asked_to_continue_the_final_message(server: OpenAIServer, run: Run) -> None:
    run(_collect(_provider(server, kind="vllm"), _request(prefix="Once upon")))
    body = server.chat_requests[0].json
    assert body["messages"][-1]["content"] == "Once upon"
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


def test_openai_itself_cannot_continue_and_says_what_to_do(server: OpenAIServer, run: Run) -> None:
    provider = _provider(server, kind="openai")
    with pytest.raises(BadRequest, match="cannot continue") as info:
        run(_collect(provider, _request(prefix="Once upon")))
    assert "Regenerate" in info.value.hint and server.chat_requests == []
