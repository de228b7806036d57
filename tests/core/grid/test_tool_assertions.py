"""Structured output and tool-call assertions (promptfoo's semantics): is-json and
contains-json with a JSON Schema, is-valid-openai-tools-call and tool-call-f1."""

from __future__ import annotations

import pytest

from app.core.grid.assertions import Answer, check, json_objects
from app.core.grid.cases import CasesFileError, assertion_line, parse_assertion_line
from app.core.grid.model import Assertion
from app.core.tools import ToolCall, ToolSpec

WEATHER = ToolSpec("get_weather", "", {"type": "object", "required": ["city"], "additionalProperties": False,
                                       "properties": {"city": {"type": "string"}}})  # fmt: skip
TIME = ToolSpec("get_time", "", {"type": "object", "properties": {"tz": {"type": "string"}}})
TOOLS = (WEATHER, TIME)
PERSON = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}  # fmt: skip


def calls(*pairs: tuple[str, str]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(f"call_{i}", name, args, i) for i, (name, args) in enumerate(pairs))


def run(a: Assertion, text: str = "", made: tuple[ToolCall, ...] = (), tools: tuple[ToolSpec, ...] = TOOLS) -> tuple[bool, str]:
    result = check(a, Answer(text, tool_calls=made, tools=tools))
    return result.passed, result.reason


def test_is_json_with_a_schema_names_the_path_of_the_first_error() -> None:
    assert run(Assertion("is-json", PERSON), '{"name": "Ada", "age": 36}') == (True, "the answer is JSON that follows the schema")
    ok, reason = run(Assertion("is-json", PERSON), '{"name": "Ada", "age": "36"}')
    assert not ok and reason == "the answer does not follow the schema: $.age: '36' is not of type 'integer'"
    ok, reason = run(Assertion("is-json", PERSON), "Ada is 36")
    assert not ok and reason.startswith("the answer is not JSON (Expecting value at line 1, column 1)")
    assert run(Assertion("not-is-json", PERSON), '{"name": "Ada"}')[0] is True  # JSON, but not of the schema


def test_a_schema_from_a_cases_file_that_is_not_one_fails_either_way() -> None:
    for kind in ("is-json", "not-is-json", "contains-json"):
        ok, reason = run(Assertion(kind, '{"type": "objekt"}'), "{}")
        assert not ok and reason.startswith("invalid JSON schema: the schema: $.type: 'objekt' is not valid")
    assert run(Assertion("is-json", "type: object\nrequired: [name]"), '{"name": 1}')[0] is True  # YAML text


def test_contains_json_finds_objects_in_prose() -> None:
    text = 'Sure! {"name": "Ada"} and then {"name": "Bob", "age": 41} {broken'
    assert json_objects(text) == [{"name": "Ada"}, {"name": "Bob", "age": 41}]
    assert run(Assertion("contains-json"), text) == (True, "the answer contains JSON (2 objects)")
    assert run(Assertion("contains-json", PERSON), text) == (True, "the answer contains JSON that follows the schema")
    ok, reason = run(Assertion("contains-json", PERSON), 'first {"name": "Ada"}')
    assert not ok and reason == "no JSON in the answer follows the schema (the last: $: 'age' is a required property)"
    assert run(Assertion("contains-json"), "no braces here") == (False, "the answer contains no JSON object")
    assert run(Assertion("not-contains-json"), "no braces here")[0] is True
    assert json_objects("{" * 100_000) == []  # bounded: no object, no hang, no RecursionError


def test_valid_tools_calls() -> None:
    a = Assertion("is-valid-openai-tools-call")
    made = calls(("get_weather", '{"city": "Paris"}'), ("get_time", ""))
    assert run(a, made=made) == (True, "2 calls of offered tools with valid arguments")


@pytest.mark.parametrize(
    ("made", "tools", "reason"),
    [
        ((), TOOLS, "the model made no tool calls"),
        (calls(("get_weather", '{"city": "Paris"}')), (), "the provider offers no tools (set its config.tools)"),
        (calls(("get_stock", "{}")), TOOLS, "get_stock is not an offered tool (offered: get_weather, get_time)"),
        (calls(("get_weather", '{"city": "Par')), TOOLS, "get_weather: the arguments are not JSON: '{\"city\": \"Par'"),
        (calls(("get_weather", '["Paris"]')), TOOLS, "get_weather: the arguments are not a JSON object"),
        (calls(("get_weather", '{"city": 7}')), TOOLS,
         "get_weather: the arguments do not follow its parameters: $.city: 7 is not of type 'string'"),
        (calls(("get_time", "{}"), ("get_weather", "{}")), TOOLS,
         "get_weather: the arguments do not follow its parameters: $: 'city' is a required property"),
    ],
)
def test_invalid_tools_calls_say_why(made: tuple[ToolCall, ...], tools: tuple[ToolSpec, ...], reason: str) -> None:
    ok, said = run(Assertion("is-valid-openai-tools-call"), made=made, tools=tools)
    assert not ok and said.startswith(reason)


def test_tool_call_f1_as_promptfoo_computes_it() -> None:
    expected = ["get_weather", "get_time"]
    both = calls(("get_time", "{}"), ("get_weather", "{}"), ("get_weather", "{}"))  # repeats count once
    ok, reason = run(Assertion("tool-call-f1", expected), made=both)
    assert ok and reason.startswith("tool-call F1 1.000 (precision 1.000, recall 1.000; at least 1)")
    one_and_a_wrong = calls(("get_weather", "{}"), ("get_stock", "{}"))  # precision 1/2, recall 1/2
    ok, reason = run(Assertion("tool-call-f1", expected), made=one_and_a_wrong)
    assert not ok and reason == ("tool-call F1 0.500 (precision 0.500, recall 0.500; at least 1): "
                                 "expected [get_time, get_weather], called [get_stock, get_weather]")  # fmt: skip
    only_one = calls(("get_weather", "{}"))  # precision 1, recall 1/2: F1 2/3
    assert run(Assertion("tool-call-f1", expected, 0.6), made=only_one)[0] is True
    assert run(Assertion("tool-call-f1", expected, 0.7), made=only_one)[0] is False
    assert run(Assertion("not-tool-call-f1", expected, 0.7), made=only_one)[0] is True
    ok, reason = run(Assertion("tool-call-f1", "get_weather, get_time"), made=())  # a comma list; no calls: F1 0
    assert not ok and reason.startswith("tool-call F1 0.000") and reason.endswith("called [none]")


def test_one_line_forms_of_the_new_types() -> None:
    a = parse_assertion_line('is-json: {"type": "object", "required": ["city"]}')
    assert a == Assertion("is-json", {"type": "object", "required": ["city"]})
    assert parse_assertion_line(assertion_line(a)) == a
    assert parse_assertion_line("tool-call-f1(0.5): get_weather, get_time") == Assertion(
        "tool-call-f1", ["get_weather", "get_time"], 0.5)
    assert parse_assertion_line("is-valid-openai-tools-call") == Assertion("is-valid-openai-tools-call")
    with pytest.raises(CasesFileError, match=r"\$\.type: 'objekt' is not valid"):
        parse_assertion_line('contains-json: {"type": "objekt"}')
    with pytest.raises(CasesFileError, match="not an assertion type"):
        parse_assertion_line("not-is-valid-openai-tools-call")
