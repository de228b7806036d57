"""Tools and structured output on the OpenAI provider, against the real loopback server:
streamed tool-call deltas, the request bodies, tool messages, and servers that refuse."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.core.errors import BadRequest
from app.core.events import Finished, StreamEvent, TextDelta, ToolCallDelta, UsageReport
from app.core.tools import ResponseSchema, ToolCall, ToolCallAccumulator, ToolSpec
from app.core.types import ChatMessage, GenerationRequest, ModelRef
from app.providers.openai import OpenAIProvider
from app.providers.openai_tools import ToolDeltas, openai_messages, tool_choice_value
from tests.support.openai_server import OpenAIServer, chunk, error, provider_context, raw, sse, text
from tests.support.openai_tool_calls import answer_tool_results, tool_calls

Run = Callable[..., Any]

WEATHER = ToolSpec("get_weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})  # fmt: skip
TIME = ToolSpec("get_time", "", {"type": "object", "properties": {"tz": {"type": "string"}}})
ASK = (ChatMessage("user", "Weather in Paris, and the time in UTC?"),)
# split anywhere: inside a key, inside a string value, between the colon and the value
PARIS = ['{"ci', 'ty": "Pa', "ris, Fr", 'ance"', "}"]
UTC = ['{"tz"', ': "U', 'TC"}']
SCHEMA = ResponseSchema({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                         "additionalProperties": False}, name="reply")  # fmt: skip


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


def provider_for(server: OpenAIServer) -> OpenAIProvider:
    return OpenAIProvider(provider_context([server.endpoint()]))


def request(messages: tuple[ChatMessage, ...] = ASK, **fields: Any) -> GenerationRequest:
    return GenerationRequest(ModelRef("openai", "test-model"), messages, endpoint="Loopback", **fields)


async def collect(provider: OpenAIProvider, req: GenerationRequest) -> list[StreamEvent]:
    try:
        return [event async for event in provider.stream(req)]
    finally:
        await provider.aclose()


def calls_of(events: list[StreamEvent]) -> tuple[ToolCall, ...]:
    acc = ToolCallAccumulator()
    for e in events:
        if isinstance(e, ToolCallDelta):
            acc.add(e.index, e.id, e.name, e.arguments)
    return acc.calls()


def test_two_interleaved_calls_stream_as_deltas_and_finish_with_tool_calls(server: OpenAIServer, run: Run) -> None:
    server.enqueue(tool_calls(("call_a", "get_weather", PARIS), ("call_b", "get_time", UTC),
                              prompt_tokens=40, completion_tokens=12))  # fmt: skip
    events = run(collect(provider_for(server), request(tools=(WEATHER, TIME))))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    # the pieces exactly as they came: openings first (id and name), then arguments by index
    assert deltas[:2] == [ToolCallDelta(0, "call_a", "get_weather", ""), ToolCallDelta(1, "call_b", "get_time", "")]
    assert [(d.index, d.arguments) for d in deltas[2:]] == [
        (0, PARIS[0]), (1, UTC[0]), (0, PARIS[1]), (1, UTC[1]), (0, PARIS[2]), (1, UTC[2]), (0, PARIS[3]), (0, PARIS[4])]
    assert all(d.id is None and d.name is None for d in deltas[2:])
    assert calls_of(events) == (ToolCall("call_a", "get_weather", '{"city": "Paris, France"}', 0),
                                ToolCall("call_b", "get_time", '{"tz": "UTC"}', 1))  # fmt: skip
    assert calls_of(events)[0].parsed_arguments() == {"city": "Paris, France"}
    assert not any(isinstance(e, TextDelta) for e in events)
    assert events[-2:] == [UsageReport(40, 12), Finished("tool_calls")]


def test_text_before_the_calls_comes_as_text(server: OpenAIServer, run: Run) -> None:
    server.enqueue(tool_calls(("call_a", "get_weather", '{"city": "Oslo"}'), text_before=["Let me ", "check."]))
    events = run(collect(provider_for(server), request(tools=(WEATHER,))))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me check."
    assert calls_of(events) == (ToolCall("call_a", "get_weather", '{"city": "Oslo"}', 0),)
    assert events[-1] == Finished("tool_calls")


def test_request_body_carries_tools_choice_parallel_and_response_format(server: OpenAIServer, run: Run) -> None:
    server.enqueue(text("ok"), text("ok"), text('{"answer": "x"}'), text("{}"))
    provider = provider_for(server)
    run(collect(provider, request(tools=(WEATHER, TIME), tool_choice="required", parallel_tool_calls=False)))
    run(collect(provider, request(tools=(WEATHER,), tool_choice="get_weather")))
    run(collect(provider, request(response_schema=SCHEMA)))
    run(collect(provider, request(response_schema=ResponseSchema())))
    first, named, schema, json_mode = (r.json for r in server.chat_requests)
    assert first["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                          "parameters": dict(WEATHER.parameters)}},
        {"type": "function", "function": {"name": "get_time", "parameters": dict(TIME.parameters)}}]  # fmt: skip
    assert first["tool_choice"] == "required" and first["parallel_tool_calls"] is False
    assert named["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "parallel_tool_calls" not in named and "response_format" not in named
    assert schema["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "reply", "schema": dict(SCHEMA.schema or {}), "strict": True}}  # fmt: skip
    assert "tools" not in schema and "tool_choice" not in schema
    assert json_mode["response_format"] == {"type": "json_object"}


def test_a_plain_request_sends_none_of_it(server: OpenAIServer, run: Run) -> None:
    run(collect(provider_for(server), request()))
    body = server.chat_requests[0].json
    assert not {"tools", "tool_choice", "parallel_tool_calls", "response_format"} & set(body)


def test_results_go_back_as_tool_messages_and_the_model_answers(server: OpenAIServer, run: Run) -> None:
    server.enqueue(tool_calls(("call_a", "get_weather", PARIS), ("call_b", "get_time", UTC)), answer_tool_results())
    provider = provider_for(server)
    first = run(collect(provider, request(tools=(WEATHER, TIME))))
    calls = calls_of(first)
    follow = (*ASK, ChatMessage("assistant", "", tool_calls=calls),
              ChatMessage("tool", "18 C, cloudy", tool_call_id="call_a"),
              ChatMessage("tool", "12:00", tool_call_id="call_b"))  # fmt: skip
    second = run(collect(provider, request(follow, tools=(WEATHER, TIME))))
    assert "".join(e.text for e in second if isinstance(e, TextDelta)) == "Results: call_a=18 C, cloudy; call_b=12:00"
    assert second[-1] == Finished("stop")
    sent = server.chat_requests[1].json["messages"]
    assert sent[1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "".join(PARIS)}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "".join(UTC)}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "18 C, cloudy"},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"}]  # fmt: skip


def test_a_missing_result_is_refused_as_openai_does(server: OpenAIServer, run: Run) -> None:
    follow = (*ASK, ChatMessage("assistant", "On it.", tool_calls=(ToolCall("call_a", "get_weather", "{}"),)),
              ChatMessage("user", "well?"))  # fmt: skip
    with pytest.raises(BadRequest, match="call_a"):
        run(collect(provider_for(server), request(follow, tools=(WEATHER,))))
    assert server.chat_requests[0].json["messages"][1]["content"] == "On it."


@pytest.mark.parametrize("option, feature", [("reject_tools", "tools"), ("reject_response_format", "response_format")])
def test_a_server_without_the_feature_gets_a_clear_error_once(option: str, feature: str, run: Run) -> None:
    with OpenAIServer(**{option: True}) as server:
        provider = provider_for(server)
        req = request(tools=(WEATHER,)) if feature == "tools" else request(response_schema=SCHEMA)
        with pytest.raises(BadRequest, match=f"does not accept {feature}") as caught:
            run(collect(provider, req))
        assert len(server.chat_requests) == 1  # not retried
        assert "without" in (caught.value.hint or "")
        run(collect(provider, request()))  # the same endpoint without the feature still answers
        assert len(server.chat_requests) == 2


def test_another_bad_request_is_not_blamed_on_tools(server: OpenAIServer, run: Run) -> None:
    # the endpoint's name says "tools": only the server's own words count
    server.enqueue(error(400, "temperature is out of range"))
    provider = OpenAIProvider(provider_context([server.endpoint("function tools box")]))
    req = GenerationRequest(ModelRef("openai", "test-model"), ASK, endpoint="function tools box", tools=(WEATHER,))
    with pytest.raises(BadRequest) as caught:
        run(collect(provider, req))
    assert "does not accept" not in caught.value.message and "temperature" in caught.value.message


def test_calls_without_index_and_a_stop_finish_still_make_calls(server: OpenAIServer, run: Run) -> None:
    # some servers send each whole call in one delta, without "index", and finish with "stop"
    whole = [{"tool_calls": [{"id": f"c{i}", "type": "function",
                              "function": {"name": "get_time", "arguments": json.dumps({"tz": tz})}}]}
             for i, tz in enumerate(("UTC", "CET"))]  # fmt: skip
    server.enqueue(raw(*sse(*(chunk(None, delta=None, choices=[{"index": 0, "delta": d, "finish_reason": None}])
                              for d in whole), chunk(None, "stop"), "[DONE]")))  # fmt: skip
    events = run(collect(provider_for(server), request(tools=(TIME,))))
    assert calls_of(events) == (ToolCall("c0", "get_time", '{"tz": "UTC"}', 0),
                                ToolCall("c1", "get_time", '{"tz": "CET"}', 1))  # fmt: skip
    assert events[-1] == Finished("tool_calls")


def test_without_server_usage_the_calls_and_tools_are_counted(run: Run) -> None:
    with OpenAIServer(send_usage=False) as server:
        server.enqueue(tool_calls(("call_a", "get_weather", PARIS)), tool_calls(("call_a", "get_weather", PARIS)))
        provider = provider_for(server)
        with_tools = run(collect(provider, request(tools=(WEATHER, TIME))))
        report = next(e for e in with_tools if isinstance(e, UsageReport))
        assert report.estimated and report.completion_tokens >= 5  # the calls' name and arguments
        bare = run(collect(provider_for(server), request(tools=(WEATHER,))))
        fewer = next(e for e in bare if isinstance(e, UsageReport))
        assert report.prompt_tokens > fewer.prompt_tokens  # TIME's JSON counted too


def test_message_serialization_and_tool_choice_values() -> None:
    call = ToolCall("call_1", "get_time", '{"tz": "UTC"}')
    assert openai_messages([ChatMessage("assistant", "", tool_calls=(call,)),
                            ChatMessage("assistant", "Checking.", tool_calls=(call,)),
                            ChatMessage("tool", "12:00", tool_call_id="call_1"),
                            ChatMessage("user", "hi")]) == [  # fmt: skip
        {"role": "assistant", "content": None, "tool_calls": [call.to_openai()]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call.to_openai()]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
        {"role": "user", "content": "hi"}]  # fmt: skip
    assert [tool_choice_value(c) for c in ("auto", "none", "required")] == ["auto", "none", "required"]
    assert tool_choice_value("get_time") == {"type": "function", "function": {"name": "get_time"}}


def test_tool_deltas_number_calls_that_come_without_an_index() -> None:
    class Fn:
        def __init__(self, name: str | None, arguments: str) -> None:
            self.name, self.arguments = name, arguments

    class Piece:
        def __init__(self, index: int | None, id: str | None, fn: Fn) -> None:
            self.index, self.id, self.function = index, id, fn

    class Delta:
        def __init__(self, *calls: Piece) -> None:
            self.tool_calls = list(calls)

    deltas = ToolDeltas()
    got = [deltas.events(Delta(Piece(None, "a", Fn("f", "{")))), deltas.events(Delta(Piece(None, None, Fn(None, "}")))),
           deltas.events(Delta(Piece(None, "b", Fn("g", "{}")))), deltas.events(Delta(Piece(None, "a", Fn(None, ""))))]
    assert [[e.index for e in g] for g in got] == [[0], [0], [1], [0]]
    assert deltas.events(None) == [] and deltas.finish("stop") == "tool_calls" and deltas.finish("length") == "length"
    assert ToolDeltas().finish("stop") == "stop"
