"""The mock provider: models, determinism, stop/max_tokens, faults, scripted answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from app.core.errors import (
    AuthError,
    InvalidParams,
    ModelNotFound,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Unreachable,
)
from app.core.events import Finished, ReasoningDelta, StreamEvent, TextDelta, UsageReport
from app.core.provider import Provider
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.mock import DEMO_MARKDOWN, MOCK_MODELS, MockProvider, MockScript, split_tokens

Run = Callable[..., Any]


def req(model: str, text: str = "hello there world", **params: Any) -> GenerationRequest:
    return GenerationRequest(
        model=ModelRef("mock", model),
        messages=(ChatMessage("system", "be nice"), ChatMessage("user", text)),
        params=GenerationParams(**params),
    )


async def collect(provider: MockProvider, request: GenerationRequest) -> list[StreamEvent]:
    return [e async for e in provider.stream(request)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_is_a_provider(run: Run) -> None:
    p = MockProvider()
    assert isinstance(p, Provider)
    models = run(p.list_models())
    assert [m.ref.name for m in models] == list(MOCK_MODELS)
    assert all(m.state == "ready" and m.is_local for m in models)
    with pytest.raises(ModelNotFound, match="nope"):
        p.model_info("nope")


def test_echo_streams_the_last_user_message_then_usage_and_finish(run: Run) -> None:
    events = run(collect(MockProvider(), req("echo", "one two three")))
    assert [type(e) for e in events] == [TextDelta, TextDelta, TextDelta, UsageReport, Finished]
    assert text_of(events) == "one two three"
    usage = events[-2]
    assert isinstance(usage, UsageReport)
    # prompt: (2 words + 3) + (3 words + 3); completion: 3 words
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (11, 3, False)
    assert events[-1] == Finished("stop")


def test_fixed_and_markdown(run: Run) -> None:
    assert text_of(run(collect(MockProvider(), req("fixed?text=Hi%20you")))) == "Hi you"
    assert text_of(run(collect(MockProvider(), req("fixed")))) == "OK"
    assert text_of(run(collect(MockProvider(), req("markdown")))) == DEMO_MARKDOWN


def test_lorem_is_deterministic_by_seed(run: Run) -> None:
    p = MockProvider()
    a = text_of(run(collect(p, req("lorem?n=30", seed=1))))
    b = text_of(run(collect(p, req("lorem?n=30", seed=1))))
    c = text_of(run(collect(p, req("lorem?n=30", seed=2))))
    assert a == b != c
    assert len(a.split()) == 30


def test_max_tokens_finishes_with_length(run: Run) -> None:
    events = run(collect(MockProvider(), req("tokens?n=50", max_tokens=5)))
    assert text_of(events) == "tok0 tok1 tok2 tok3 tok4"
    assert events[-1] == Finished("length")
    usage = events[-2]
    assert isinstance(usage, UsageReport) and usage.completion_tokens == 5


def test_stop_sequence_cuts_before_it(run: Run) -> None:
    events = run(collect(MockProvider(), req("fixed?text=alpha beta STOP gamma", stop=("STOP",))))
    assert text_of(events) == "alpha beta "
    assert events[-1] == Finished("stop")


def test_invalid_params_rejected_before_anything(run: Run) -> None:
    p = MockProvider()
    with pytest.raises(InvalidParams):
        run(collect(p, req("echo", temperature=5.0)))
    assert p.requests == []


@pytest.mark.parametrize(
    ("error", "cls"),
    [("server", ServerError), ("rate_limit", RateLimited), ("unreachable", Unreachable), ("auth", AuthError)],
)
def test_fail_before_first_token(run: Run, error: str, cls: type) -> None:
    with pytest.raises(cls):
        run(collect(MockProvider(), req(f"echo?fail=before&error={error}")))


def test_fail_mid_stream_keeps_partial_text(run: Run) -> None:
    seen: list[str] = []

    async def consume() -> None:
        async for e in MockProvider().stream(req("tokens?n=20&fail=mid&fail_after=4")):
            if isinstance(e, TextDelta):
                seen.append(e.text)

    with pytest.raises(StreamInterrupted) as info:
        run(consume())
    assert "".join(seen) == "tok0 tok1 tok2 tok3"
    assert info.value.partial_text == "tok0 tok1 tok2 tok3"


def test_enqueue_scripts_answers_in_order_then_falls_back(run: Run) -> None:
    p = MockProvider()
    p.enqueue(["first answer", MockScript("second")])
    assert text_of(run(collect(p, req("echo", "x")))) == "first answer"
    assert text_of(run(collect(p, req("echo", "x")))) == "second"
    assert text_of(run(collect(p, req("echo", "fallback")))) == "fallback"
    assert len(p.requests) == 3


def test_enqueued_failure_mid_and_before(run: Run) -> None:
    p = MockProvider()
    p.enqueue([MockScript("a b c d", fail_after=2), MockScript("x", fail_after=0, error="rate_limit")])
    with pytest.raises(StreamInterrupted) as info:
        run(collect(p, req("echo")))
    assert info.value.partial_text == "a b"
    with pytest.raises(RateLimited):
        run(collect(p, req("echo")))


def test_enqueued_rate_throttles_the_stream(run: Run) -> None:
    """At 100 tokens/s, 11 tokens cannot all arrive in under ~0.1 s (a lower bound only)."""
    p = MockProvider()
    p.enqueue([MockScript(" ".join(f"w{i}" for i in range(11)), rate=100.0)])

    async def timed() -> tuple[float, list[StreamEvent]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        events = await collect(p, req("echo"))
        return loop.time() - start, events

    elapsed, events = run(timed())
    assert text_of(events).split() == [f"w{i}" for i in range(11)]
    assert elapsed >= 0.09


def test_bad_option_is_invalid_params(run: Run) -> None:
    with pytest.raises(InvalidParams, match="Bad mock option"):
        run(collect(MockProvider(), req("echo?rate=fast")))


def test_split_and_count_tokens() -> None:
    assert split_tokens("a  b\nc") == ["a", "  b", "\nc"]
    count = MockProvider().count_tokens("echo", [ChatMessage("user", "one two")])
    assert (count.tokens, count.exact, count.method) == (5, True, "mock-words")


def test_think_streams_reasoning_tokens_before_the_answer(run: Run) -> None:
    events = run(collect(MockProvider(), req("fixed?text=the answer&think=3")))
    assert [type(e) for e in events] == [ReasoningDelta] * 3 + [TextDelta] * 2 + [UsageReport, Finished]
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "alpha beta gamma"
    assert text_of(events) == "the answer"
    usage = events[-2]
    assert isinstance(usage, UsageReport) and usage.completion_tokens == 5


def test_think_respects_rate_and_max_tokens(run: Run) -> None:
    async def timed() -> tuple[float, list[StreamEvent]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        events = await collect(MockProvider(), req("fixed?text=a b c&think=4&rate=100"))
        return loop.time() - start, events

    elapsed, events = run(timed())
    assert elapsed >= 6 / 100 * 0.9  # 7 tokens at 100/s: the thinking is paced too
    cut = run(collect(MockProvider(), req("fixed?text=a b c&think=4", max_tokens=5)))
    assert sum(isinstance(e, ReasoningDelta) for e in cut) == 4 and text_of(cut) == "a"
    assert cut[-1] == Finished("length")


@pytest.mark.parametrize(("model", "text", "params"), [
    ("echo", "  one  two\nthree  ", {}), ("lorem?n=40", "x", {}), ("markdown", "x", {}),
    ("tokens?n=300", "x", {"max_tokens": 120}), ("echo", "ab cd ef gh", {"stop": ["d e"]}),
    ("echo", "ab cd ef gh", {"stop": ["f g"]}),
])
def test_the_completion_count_is_the_words_of_the_answer(run: Run, model: str, text: str,
                                                          params: dict[str, Any]) -> None:
    events = run(collect(MockProvider(), req(model, text, **params)))
    usage = next(e for e in events if isinstance(e, UsageReport))
    assert usage.completion_tokens == len(text_of(events).split()) > 0
