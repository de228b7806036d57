"""A grid provider's tools and structured output, in promptfoo's (OpenAI's) vocabulary:
``config.tools``, ``config.tool_choice``, ``config.parallel_tool_calls`` and
``config.response_format``, and JSON Schemas of ``is-json`` / ``contains-json``.

Tools and schemas are written inline or as ``file://path`` (JSON or YAML, relative to the
grid file). They are checked before anything is sent (:func:`app.core.tools.parse_tools`,
:func:`app.core.tools.check_schema`); an error names the grid file, the key, the file the
value came from, the tool and the JSON path. Stored runs keep them inline, so a run reads
back the same even when the file changed since.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.errors import ToolSchemaError
from app.core.grid.doc import Doc, GridFileError, Path_
from app.core.grid.limits import LimitError, compose_yaml, load_json, read_limited
from app.core.tools import TOOL_CHOICES, ResponseSchema, ToolSpec, check_schema, parse_tools

TOOL_KEYS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")


def load_ref(value: Any, path: Path_, doc: Doc) -> tuple[Any, str]:
    """``value`` itself, or the data of the JSON / YAML file a ``file://`` text names, and
    where it came from (``grid.yaml, line 5: providers[0].config.tools`` + the file)."""
    where = doc.where(path)
    if not (isinstance(value, str) and value.startswith("file://")):
        return value, where
    import yaml

    target = doc.file(path, value)
    try:
        text = read_limited(target, GridFileError)
    except (OSError, UnicodeDecodeError) as exc:
        doc.fail(path, f"cannot read {target}: {exc}.", "Save it as UTF-8 JSON or YAML.")
    try:
        if target.suffix.lower() == ".json":
            data = load_json(text, target.name)
        else:
            data = compose_yaml(text, target.name)[1]
    except LimitError:
        raise
    except (ValueError, yaml.YAMLError) as exc:
        doc.fail(path, f"{target.name} is not valid JSON or YAML: {exc}.", "Fix the file's syntax.")
    return data, f"{where} ({target.name})"


def _fail(exc: ToolSchemaError) -> GridFileError:
    return GridFileError(exc.message, hint=exc.hint or "Fix the JSON Schema (https://json-schema.org).")


def read_tools(value: Any, path: Path_, doc: Doc) -> tuple[ToolSpec, ...]:
    """``config.tools``: a list in OpenAI's format, inline or ``file://``."""
    data, where = load_ref(value, path, doc)
    try:
        return parse_tools(data, where)
    except ToolSchemaError as exc:
        raise _fail(exc) from None


def read_tool_choice(value: Any, tools: Sequence[ToolSpec], path: Path_, doc: Doc) -> str:
    """``config.tool_choice``: auto / none / required, or ``{"type": "function", "function":
    {"name": ...}}`` (or the name alone) naming one of ``tools``."""
    if isinstance(value, Mapping):
        fn = value.get("function")
        value = fn.get("name") if isinstance(fn, Mapping) else value.get("name")
    if not isinstance(value, str) or not value.strip():
        doc.fail(path, "must be auto, none, required or {type: function, function: {name: NAME}}.",
                 "Write e.g. tool_choice: required.")  # fmt: skip
    choice = value.strip()
    if choice not in TOOL_CHOICES and not any(t.name == choice for t in tools):
        names = ", ".join(t.name for t in tools) or "none are given"
        doc.fail(path, f"'{choice}' is not one of the provider's tools ({names}).",
                 "Name a function from config.tools, or use auto, none or required.")  # fmt: skip
    return choice


def read_response_format(value: Any, path: Path_, doc: Doc) -> ResponseSchema | None:
    """``config.response_format``: ``{type: json_schema, json_schema: {name, schema, strict}}``,
    ``{type: json_object}`` or ``{type: text}`` (None), inline or ``file://``."""
    data, where = load_ref(value, path, doc)
    hint = ("Write response_format: {type: json_schema, json_schema: {name: answer, schema: {...}}} "
            "or {type: json_object}.")  # fmt: skip
    if not isinstance(data, Mapping):
        raise GridFileError(f"{where}: response_format must be a mapping with a type.", hint=hint)
    kind = data.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseSchema(None)
    spec = data.get("json_schema")
    if kind != "json_schema" or not isinstance(spec, Mapping) or "schema" not in spec:
        raise GridFileError(f"{where}: response_format needs type json_schema with json_schema.schema "
                            f"(or type json_object).", hint=hint)  # fmt: skip
    name = spec.get("name", "answer")
    if not isinstance(name, str) or not name:
        raise GridFileError(f"{where}: json_schema.name must be text.", hint=hint)
    schema = spec["schema"]
    try:
        check_schema(schema, f"{where}: json_schema.schema")
    except ToolSchemaError as exc:
        raise _fail(exc) from None
    return ResponseSchema(dict(schema), name, bool(spec.get("strict", False)))


def read_json_schema(value: Any, path: Path_, doc: Doc) -> dict[str, Any]:
    """The JSON Schema ``value`` of ``is-json`` / ``contains-json``: a mapping, a
    ``file://`` reference or JSON / YAML text of one; checked."""
    data, where = load_ref(value, path, doc)
    if isinstance(data, str):
        data = schema_from_text(data)
    try:
        check_schema(data, f"{where}: the schema")
    except ToolSchemaError as exc:
        raise _fail(exc) from None
    return dict(data)


def schema_from_text(text: str) -> Any:
    """A schema written as JSON or YAML text (promptfoo reads the value as YAML); the text
    itself when it parses as neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def tool_config(tools: Sequence[ToolSpec], tool_choice: str | None, parallel: bool | None,
                schema: ResponseSchema | None) -> dict[str, Any]:  # fmt: skip
    """The ``config`` keys of a provider entry for these settings (only what is set)."""
    out: dict[str, Any] = {}
    if tools:
        out["tools"] = [t.to_openai() for t in tools]
    if tool_choice is not None:
        out["tool_choice"] = (tool_choice if tool_choice in TOOL_CHOICES
                              else {"type": "function", "function": {"name": tool_choice}})  # fmt: skip
    if parallel is not None:
        out["parallel_tool_calls"] = parallel
    if schema is not None:
        out["response_format"] = schema.to_openai()
    return out
