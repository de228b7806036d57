"""``python -m app grid`` with tools and structured output against the loopback server: the
provider's tools, tool_choice and response_format reach the request body, the streamed calls
are kept in the cells and graded (is-valid-openai-tools-call, tool-call-f1, is-json with a
schema), and a bad tools or schema file stops the run before anything is sent (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from tests.support.openai_server import Behaviour, OpenAIServer, text
from tests.support.openai_tool_calls import tool_calls

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                      "parameters": {"type": "object", "required": ["city"], "additionalProperties": False,
                                                     "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
                                                                          "properties": {"tz": {"type": "string"}}}}},
]  # fmt: skip
PERSON = {"type": "object", "required": ["name", "age"], "additionalProperties": False,
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}  # fmt: skip
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=("gpt-4o-mini",)) as srv:
        yield srv


def answer_by_prompt(weather_args: str) -> Behaviour:
    """Calls for the weather question (arguments split across deltas, two calls at once), a
    JSON answer for the person question: cells run concurrently, so the answer follows the
    request, not the order."""

    def reply(body: dict[str, Any]) -> Behaviour:
        prompt = body["messages"][-1]["content"]
        if "weather" in prompt:
            return tool_calls(("call_w", "get_weather", weather_args), ("call_t", "get_time", '{"tz": "CET"}'))
        return text('{"name": "Ada", ', '"age": 36}')

    return Behaviour(reply=reply)


def write_grid(tmp_path: Path, server: OpenAIServer) -> Path:
    (tmp_path / "tools.yaml").write_text(json.dumps(TOOLS), encoding="utf-8")  # JSON is YAML too
    (tmp_path / "format.json").write_text(json.dumps(FORMAT), encoding="utf-8")
    (tmp_path / "person.json").write_text(json.dumps(PERSON), encoding="utf-8")
    path = tmp_path / "grid.yaml"
    path.write_text(f"""\
prompts: ["{{{{q}}}}"]
providers:
  - id: openai:gpt-4o-mini
    config:
      base_url: "{server.base_url}"
      tools: file://tools.yaml
      tool_choice: auto
      parallel_tool_calls: true
      response_format: file://format.json
tests:
  - description: weather
    vars: {{q: "What is the weather in Paris, and the time?"}}
    assert:
      - type: is-valid-openai-tools-call
      - {{type: tool-call-f1, value: [get_weather, get_time]}}
  - description: person
    vars: {{q: "Who wrote the first program?"}}
    assert:
      - {{type: is-json, value: file://person.json}}
""", encoding="utf-8")  # fmt: skip
    return path


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, Any], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, json.loads(out.splitlines()[-1]), err


def test_tools_and_schema_reach_the_server_and_the_calls_are_graded(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.default = answer_by_prompt(['{"ci', 'ty": "Pa', 'ris"}'])
    code, data, err = run(capsys, ["grid", str(write_grid(tmp_path, server)), "--json", "-o", str(tmp_path / "r.csv")])
    assert code == 0, err
    cells = {c["description"]: c for c in data["cells"]}
    weather, person = cells["weather"], cells["person"]
    assert weather["tool_calls"] == [{"id": "call_w", "name": "get_weather", "arguments": {"city": "Paris"}},
                                     {"id": "call_t", "name": "get_time", "arguments": {"tz": "CET"}}]  # fmt: skip
    assert [a["pass"] for a in weather["asserts"]] == [True, True]
    assert weather["asserts"][1]["reason"].startswith("tool-call F1 1.000")
    assert person["tool_calls"] == [] and person["asserts"][0]["pass"] is True
    assert 'CALLS weather × openai:gpt-4o-mini: → get_weather({"city": "Paris"}) → get_time({"tz": "CET"})' in err
    assert len(server.chat_requests) == 2
    for req in server.chat_requests:
        body = req.json
        assert body["tools"] == TOOLS and body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True
        assert body["response_format"] == FORMAT
    csv_text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    assert "tool_calls" in csv_text.splitlines()[0] and "get_weather" in csv_text


def test_bad_arguments_and_wrong_calls_fail_with_exit_1(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.default = answer_by_prompt('{"city": 7}')
    path = write_grid(tmp_path, server)
    path.write_text(path.read_text(encoding="utf-8").replace("value: [get_weather, get_time]", "value: [get_weather]"),
                    encoding="utf-8")  # fmt: skip
    code, data, err = run(capsys, ["grid", str(path), "--json"])
    assert code == 1
    weather = next(c for c in data["cells"] if c["description"] == "weather")
    assert weather["tool_calls"][0]["arguments"] == {"city": 7}
    valid, f1 = weather["asserts"]
    assert not valid["pass"]
    assert valid["reason"] == "get_weather: the arguments do not follow its parameters: $.city: 7 is not of type 'string'"
    assert not f1["pass"] and f1["reason"].startswith("tool-call F1 0.667 (precision 0.500, recall 1.000")
    assert "FAIL  weather × openai:gpt-4o-mini: is-valid-openai-tools-call: get_weather" in err
    assert next(c for c in data["cells"] if c["description"] == "person")["pass"] is True


@pytest.mark.parametrize(
    ("name", "body", "key", "expected"),
    [
        ("tools.yaml", '[{"type": "function", "function": {"name": "get_weather", "parameters": '
                       '{"type": "object", "properties": {"city": {"type": "strng"}}}}}]',
         "tools", "providers[0].config.tools (tools.yaml): tool 'get_weather': parameters: $.properties.city.type"),
        ("format.json", '{"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object", '
                        '"properties": {"age": {"minimum": "zero"}}}}}',
         "response_format", "providers[0].config.response_format (format.json): json_schema.schema: "
                            "$.properties.age.minimum: 'zero' is not of type 'number'"),
        ("person.json", '{"type": "object", "required": "name"}',
         "is-json", "tests[1].assert[0].value (person.json): the schema: $.required: 'name' is not of type 'array'"),
    ],
)
def test_a_bad_tools_or_schema_file_exits_2_and_sends_nothing(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, body: str, key: str,
    expected: str,
) -> None:
    path = write_grid(tmp_path, server)
    (tmp_path / name).write_text(body, encoding="utf-8")
    code = main(["grid", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert "grid.yaml, line" in err and expected in err, err
    assert server.chat_requests == []
