"""Chat Completions bodies -> the core's request: messages with tool turns, tools,
tool_choice, response_format, logprobs and the max-token aliases."""

from __future__ import annotations

import pytest

from app.core.errors import AppError
from app.core.types import ModelRef
from app.serve.catalog import Target
from app.serve.wire import parse_chat

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}}}}}


def parse(**body: object) -> object:
    full = {"model": "mock:echo", "messages": [{"role": "user", "content": "hi"}], **body}
    return parse_chat(full, lambda mid: Target(ModelRef.parse(mid)), lambda _mid: 0.7)


def test_tool_turns_tools_and_schema_reach_the_request() -> None:
    call = parse(messages=[
        {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ], tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        max_completion_tokens=7, logprobs=True, top_logprobs=3, stream=True, stream_options={"include_usage": True})
    req = call.request  # type: ignore[attr-defined]
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert req.messages[0].content == "be brief" and req.messages[2].tool_calls[0].name == "get_weather"
    assert req.messages[3].tool_call_id == "c1"
    assert req.tools[0].name == "get_weather" and req.tool_choice == "get_weather" and req.parallel_tool_calls is False
    assert req.response_schema is not None and req.response_schema.name == "w"
    assert req.params.max_tokens == 7 and req.params.logprobs == 3
    assert call.stream and call.include_usage and call.logprobs  # type: ignore[attr-defined]


def test_defaults_follow_the_model_and_openai() -> None:
    call = parse(max_tokens=5)
    req = call.request  # type: ignore[attr-defined]
    assert req.params.temperature == 0.7 and req.params.max_tokens == 5 and req.params.logprobs is None
    assert not call.include_usage  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "robot", "content": "x"}]},
    {"messages": [{"role": "tool", "content": "x"}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
    {"top_logprobs": 2},
    {"temperature": True},
    {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
    {"tool_choice": 3},
])
def test_bad_bodies_name_the_field(body: dict[str, object]) -> None:
    with pytest.raises(AppError):
        parse(**body)
