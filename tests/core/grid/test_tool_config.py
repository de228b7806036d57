"""A provider's tools, tool_choice, parallel_tool_calls and response_format in a grid file:
read inline or from file:// (JSON or YAML), checked before anything is sent, carried into
each cell's request and kept through a stored run's configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.grid.config import GridFileError, dump_grid, grid_from_dict, load_grid
from app.core.grid.model import Assertion
from app.core.tools import ResponseSchema

TOOLS_YAML = """\
- type: function
  function:
    name: get_weather
    description: The weather in a city
    parameters: {type: object, required: [city], properties: {city: {type: string}}}
- type: function
  function: {name: get_time, parameters: {type: object, properties: {tz: {type: string}}}}
"""
SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def grid(tmp_path: Path, config: str, asserts: str = "[{type: is-json}]") -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(f"""\
prompts: ["Weather in {{{{city}}}}?"]
providers:
  - id: openai:gpt-4o-mini
    config: {config}
tests:
  - vars: {{city: Paris}}
    assert: {asserts}
""", encoding="utf-8")  # fmt: skip
    return path


def test_tools_and_schemas_from_files_reach_the_request_and_round_trip(tmp_path: Path) -> None:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "tools.yaml").write_text(TOOLS_YAML, encoding="utf-8")
    (tmp_path / "defs" / "format.json").write_text(json.dumps(
        {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True}}), encoding="utf-8")
    (tmp_path / "person.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    config = load_grid(grid(tmp_path, "{tools: file://defs/tools.yaml, response_format: file://defs/format.json, "
                                      "tool_choice: {type: function, function: {name: get_time}}, parallel_tool_calls: false}",
                            "[{type: is-json, value: file://person.json}, {type: tool-call-f1, value: [get_time]}]"))  # fmt: skip
    variant = config.variants[0]
    assert [t.name for t in variant.tools] == ["get_weather", "get_time"]
    assert variant.tools[0].parameters["required"] == ["city"]
    assert variant.tool_choice == "get_time" and variant.parallel_tool_calls is False
    assert variant.response_schema == ResponseSchema(SCHEMA, "reply", True)
    assert config.tests[0].asserts == (Assertion("is-json", SCHEMA), Assertion("tool-call-f1", ["get_time"]))
    request = variant.request(config.rows()[0].prompt.messages(config.rows()[0].vars))
    assert request.tools == variant.tools and request.tool_choice == "get_time"
    assert request.parallel_tool_calls is False and request.response_schema == variant.response_schema
    stored = json.loads(json.dumps(config.to_dict()))  # as the run store keeps it: inline, no file refs
    provider = stored["providers"][0]["config"]
    assert provider["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert provider["response_format"]["json_schema"] == {"name": "reply", "schema": SCHEMA, "strict": True}
    again = grid_from_dict(stored)
    assert again.variants == config.variants and again.tests == config.tests
    (tmp_path / "saved.yaml").write_text(dump_grid(config), encoding="utf-8")
    assert load_grid(tmp_path / "saved.yaml").variants == config.variants


def test_inline_json_mode_and_text_format(tmp_path: Path) -> None:
    inline = ('{tools: [{type: function, function: {name: f}}], tool_choice: required, '
              'response_format: {type: json_object}}')  # fmt: skip
    variant = load_grid(grid(tmp_path, inline)).variants[0]
    assert variant.tools[0].parameters == {"type": "object", "properties": {}}
    assert variant.tool_choice == "required" and variant.response_schema == ResponseSchema(None)
    assert load_grid(grid(tmp_path, "{response_format: {type: text}}")).variants[0].response_schema is None


@pytest.mark.parametrize(
    ("tools", "config", "expected"),
    [
        ("- {type: function, function: {name: get_weather, parameters: {type: object, properties: {city: {type: strng}}}}}",
         "{tools: file://tools.yaml}",
         "grid.yaml, line 4: providers[0].config.tools (tools.yaml): tool 'get_weather': parameters: "
         "$.properties.city.type: 'strng' is not valid"),
        ("- {type: function, function: {name: 'bad name'}}", "{tools: file://tools.yaml}",
         "grid.yaml, line 4: providers[0].config.tools (tools.yaml): tools[0].function.name: 'bad name' is not"),
        ("[}", "{tools: file://tools.yaml}", "providers[0].config.tools: tools.yaml is not valid JSON or YAML"),
        ("", "{tools: file://missing.yaml}", "providers[0].config.tools: the file"),
        ("", "{response_format: {type: json_schema, json_schema: {name: r, schema: {type: object, required: 1}}}}",
         "grid.yaml, line 4: providers[0].config.response_format: json_schema.schema: $.required: 1 is not of type 'array'"),
        ("", "{response_format: {type: xml}}", "response_format needs type json_schema"),
        ("", "{tools: [{type: function, function: {name: f}}], tool_choice: g}",
         "providers[0].config.tool_choice: 'g' is not one of the provider's tools (f)"),
        ("", "{parallel_tool_calls: sometimes}", "parallel_tool_calls: must be true or false"),
    ],
)
def test_bad_tools_and_schemas_name_the_file_tool_and_path(tmp_path: Path, tools: str, config: str, expected: str) -> None:
    (tmp_path / "tools.yaml").write_text(tools, encoding="utf-8")
    with pytest.raises(GridFileError) as info:
        load_grid(grid(tmp_path, config))
    assert expected in info.value.message, info.value.message


def test_a_schema_assertion_from_a_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("type: object\nproperties: {age: {type: integr}}\n", encoding="utf-8")
    with pytest.raises(GridFileError) as info:
        load_grid(grid(tmp_path, "{}", "[{type: contains-json, value: file://bad.yaml}]"))
    assert info.value.message.startswith("grid.yaml, line 7: tests[0].assert[0].value (bad.yaml): the schema: "
                                         "$.properties.age.type: 'integr' is not valid")  # fmt: skip
