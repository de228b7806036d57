"""Tool definitions, calls, results and response schemas (app/core/tools.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.errors import ToolSchemaError
from app.core.tools import (
    ResponseSchema,
    ToolCall,
    ToolCallAccumulator,
    parse_tools,
    validate_answer,
)

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tools_in_openais_format_load_and_go_back_out_unchanged() -> None:
    tools = parse_tools([WEATHER, {"type": "function", "function": {"name": "now"}}], "tools.json")
    assert [t.name for t in tools] == ["get_weather", "now"]
    assert tools[0].to_openai() == WEATHER
    assert tools[1].to_openai()["function"]["parameters"] == {"type": "object", "properties": {}}
    assert parse_tools({"tools": [WEATHER]}, "x")[0].name == "get_weather"  # {"tools": [...]} too


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "x"}, "expected a list of tools"),
        (["get_weather"], "tools[0]: each tool must be an object"),
        ([{"type": "retrieval"}], "only {\"type\": \"function\""),
        ([{"type": "function", "function": {"name": "bad name!"}}], "tools[0].function.name: 'bad name!'"),
        ([WEATHER, WEATHER], "tool 'get_weather': the name is used twice"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
          "properties": {"n": {"type": "integer", "minimum": "zero"}}}}}],
         "tools.yaml: tool 'f': parameters: $.properties.n.minimum: 'zero' is not of type 'number'"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}],
         "tool 'f': parameters: $.type:"),
    ],
)
def test_a_bad_tool_is_named_with_its_file_and_json_path(data: Any, expected: str) -> None:
    with pytest.raises(ToolSchemaError) as err:
        parse_tools(data, "tools.yaml")
    assert expected in err.value.user_message()
    assert err.value.user_message().startswith("tools.yaml")


def test_streamed_pieces_of_two_interleaved_calls_make_two_whole_calls() -> None:
    acc = ToolCallAccumulator()
    assert not acc
    acc.add(0, "call_a", "get_weather", '{"ci')
    acc.add(1, "call_b", "get_weather", "")
    acc.add(0, arguments='ty": "Par')
    acc.add(1, arguments='{"city": "Oslo"}')
    acc.add(0, arguments='is"}')
    calls = acc.calls()
    assert calls == (ToolCall("call_a", "get_weather", '{"city": "Paris"}', 0),
                     ToolCall("call_b", "get_weather", '{"city": "Oslo"}', 1))  # fmt: skip
    assert calls[0].parsed_arguments() == {"city": "Paris"}
    assert ToolCall("x", "f", '{"city": ').parsed_arguments() is None  # not valid JSON: shown, not raised
    assert ToolCall.from_json(calls[1].to_openai()) == ToolCall("call_b", "get_weather", '{"city": "Oslo"}', 0)


def test_answers_are_checked_against_the_schema_with_a_path() -> None:
    schema = ResponseSchema({"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]},
                            name="person")  # fmt: skip
    assert validate_answer('{"age": 3}', schema) is None
    assert validate_answer('{"age": "three"}', schema) == "$.age: 'three' is not of type 'integer'"
    assert validate_answer("{}", schema) == "$: 'age' is a required property"
    assert (validate_answer("nope", schema) or "").startswith("not JSON")
    assert validate_answer("[1]", ResponseSchema()) == "not a JSON object"
    assert schema.to_openai() == {"type": "json_schema", "json_schema": {
        "name": "person", "schema": dict(schema.schema or {}), "strict": True}}  # fmt: skip
    assert ResponseSchema().to_openai() == {"type": "json_object"}
