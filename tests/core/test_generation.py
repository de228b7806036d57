"""Tests of app/core/generation.py: the live figures and an answer's result and JSON."""

from __future__ import annotations

from decimal import Decimal

from app.core.events import UsageReport
from app.core.generation import GenerationResult, LiveStats
from app.core.tools import ToolCall
from app.core.types import (
    ChatMessage,
    GenerationParams,
    GenerationRecord,
    GenerationRequest,
    ModelRef,
)


def result(text: str = "hi", *, seed: int | None = 7, cost: Decimal | None = Decimal("0.002"),
           tool_calls: tuple[ToolCall, ...] = (), logprobs: int | None = None) -> GenerationResult:
    request = GenerationRequest(ModelRef.parse("openai:gpt-x"), (ChatMessage("user", "q"),),
                                GenerationParams(seed=seed, logprobs=logprobs))
    rec = GenerationRecord(1.0, "openai", "gpt-x", None, None, 10, 4, 2, False,
                           None if cost is None else str(cost), 0.25, 1.5, 8.0, "stop")
    return GenerationResult(request, text, UsageReport(10, 4, 2), cost, 0.25, 1.5, 8.0, "stop", rec,
                            reasoning="because", load_s=3.0, reasoning_tokens=5, tool_calls=tool_calls)


def test_live_stats_measure_from_the_first_answer_token_and_speed_from_the_first_token() -> None:
    stats = LiveStats(started=10.0, created=9.0)
    assert stats.ttft_s is None and stats.tokens_per_s() is None and not stats.thinking
    stats.first_reasoning_at, stats.reasoning_chunks = 11.0, 4
    assert stats.thinking and stats.ttfr_s == 1.0 and stats.tokens_per_s(now=12.0) is None
    stats.first_token_at, stats.chunks = 12.0, 7
    assert not stats.thinking and stats.ttft_s == 2.0
    assert stats.tokens_per_s(now=13.0) == 5.0  # 11 chunks since 11.0 (reasoning first): 10 / 2 s
    assert stats.tokens_per_s(tokens=1, now=13.0) is None
    assert stats.decode_end(20.0) == 20.0  # no later chunk: the stream's end
    stats.last_token_at = 14.0
    assert stats.decode_end(20.0) == 14.0  # the last chunk, not what the provider did after it


def test_live_stats_count_each_chunk_and_keep_the_first_arrival_of_each_kind() -> None:
    stats = LiveStats()
    stats.add_reasoning("let me")
    first_reasoning = stats.first_reasoning_at
    assert first_reasoning is not None and stats.last_token_at == first_reasoning and stats.first_token_at is None
    stats.add_reasoning(" think")
    stats.add_answer("Hi")
    first_answer = stats.first_token_at
    assert first_answer is not None and first_answer >= first_reasoning
    stats.add_answer(" there")
    assert stats.first_reasoning_at == first_reasoning and stats.first_token_at == first_answer  # kept
    assert stats.last_token_at is not None and stats.last_token_at >= first_answer
    assert (stats.chunks, stats.chars, stats.reasoning_chunks, stats.reasoning_chars) == (2, 8, 2, 12)
    calls_only = LiveStats()
    assert calls_only.arrived(None) == calls_only.last_token_at  # a tool call first: its time starts the answer
    assert calls_only.arrived(1.0) == 1.0


def test_figures_keep_the_record_the_seed_and_the_load_time() -> None:
    figures = result().figures()
    assert (figures.prompt_tokens, figures.completion_tokens, figures.cached_prompt_tokens) == (10, 4, 2)
    assert figures.seed == 7 and figures.load_s == 3.0 and figures.reasoning_tokens == 5
    assert figures.cost_usd == "0.002" and figures.finish_reason == "stop"


def test_to_json_is_the_cli_object() -> None:
    data = result(cost=None).to_json()
    assert data["model"] == "openai:gpt-x" and data["text"] == "hi" and data["cost_usd"] is None
    assert data["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "cached_tokens": 2, "estimated": False}
    assert data["reasoning_chars"] == len("because")
    assert "tokens" not in data and "notes" not in data and "tool_calls" not in data
    assert result(logprobs=0).to_json()["tokens"] == []


def test_to_json_parses_tool_call_arguments_where_they_are_json() -> None:
    calls = (ToolCall("c1", "add", '{"a": 1}'), ToolCall("c2", "echo", "not json"))
    out = result(tool_calls=calls).to_json()["tool_calls"]
    assert isinstance(out, list)
    assert [c["arguments"] for c in out] == [{"a": 1}, "not json"]
    assert [c["name"] for c in out] == ["add", "echo"]
