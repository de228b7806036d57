"""The Tools panel's content as a value: checked functions, stubs, the schema, JSON."""

from __future__ import annotations

import pytest

from app.core.errors import ToolSchemaError
from app.core.tool_setup import NEW_FUNCTION, FunctionEntry, ToolSetup, check_function


def test_functions_are_checked_and_named() -> None:
    assert check_function(NEW_FUNCTION).name == "get_weather"
    with pytest.raises(ToolSchemaError, match=r"function 2: tool 'f': parameters: \$.type: 'objekt' is not valid"):
        check_function('{"name": "f", "parameters": {"type": "objekt"}}', "function 2")
    with pytest.raises(ToolSchemaError, match=r"not valid JSON \(line 1, column 2\)"):
        check_function("{", "function 1")
    twice = ToolSetup((FunctionEntry(NEW_FUNCTION), FunctionEntry(NEW_FUNCTION)))
    with pytest.raises(ToolSchemaError, match="used twice"):
        twice.specs()
    assert [s.name for s in twice.with_(functions=(FunctionEntry(NEW_FUNCTION), FunctionEntry(NEW_FUNCTION, False)))
            .specs()] == ["get_weather"]


def test_stubs_schema_and_json_round_trip() -> None:
    setup = ToolSetup((FunctionEntry(NEW_FUNCTION, True, "sunny"), FunctionEntry("{bad", False, "x")), "required", 4,
                      True, '{"type": "object"}', False, True)
    assert setup.stubs() == {"get_weather": "sunny"} and setup.active
    schema = setup.response_schema()
    assert schema is not None and schema.schema == {"type": "object"}
    assert setup.with_(json_mode=True).response_schema() == type(schema)(None)
    assert setup.with_(schema_on=False).response_schema() is None
    with pytest.raises(ToolSchemaError, match="response schema"):
        setup.with_(schema_text='{"type": 5}').response_schema()
    assert ToolSetup.from_json(setup.to_json()) == setup
    assert ToolSetup.from_json("junk") == ToolSetup() and ToolSetup.from_json({"max_steps": 0}).max_steps is None
    assert FunctionEntry("{bad").name() == "?"
