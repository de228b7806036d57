"""The engine with the mock provider, a real PriceTable and a real UsageLedger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core.engine import Engine, LiveStats
from app.core.errors import (
    AuthError,
    InvalidParams,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Unreachable,
)
from app.core.events import Finished, StreamEvent, TextDelta, UsageReport
from app.core.paths import AppPaths
from app.core.pricing import PriceTable
from app.core.provider import ProviderContext, ProviderRegistry
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import Settings
from app.core.tokens import count_chat
from app.core.types import (
    AdapterSpec,
    ChatMessage,
    GenerationParams,
    GenerationRequest,
    ModelInfo,
    ModelRef,
    TokenCount,
)
from app.core.usage import UsageLedger
from app.providers.mock import MockProvider

Run = Callable[..., Any]


class FakeOpenAI:
    """A tiny provider under the ``openai`` id: fixed text, optional usage, no network."""

    id = "openai"

    def __init__(self, text: str = "Hello there, friend.", usage: UsageReport | None = None, fail: bool = False) -> None:
        self.text = text
        self.usage = usage
        self.fail = fail

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        for word in self.text.split(" "):
            yield TextDelta(word + " ")
            await asyncio.sleep(0)
        if self.fail:
            raise ServerError("upstream 500")
        if self.usage is not None:
            yield self.usage
        yield Finished("stop")

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        return count_chat(model, messages)

    def model_info(self, model: str) -> ModelInfo:
        return ModelInfo(ref=ModelRef("openai", model), display_name=model)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def ctx(tmp_path: Path) -> ProviderContext:
    return ProviderContext(Settings(), SecretStore(MemoryKeyring(), environ={}), AppPaths.default().ensure())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[UsageLedger]:
    led = UsageLedger(tmp_path / "usage.sqlite3")
    yield led
    led.close()


@pytest.fixture
def mock() -> MockProvider:
    return MockProvider()


def make_engine(ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider, openai: FakeOpenAI | None = None) -> Engine:
    factories: dict[str, Any] = {"mock": lambda _ctx: mock}
    if openai is not None:
        factories["openai"] = lambda _ctx: openai
    return Engine(ProviderRegistry(ctx, factories), PriceTable.load(), ledger)


def request(model: str, text: str = "one two three", **params: Any) -> GenerationRequest:
    return GenerationRequest(ModelRef.parse(model), (ChatMessage("user", text),), GenerationParams(**params))


def test_mock_generation_is_recorded(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    seen: list[tuple[StreamEvent, LiveStats]] = []
    result = run(engine.run(request("mock:echo"), lambda e, s: seen.append((e, s)), conversation_id="conv1"))
    assert result.text == "one two three"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.estimated) == (6, 3, False)
    assert result.cost_usd == Decimal(0)
    assert result.ttft_s is not None and result.ttft_s >= 0
    assert result.record_id is not None
    assert isinstance(seen[-1][0], Finished)
    [rec] = ledger.recent()
    assert rec == result.record
    assert (rec.provider, rec.model, rec.conversation_id, rec.cost_usd, rec.error) == ("mock", "echo", "conv1", "0", None)
    assert ledger.totals(conversation_id="conv1").requests == 1
    assert result.to_json()["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "cached_tokens": 0, "estimated": False}


def test_openai_cost_from_real_price_table(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    usage = UsageReport(prompt_tokens=1000, completion_tokens=500, cached_prompt_tokens=400)
    engine = make_engine(ctx, ledger, mock, FakeOpenAI(usage=usage))
    result = run(engine.run(request("openai:gpt-4o")))
    assert result.usage == usage
    assert result.cost_usd == Decimal("0.007")  # 600*2.50 + 400*1.25 + 500*10.00 per 1M
    [rec] = ledger.recent()
    assert rec.cost_usd == "0.007" and rec.cached_prompt_tokens == 400 and not rec.estimated
    assert result.to_json()["usage"]["cached_tokens"] == 400  # like OpenAI's prompt_tokens_details
    assert result.figures().sentence().startswith("1,000 in (400 cached) / 500 out tokens")
    assert ledger.totals().cost_usd == Decimal("0.007")


def test_usage_is_estimated_when_the_provider_sends_none(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock, FakeOpenAI(text="Hello there, friend."))
    req = request("openai:gpt-4o", "hello world")
    result = run(engine.run(req))
    assert result.usage.estimated is True
    assert result.usage.prompt_tokens == count_chat("gpt-4o", list(req.messages)).tokens
    assert result.usage.completion_tokens == count_chat("gpt-4o", [ChatMessage("assistant", result.text)]).tokens - count_chat(
        "gpt-4o", [ChatMessage("assistant", "")]).tokens
    assert result.usage.completion_tokens > 0
    assert result.cost_usd is not None and result.cost_usd > 0
    [rec] = ledger.recent()
    assert rec.estimated and ledger.totals().estimated_requests == 1


def test_unknown_model_on_openai_provider_has_unknown_cost(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock, FakeOpenAI(usage=UsageReport(10, 5)))
    result = run(engine.run(request("openai:llama3.1:8b")))
    assert result.cost_usd is None
    assert ledger.recent()[0].cost_usd is None
    assert ledger.totals().unknown_cost_requests == 1


def test_failure_mid_stream_keeps_partial_text_and_records_error(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    with pytest.raises(StreamInterrupted) as info:
        run(engine.run(request("mock:tokens?n=20&fail=mid&fail_after=3")))
    assert info.value.partial_text == "tok0 tok1 tok2"
    [rec] = ledger.recent()
    assert rec.finish_reason == "error" and rec.error and "cut" in rec.error
    assert rec.estimated  # no usage report arrived: counted locally
    assert rec.completion_tokens == 3


def test_provider_error_after_text_becomes_stream_interrupted(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock, FakeOpenAI(text="a b c", fail=True))
    with pytest.raises(StreamInterrupted) as info:
        run(engine.run(request("openai:gpt-4o-mini")))
    assert info.value.partial_text == "a b c "
    assert isinstance(info.value.__cause__, ServerError)
    assert ledger.recent()[0].error is not None


def test_failure_before_first_token_is_raised_as_is(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    with pytest.raises(ServerError):
        run(engine.run(request("mock:echo?fail=before")))
    [rec] = ledger.recent()
    assert (rec.finish_reason, rec.completion_tokens, rec.ttft_s) == ("error", 0, None)


def test_cancel_records_cancelled(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)

    async def scenario() -> None:
        got_three = asyncio.Event()

        def on_event(event: StreamEvent, stats: LiveStats) -> None:
            if stats.chunks >= 3:
                got_three.set()

        task = asyncio.create_task(engine.run(request("mock:tokens?n=100000&rate=200"), on_event))
        await asyncio.wait_for(got_three.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    [rec] = ledger.recent()
    assert rec.finish_reason == "cancelled"
    assert rec.error is None
    assert 3 <= rec.completion_tokens < 100000


def test_invalid_params_fail_before_anything_is_recorded(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    with pytest.raises(InvalidParams):
        run(engine.run(request("mock:echo", top_p=0.0)))
    assert mock.requests == [] and ledger.recent() == []


def test_adapters_and_endpoint_are_recorded(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    req = GenerationRequest(
        ModelRef.parse("mock:echo"), (ChatMessage("user", "hi"),), endpoint="local-test",
        adapters=(AdapterSpec("/a/pirate", 0.5, "pirate"), AdapterSpec("/a/poet")),
    )
    run(engine.run(req))
    rec = ledger.recent()[0]
    assert rec.adapter == "pirate:0.5,/a/poet:1" and rec.endpoint == "local-test"


def test_tokens_per_second_is_computed_for_long_answers(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    result = run(engine.run(request("mock:tokens?n=50&rate=500")))
    assert result.usage.completion_tokens == 50
    assert result.tokens_per_s is not None and result.tokens_per_s > 0
    assert ledger.recent()[0].tokens_per_s == result.tokens_per_s


class SlowToCloseOpenAI(FakeOpenAI):
    """Eleven tokens a few ms apart, then a long cleanup before the stream ends (as a local
    model's garbage collection or a slow connection close)."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        try:
            for i in range(11):
                yield TextDelta(f"t{i} ")
                await asyncio.sleep(0.002)
            yield UsageReport(5, 11)
            yield Finished("stop")
        finally:
            time.sleep(0.8)  # the cleanup itself (blocking the loop, as gc.collect does), not a wait for anything


def test_tokens_per_second_ends_at_the_last_token_not_at_the_providers_cleanup(
    run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider
) -> None:
    engine = make_engine(ctx, ledger, mock, SlowToCloseOpenAI())
    result = run(engine.run(request("openai:gpt-4o-mini")))
    assert result.duration_s >= 0.8  # the run's duration includes the cleanup
    assert result.tokens_per_s is not None and result.tokens_per_s > 25  # 10 tokens / (10 x ~2 ms), not / 0.8 s
    assert ledger.recent()[0].tokens_per_s == result.tokens_per_s


def test_cost_of_openai_compatible_endpoints_follows_where_they_run() -> None:
    """OpenAI's prices apply to OpenAI only: loopback servers are free, other hosts unknown."""
    from decimal import Decimal as D

    from app.core.engine import Engine
    from app.core.events import UsageReport
    from app.core.pricing import PriceTable
    from app.core.provider import ProviderContext, ProviderRegistry
    from app.core.settings import EndpointConfig, PriceOverride, Settings
    from app.core.types import ChatMessage, GenerationRequest, ModelRef

    settings = Settings()
    settings.endpoints.append(EndpointConfig(name="Remote vLLM", base_url="https://gpu.example.com/v1", kind="vllm"))
    engine = Engine(ProviderRegistry(ProviderContext(settings, None, None)), PriceTable.load())  # type: ignore[arg-type]
    usage = UsageReport(1_000_000, 0)

    def cost(endpoint: str | None, model: str = "gpt-4o") -> D | None:
        req = GenerationRequest(ModelRef("openai", model), (ChatMessage("user", "x"),), endpoint=endpoint)
        return engine.cost(req.model, usage, req.endpoint)

    assert cost(None) == D("2.50")
    assert cost("OpenAI") == D("2.50")
    assert cost("Ollama") == D(0)
    assert cost("http://127.0.0.1:9999/v1") == D(0)
    assert cost("Remote vLLM") is None
    engine.prices = PriceTable.load({"openai:gpt-4o": PriceOverride(input="1", output="2")})
    assert cost("Remote vLLM") == D("1")


class RefusingOpenAI(FakeOpenAI):
    """Fails before any output, the way a 401 / 429 / unreachable server does."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        raise self.error
        yield TextDelta("never")  # pragma: no cover - makes this an async generator


@pytest.mark.parametrize(
    "error",
    [AuthError("No API key is set for OpenAI."), Unreachable("Could not connect."), RateLimited("429")],
)
def test_request_refused_before_any_output_costs_nothing(
    run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider, error: Exception
) -> None:
    """A priced model that never answered must not show up as spent money or tokens."""
    engine = make_engine(ctx, ledger, mock, RefusingOpenAI(error))
    with pytest.raises(type(error)):
        run(engine.run(request("openai:gpt-4o", "a long prompt " * 50)))
    [rec] = ledger.recent()
    assert rec.finish_reason == "error" and rec.error
    assert (rec.prompt_tokens, rec.completion_tokens) == (0, 0)
    assert Decimal(rec.cost_usd or "0") == 0
    assert ledger.totals().cost_usd == 0


def test_reasoning_is_passed_on_counted_and_kept_out_of_the_answer(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    seen: list[tuple[str, int, int, bool]] = []

    def on_event(e: StreamEvent, s: LiveStats) -> None:
        seen.append((type(e).__name__, s.reasoning_chunks, s.chunks, s.first_token_at is None))

    result = run(engine.run(request("mock:fixed?text=four is the answer&think=5"), on_event))
    assert result.text == "four is the answer"
    assert result.reasoning == "alpha beta gamma delta model"
    assert result.to_json()["reasoning_chars"] == len(result.reasoning)
    assert seen[:5] == [("ReasoningDelta", i, 0, True) for i in range(1, 6)]
    assert seen[5] == ("TextDelta", 5, 1, False)
    assert result.usage.completion_tokens == 5 + 4  # reasoning counts as completion tokens


def test_ttft_is_the_first_answer_token_and_ttfr_the_first_reasoning_token(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    last: list[LiveStats] = []
    result = run(engine.run(request("mock:fixed?text=ok&think=4&rate=200"), lambda e, s: last.append(s)))
    stats = last[-1]
    assert stats.ttfr_s is not None and stats.ttft_s is not None
    assert stats.ttft_s - stats.ttfr_s >= 3 / 200 * 0.9  # the thinking phase is in the ttft
    assert result.ttft_s == stats.ttft_s and result.record.ttft_s == stats.ttft_s
    assert (stats.reasoning_chunks, stats.reasoning_chars) == (4, len("alpha beta gamma delta"))
    assert not stats.thinking


def test_failure_after_only_reasoning_has_no_partial_text(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    with pytest.raises(StreamInterrupted) as info:
        run(engine.run(request("mock:fixed?text=a b c&think=3&fail=mid&fail_after=0")))
    assert info.value.partial_text == ""


def test_running_out_of_tokens_while_thinking_keeps_length(run: Run, ctx: ProviderContext, ledger: UsageLedger, mock: MockProvider) -> None:
    engine = make_engine(ctx, ledger, mock)
    result = run(engine.run(request("mock:fixed?text=never said&think=20", max_tokens=6)))
    assert (result.text, result.finish_reason, result.usage.completion_tokens) == ("", "length", 6)
    assert len(result.reasoning.split()) == 6 and result.ttft_s is None


def test_tool_calls_are_built_once_and_land_in_the_result_and_ledger(run: Run, ledger: UsageLedger) -> None:
    """Streamed call pieces (a real loopback server: split arguments, two calls interleaved)
    become whole calls in the result, once; the answer's first call counts as its first token."""
    from app.core.tools import ToolCall, ToolSpec
    from app.providers.openai import OpenAIProvider
    from tests.support.openai_server import OpenAIServer, provider_context
    from tests.support.openai_tool_calls import tool_calls

    with OpenAIServer() as server:
        ctx = provider_context([server.endpoint()])
        registry = ProviderRegistry(ctx, {"openai": lambda c: OpenAIProvider(c)})
        engine = Engine(registry, PriceTable.load(), ledger)
        server.enqueue(tool_calls(("call_a", "get_weather", ['{"ci', 'ty": "Par', 'is"}']),
                                  ("call_b", "get_time", '{"tz": "UTC"}')))  # fmt: skip
        req = GenerationRequest(ModelRef("openai", "gpt-4o-mini"), (ChatMessage("user", "weather?"),),
                                endpoint="Loopback", tools=(ToolSpec("get_weather"), ToolSpec("get_time")))  # fmt: skip

        async def scenario() -> Any:
            try:
                return await engine.run(req)
            finally:
                await registry.aclose()

        result = run(scenario())
    assert result.tool_calls == (ToolCall("call_a", "get_weather", '{"city": "Paris"}', 0),
                                 ToolCall("call_b", "get_time", '{"tz": "UTC"}', 1))  # fmt: skip
    assert result.finish_reason == "tool_calls" and result.text == "" and result.ttft_s is not None
    assert result.to_json()["tool_calls"] == [
        {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}, "index": 0},
        {"id": "call_b", "name": "get_time", "arguments": {"tz": "UTC"}, "index": 1}]  # fmt: skip
    assert ledger.recent(1)[0].finish_reason == "tool_calls"
