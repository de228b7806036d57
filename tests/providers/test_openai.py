"""OpenAIProvider streaming against a real loopback HTTP server: text, usage, retries,
error translation, interrupted streams and cancellation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.core.engine import Engine
from app.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ModelNotFound,
    RateLimited,
    StreamInterrupted,
    Unreachable,
)
from app.core.events import Finished, ReasoningDelta, StreamEvent, TextDelta, UsageReport
from app.core.pricing import PriceTable
from app.core.provider import ProviderRegistry
from app.core.settings import RetryPolicy
from app.core.tokens import count_chat, count_text
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.openai import OpenAIProvider
from tests.support.openai_server import (
    OpenAIServer,
    chunk,
    context_too_long,
    error,
    model_not_found,
    provider_context,
    rate_limited,
    raw,
    server_error,
    sse,
    text,
    tokens,
)

SECRET = "sk-test-SECRET123456"
RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.25, max_delay_s=4.0, jitter=0.0)
MESSAGES = (ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello to the test suite"))

Run = Callable[..., Any]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


class FakeSleep:
    """Records the waits between attempts instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_provider(
    server: OpenAIServer, *, retry: RetryPolicy = RETRY, **endpoint: Any
) -> tuple[OpenAIProvider, FakeSleep]:
    ep = server.endpoint(**endpoint)
    keys = {ep.secret_name: SECRET} if endpoint.get("needs_key") else {}
    provider = OpenAIProvider(provider_context([ep], keys=keys, retry=retry))
    sleep = FakeSleep()
    provider.retry_sleep = sleep
    return provider, sleep


def request(
    model: str = "test-model", endpoint: str | None = "Loopback", **params: Any
) -> GenerationRequest:
    return GenerationRequest(
        ModelRef("openai", model), MESSAGES, GenerationParams(**params), endpoint=endpoint
    )


async def collect(provider: OpenAIProvider, req: GenerationRequest) -> list[StreamEvent]:
    try:
        return [event async for event in provider.stream(req)]
    finally:
        await provider.aclose()


def texts(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def failure(provider: OpenAIProvider, req: GenerationRequest) -> BaseException:
    """The error the stream ends with (the test fails when it ends cleanly)."""
    seen: list[StreamEvent] = []
    try:
        async for event in provider.stream(req):
            seen.append(event)
    except Exception as exc:
        exc.seen = seen  # type: ignore[attr-defined]
        return exc
    finally:
        await provider.aclose()
    raise AssertionError(f"the stream did not fail: {seen!r}")


def test_importing_the_module_does_not_import_the_sdk() -> None:
    code = "import sys, app.providers.openai; sys.exit(1 if 'openai' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_streams_text_then_exact_usage_then_finished(server: OpenAIServer, run: Run) -> None:
    server.enqueue(
        text("Hello", ", ", "world", "!", prompt_tokens=21, completion_tokens=4, cached_tokens=8)
    )
    provider, sleep = make_provider(server)
    events = run(collect(provider, request()))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", ", ", "world", "!"]
    assert events[-2:] == [
        UsageReport(21, 4, cached_prompt_tokens=8, estimated=False),
        Finished("stop"),
    ]
    body = server.chat_requests[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    assert server.chat_requests[0].authorization == "Bearer not-needed"
    assert sleep.delays == []


def test_finish_reason_length_is_reported(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("cut", finish_reason="length"))
    provider, _ = make_provider(server)
    assert run(collect(provider, request()))[-1] == Finished("length")


def test_through_the_engine(server: OpenAIServer, run: Run) -> None:
    server.enqueue(tokens(50, prompt_tokens=30, completion_tokens=50))
    provider, _ = make_provider(server)
    registry = ProviderRegistry(provider.context, {"openai": lambda ctx: provider})
    engine = Engine(registry, PriceTable.load())

    async def scenario() -> Any:
        try:
            return await engine.run(request())
        finally:
            await registry.aclose()

    result = run(scenario())
    assert result.text == "tok0" + "".join(f" tok{i}" for i in range(1, 50))
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.estimated) == (
        30,
        50,
        False,
    )
    assert result.finish_reason == "stop" and result.ttft_s is not None


def test_server_without_usage_gives_labelled_estimate(run: Run) -> None:
    with OpenAIServer(send_usage=False) as server:
        server.enqueue(text("Hello", " there", " friend"))
        provider, _ = make_provider(server)
        events = run(collect(provider, request("gpt-4o-mini")))
    usage = events[-2]
    assert isinstance(usage, UsageReport) and usage.estimated
    assert usage.prompt_tokens == count_chat("gpt-4o-mini", MESSAGES).tokens
    assert usage.completion_tokens == count_text("gpt-4o-mini", "Hello there friend").tokens
    assert events[-1] == Finished("stop")


def test_rate_limit_waits_retry_after_then_succeeds(server: OpenAIServer, run: Run) -> None:
    server.enqueue(rate_limited(retry_after="2"), text("ok"))
    provider, sleep = make_provider(server)
    retries: list[tuple[int, str, float]] = []
    provider.on_retry = lambda n, exc, delay: retries.append((n, type(exc).__name__, delay))
    assert texts(run(collect(provider, request()))) == "ok"
    assert sleep.delays == [1.0, 1.0]  # the 2 s wait, counted down in ticks of a second
    assert retries == [(1, "RateLimited", 2.0)]
    assert len(server.chat_requests) == 2


def test_rate_limit_with_http_date_and_give_up(server: OpenAIServer, run: Run) -> None:
    server.enqueue(
        rate_limited(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), rate_limited(retry_after=None)
    )
    provider, sleep = make_provider(
        server, retry=RetryPolicy(max_attempts=2, base_delay_s=0.5, jitter=0.0)
    )
    exc = run(failure(provider, request()))
    assert isinstance(exc, RateLimited) and exc.retry_after is None
    assert sleep.delays == []  # a date in the past: no wait
    assert len(server.chat_requests) == 2


def test_insufficient_quota_is_not_retried(server: OpenAIServer, run: Run) -> None:
    server.enqueue(error(429, "You exceeded your current quota.", code="insufficient_quota"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, RateLimited) and not exc.retryable and "quota" in exc.hint
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_server_error_then_success(server: OpenAIServer, run: Run) -> None:
    server.enqueue(server_error(500), server_error(503), text("recovered"))
    provider, sleep = make_provider(server)
    assert texts(run(collect(provider, request()))) == "recovered"
    assert sleep.delays == [0.25, 0.5]
    assert len(server.chat_requests) == 3


def test_auth_error_is_not_retried_and_hides_the_key(run: Run) -> None:
    with OpenAIServer(require_key="sk-the-right-one-000") as server:
        provider, sleep = make_provider(server, name="OpenAI", kind="openai", needs_key=True)
        exc = run(failure(provider, request("gpt-4o-mini", endpoint=None)))
        assert server.chat_requests[0].authorization == f"Bearer {SECRET}"
        assert len(server.chat_requests) == 1
    assert isinstance(exc, AuthError) and "401" in str(exc)
    assert "python -m app keys set openai" in exc.hint
    assert sleep.delays == []
    assert SECRET not in str(exc) and SECRET not in exc.hint and SECRET not in repr(exc.args)


def test_model_not_found(server: OpenAIServer, run: Run) -> None:
    server.enqueue(model_not_found("gpt-nope"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request("gpt-nope")))
    assert isinstance(exc, ModelNotFound) and "gpt-nope" in str(exc) and "models" in exc.hint
    assert sleep.delays == []


def test_403_model_not_found_names_the_model_not_the_key(server: OpenAIServer, run: Run) -> None:
    """OpenAI answers 403 model_not_found for a model the key's project may not use: the key
    is fine, so the hint must not send the user to check it."""
    server.enqueue(error(403, "Project `proj_x` does not have access to model `gpt-5`", code="model_not_found"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request("gpt-5")))
    assert isinstance(exc, ModelNotFound) and "'gpt-5' (403)" in exc.message
    assert "key" not in exc.hint.lower() and "models --endpoint" in exc.hint and "project" in exc.hint
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_context_too_long(server: OpenAIServer, run: Run) -> None:
    server.enqueue(context_too_long())
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, ContextTooLong) and "Shorten" in exc.hint
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_other_bad_request(server: OpenAIServer, run: Run) -> None:
    server.enqueue(error(422, "temperature: value is not valid", param="temperature"))
    provider, _ = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, BadRequest) and "temperature" in str(exc)


def test_disconnect_mid_stream_keeps_partial_text_and_does_not_retry(
    server: OpenAIServer, run: Run
) -> None:
    server.enqueue(text("Hello", " wor", "ld", disconnect_after=2), text("never used"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, StreamInterrupted) and exc.partial_text == "Hello wor"
    assert texts(exc.seen) == "Hello wor"  # type: ignore[attr-defined]
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_disconnect_before_first_token_is_retried(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("lost", disconnect_after=0), text("second", " try"))
    provider, sleep = make_provider(server)
    assert texts(run(collect(provider, request()))) == "second try"
    assert sleep.delays == [0.25] and len(server.chat_requests) == 2


def test_slow_first_token_still_streams(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("late", " but", " fine", first_delay_s=0.4))
    provider, _ = make_provider(server, timeout_s=5.0)
    assert texts(run(collect(provider, request()))) == "late but fine"


def test_no_answer_within_timeout_is_unreachable(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("never", hold_after=0))
    provider, _ = make_provider(server, timeout_s=0.3, retry=RetryPolicy(max_attempts=1))
    exc = run(failure(provider, request()))
    assert isinstance(exc, Unreachable) and "did not answer within 0.3 s" in str(exc)
    assert server.wait_disconnected(5)


def test_malformed_chunk_keeps_partial_text(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("good", " start", " lost", malformed_after=2))
    provider, _ = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, StreamInterrupted) and exc.partial_text == "good start"
    assert "malformed" in str(exc)


def test_eof_without_finish_reason_is_interrupted(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("half", " an", finish_reason=None, send_done=False, usage=False))
    provider, _ = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, StreamInterrupted) and exc.partial_text == "half an"
    assert not any(isinstance(e, UsageReport | Finished) for e in exc.seen)  # type: ignore[attr-defined]


def test_error_event_mid_stream_is_interrupted(server: OpenAIServer, run: Run) -> None:
    server.enqueue(
        text("x", " y", error_after=1, error_message="worker crashed", error_type="server_error")
    )
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, StreamInterrupted) and exc.partial_text == "x"
    assert "worker crashed" in str(exc) and sleep.delays == []


def test_cancel_closes_the_connection_promptly(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("first", " second", hold_after=1))
    provider, _ = make_provider(server)

    async def scenario() -> None:
        got_first = asyncio.Event()
        received: list[str] = []

        async def consume() -> None:
            async for event in provider.stream(request()):
                if isinstance(event, TextDelta):
                    received.append(event.text)
                    got_first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_first.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert received == ["first"]
        assert await asyncio.to_thread(server.wait_disconnected, 5.0), (
            "the server never saw the client leave"
        )
        await provider.aclose()

    run(scenario())
    assert server.disconnects == 1


def test_rejected_stream_options_fall_back_and_are_remembered(run: Run) -> None:
    with OpenAIServer(reject_stream_options=True) as server:
        provider, sleep = make_provider(server)

        async def scenario() -> tuple[list[StreamEvent], list[StreamEvent]]:
            try:
                first = [e async for e in provider.stream(request("gpt-4o-mini"))]
                second = [e async for e in provider.stream(request("gpt-4o-mini"))]
                return first, second
            finally:
                await provider.aclose()

        first, second = run(scenario())
        bodies = [r.json for r in server.chat_requests]
    assert ["stream_options" in b for b in bodies] == [True, False, False]
    for events in (first, second):
        assert texts(events) == "Hello from the loopback server."
        usage = events[-2]
        assert isinstance(usage, UsageReport) and usage.estimated
    assert sleep.delays == []


def test_unreachable_server_names_the_url_and_is_retried(run: Run) -> None:
    server = OpenAIServer().start()
    server.stop()  # the port is now closed
    provider, sleep = make_provider(
        server, retry=RetryPolicy(max_attempts=2, base_delay_s=0.1, jitter=0.0)
    )
    exc = run(failure(provider, request()))
    assert isinstance(exc, Unreachable) and server.base_url in str(exc)
    assert sleep.delays == [0.1]


LLAMACPP_CONTEXT = {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 4390,
                    "n_ctx": 4096, "message": "request (4390 tokens) exceeds the available context size (4096 tokens), try increasing it"}  # fmt: skip


def test_llamacpp_context_error_event_in_a_200_stream_is_not_retried(
    server: OpenAIServer, run: Run
) -> None:
    """llama.cpp sends the context overflow as an error event inside an HTTP 200 stream."""
    server.enqueue(raw(*sse({"error": LLAMACPP_CONTEXT})), text("never used"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, ContextTooLong) and "4096 tokens" in str(exc)
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_context_size_500_from_llamacpp_is_not_retried(server: OpenAIServer, run: Run) -> None:
    server.enqueue(error(500, "Context size has been exceeded.", type="server_error"), text("x"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, ContextTooLong) and "Shorten" in exc.hint
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_error_event_with_a_4xx_code_is_a_bad_request(server: OpenAIServer, run: Run) -> None:
    """vLLM: {"error": {"object": "error", "type": "BadRequestError", "code": 400, ...}}."""
    vllm = {"object": "error", "message": "top_k must be -1 or at least 1, got 0.",
            "type": "BadRequestError", "param": None, "code": 400}  # fmt: skip
    server.enqueue(raw(*sse({"error": vllm})), text("never used"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, BadRequest) and "top_k must be" in str(exc) and "(400)" in str(exc)
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_error_event_with_a_plain_string_keeps_the_servers_words(
    server: OpenAIServer, run: Run
) -> None:
    server.enqueue(raw(*sse({"choices": [{"index": 0, "delta": {"content": "par"}}]}),
                       *sse({"error": "CUDA out of memory on worker 3"})))  # fmt: skip
    provider, _ = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, StreamInterrupted) and exc.partial_text == "par"
    assert "CUDA out of memory on worker 3" in str(exc)


def delta(content: str | None = None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    """A bare chunk as local servers send it: no id, model or created."""
    return {"choices": [{"index": 0, "delta": {} if content is None else {"content": content},
                         "finish_reason": finish}], **fields}  # fmt: skip


def test_a_finish_chunk_without_delta_ends_the_answer(server: OpenAIServer, run: Run) -> None:
    server.enqueue(
        raw(*sse(delta("Hi"), {"choices": [{"index": 0, "finish_reason": "stop"}]}, "[DONE]"))
    )
    provider, _ = make_provider(server)
    events = run(collect(provider, request()))
    assert texts(events) == "Hi" and events[-1] == Finished("stop")


def test_a_web_page_instead_of_a_stream_is_a_clear_error(server: OpenAIServer, run: Run) -> None:
    server.enqueue(raw("<html><body>Welcome</body></html>", content_type="text/html"), text("x"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, Unreachable) and "text/html" in str(exc) and "/v1" in exc.hint
    assert "no finish reason" not in str(exc)
    assert sleep.delays == [] and len(server.chat_requests) == 1


USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
WIRE_QUIRKS = {
    "data-without-space": sse(delta("Hi"), delta(" you"), delta(None, "stop"), "[DONE]", prefix="data:"),
    "crlf": sse(delta("Hi"), delta(" you"), delta(None, "stop"), "[DONE]", sep="\r\n\r\n"),
    "ping-comments": [": ping\n\n", *sse(delta("Hi")), ": ping\n\n", *sse(delta(" you", "stop"), "[DONE]")],
    "event-line": ["event: message\n", *sse(delta("Hi"), delta(" you"), delta(None, "stop"), "[DONE]")],
    "split-mid-event": ['data: {"choices": [{"index": 0, "del', 'ta": {"content": "Hi"}}]}\n', "\n",
                        *sse(delta(" you", "stop"))],
    "usage-in-every-chunk": sse(delta("Hi", usage={**USAGE, "completion_tokens": 1}),
                                delta(" you", "stop", usage=USAGE), "[DONE]"),
    "empty-finish-reason-then-stop": sse(delta("Hi", ""), delta(" you", ""), delta(None, "stop"), "[DONE]"),
    "choices-null-usage-chunk": sse(delta("Hi"), delta(" you", "stop"), {"choices": None, "usage": USAGE}),
    "reasoning-content": sse({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]},
                             delta("Hi"), delta(" you", "stop"), "[DONE]"),
}  # fmt: skip


@pytest.mark.parametrize("quirk", list(WIRE_QUIRKS))
def test_wire_quirks_of_local_servers(quirk: str, server: OpenAIServer, run: Run) -> None:
    server.enqueue(raw(*WIRE_QUIRKS[quirk]))
    provider, sleep = make_provider(server)
    events = run(collect(provider, request()))
    assert texts(events) == "Hi you" and events[-1] == Finished("stop")
    usage = events[-2]
    assert isinstance(usage, UsageReport)
    if "usage" in quirk:
        assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (9, 2, False)
    assert sleep.delays == []


def test_503_with_retry_after_waits_as_told(server: OpenAIServer, run: Run) -> None:
    busy = error(503, "Server busy, try later.", type="server_error", headers={"Retry-After": "3"})
    server.enqueue(busy, text("ok"))
    provider, sleep = make_provider(server)
    assert texts(run(collect(provider, request()))) == "ok"
    assert sleep.delays == [1.0, 1.0, 1.0]  # 3 s, as told, counted down


def test_a_server_silent_for_the_whole_timeout_is_not_retried(server: OpenAIServer, run: Run) -> None:
    """Each attempt would wait the whole timeout again (3 x 600 s by default)."""
    server.enqueue(text("never", hold_after=0))
    provider, _ = make_provider(server, timeout_s=0.3, retry=RetryPolicy(max_attempts=3, base_delay_s=0.0))
    exc = run(failure(provider, request()))
    assert isinstance(exc, Unreachable) and "did not answer within 0.3 s" in str(exc)
    assert len(server.chat_requests) == 1


def thinking(text: str, field: str = "reasoning_content") -> dict[str, Any]:
    """A reasoning chunk as thinking models send it (content null)."""
    return chunk(None, choices=[{"index": 0, "delta": {"content": None, field: text}, "finish_reason": None}])


def test_reasoning_streams_before_the_answer_as_reasoning_deltas(server: OpenAIServer, run: Run) -> None:
    server.enqueue(raw(*sse(thinking("Let me"), thinking(" think."), thinking(" Ok", "reasoning"),
                            chunk("The answer"), chunk(" is 4.", "stop"), "[DONE]")))  # fmt: skip
    provider, _ = make_provider(server)
    events = run(collect(provider, request()))
    kinds = [type(e) for e in events]
    assert kinds == [ReasoningDelta] * 3 + [TextDelta] * 2 + [UsageReport, Finished]
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Let me think. Ok"
    assert texts(events) == "The answer is 4." and events[-1] == Finished("stop")
    usage = events[-2]  # no usage from the server: the estimate counts the reasoning too
    assert isinstance(usage, UsageReport) and usage.estimated
    assert usage.completion_tokens == count_text("test-model", "Let me think. OkThe answer is 4.").tokens


def test_reasoning_without_an_answer_still_reaches_the_caller(server: OpenAIServer, run: Run) -> None:
    server.enqueue(raw(*sse(thinking("hmm, still thinking"))))  # the body ends: no answer, no finish
    provider, _ = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, StreamInterrupted) and exc.partial_text == "" and "no finish reason" in str(exc)
    assert exc.seen == [ReasoningDelta("hmm, still thinking")]  # type: ignore[attr-defined]


def test_a_failure_after_reasoning_is_not_retried_and_keeps_no_answer_text(server: OpenAIServer, run: Run) -> None:
    server.enqueue(raw(*sse(thinking("hmm"), {"error": "worker crashed"})), text("never used"))
    provider, sleep = make_provider(server)
    exc = run(failure(provider, request()))
    assert isinstance(exc, StreamInterrupted) and exc.partial_text == ""
    assert exc.seen == [ReasoningDelta("hmm")]  # type: ignore[attr-defined]
    assert sleep.delays == [] and len(server.chat_requests) == 1


def test_running_out_of_tokens_while_thinking_finishes_with_length(server: OpenAIServer, run: Run) -> None:
    server.enqueue(raw(*sse(thinking("a long"), thinking(" thought"), chunk(None, "length"), "[DONE]")))
    provider, _ = make_provider(server)
    events = run(collect(provider, request(max_tokens=2)))
    assert texts(events) == "" and events[-1] == Finished("length")
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [ReasoningDelta("a long"), ReasoningDelta(" thought")]
