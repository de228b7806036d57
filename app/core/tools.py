"""Tools and structured output as plain values: function definitions in OpenAI's format, the
calls a model makes, their results, and the JSON Schema an answer must follow.

Everything here is Qt-free and provider-neutral: the OpenAI provider sends these as
``tools`` / ``tool_choice`` / ``response_format``, in-process models render them through
their chat template and parse the calls back, and the tool loop, the history and the CLI
pass the same values around. Schemas are checked with ``jsonschema`` (imported inside the
functions: the core starts without it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core.errors import ToolSchemaError

ToolChoice = Literal["auto", "none", "required"] | str
"""``auto`` / ``none`` / ``required``, or the name of the one function the model must call."""

TOOL_CHOICES: tuple[str, ...] = ("auto", "none", "required")
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
MAX_NAME = 64
DEFAULT_MAX_STEPS = 8
"""A tool loop's step limit unless asked otherwise (:class:`~app.core.tool_loop.ToolLoop`)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One function the model may call: ``parameters`` is a JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        """``{"type": "function", "function": {"name", "description", "parameters"}}``."""
        fn: dict[str, Any] = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = dict(self.parameters)
        return {"type": "function", "function": fn}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made: ``arguments`` is the JSON text as the model wrote it (it may
    not parse; :meth:`parsed_arguments` says)."""

    id: str
    name: str
    arguments: str = ""
    index: int = 0

    def parsed_arguments(self) -> dict[str, Any] | None:
        """The arguments as a JSON object, or None when they are not one."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def to_openai(self) -> dict[str, Any]:
        """The call as an assistant message's ``tool_calls`` entry."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    def to_json(self) -> dict[str, Any]:
        """``{"id", "name", "arguments", "index"}`` (history and exports)."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments, "index": self.index}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolCall:
        """Inverse of :meth:`to_json` (also takes OpenAI's ``{"id", "function": {...}}``)."""
        fn = data.get("function")
        if isinstance(fn, Mapping):
            return cls(str(data.get("id", "")), str(fn.get("name", "")), str(fn.get("arguments") or ""),
                       int(data.get("index", 0) or 0))  # fmt: skip
        return cls(str(data.get("id", "")), str(data.get("name", "")), str(data.get("arguments") or ""),
                   int(data.get("index", 0) or 0))  # fmt: skip


ResultSource = Literal["stub", "mcp", "error"]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What goes back to the model for one call, as a ``tool`` message."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    source: ResultSource = "stub"
    elapsed_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"call_id", "name", "content", "is_error", "source", "elapsed_s"}``."""
        return {"call_id": self.call_id, "name": self.name, "content": self.content, "is_error": self.is_error,
                "source": self.source, "elapsed_s": self.elapsed_s}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResponseSchema:
    """The shape an answer must have: a JSON Schema (``schema``), or any JSON object when
    ``schema`` is None (JSON mode)."""

    schema: Mapping[str, Any] | None = None
    name: str = "answer"
    strict: bool = True

    def to_openai(self) -> dict[str, Any]:
        """``response_format`` for Chat Completions."""
        if self.schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": self.name, "schema": dict(self.schema), "strict": self.strict}}  # fmt: skip


def _path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_schema(schema: Any, where: str) -> None:
    """Raise :class:`ToolSchemaError` naming ``where`` and the JSON path when ``schema`` is
    not a valid JSON Schema (draft 2020-12, the one OpenAI's structured outputs use)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping):
        raise ToolSchemaError(f"{where}: the schema must be a JSON object, not {type(schema).__name__}.")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ToolSchemaError(f"{where}: {_path(exc.absolute_path)}: {exc.message}.",
                              hint="Fix the JSON Schema (https://json-schema.org) and try again.") from None  # fmt: skip


def validate_instance(value: Any, schema: Mapping[str, Any]) -> str | None:
    """None when ``value`` follows ``schema``; else ``"$.path: reason"`` of the first error."""
    from jsonschema import Draft202012Validator

    error = next(iter(sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))), None)
    return None if error is None else f"{_path(error.absolute_path)}: {error.message}"


def validate_answer(text: str, schema: ResponseSchema) -> str | None:
    """None when the answer ``text`` parses as JSON and follows ``schema``; else why not."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if schema.schema is None:
        return None if isinstance(value, dict) else "not a JSON object"
    return validate_instance(value, schema.schema)


def parse_tools(data: Any, source: str) -> tuple[ToolSpec, ...]:
    """A list in OpenAI's tools format, checked: each entry a function with a name of 1-64
    letters, digits, ``_`` or ``-``, unique, and a valid JSON Schema as ``parameters``.
    Raises :class:`ToolSchemaError` naming ``source``, the tool and the JSON path."""
    if isinstance(data, Mapping) and "tools" in data:
        data = data["tools"]
    if not isinstance(data, Sequence) or isinstance(data, str | bytes):
        raise ToolSchemaError(f"{source}: expected a list of tools in OpenAI's format, "
                              f"not {type(data).__name__}.", hint=_TOOLS_HINT)  # fmt: skip
    out: list[ToolSpec] = []
    for i, entry in enumerate(data):
        where = f"{source}: tools[{i}]"
        if not isinstance(entry, Mapping):
            raise ToolSchemaError(f"{where}: each tool must be an object.", hint=_TOOLS_HINT)
        fn = entry.get("function", entry if "name" in entry else None)
        if entry.get("type", "function") != "function" or not isinstance(fn, Mapping):
            raise ToolSchemaError(f"{where}: only {{\"type\": \"function\", \"function\": {{...}}}} tools are "
                                  "supported.", hint=_TOOLS_HINT)  # fmt: skip
        name = fn.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_NAME or set(name) - NAME_CHARS:
            raise ToolSchemaError(f"{where}.function.name: {name!r} is not a valid function name.",
                                  hint="Use 1-64 letters, digits, '_' or '-'.")  # fmt: skip
        where = f"{source}: tool '{name}'"
        if any(t.name == name for t in out):
            raise ToolSchemaError(f"{where}: the name is used twice.", hint="Give each function its own name.")
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise ToolSchemaError(f"{where}.function.description: must be text.")
        parameters = fn.get("parameters", {"type": "object", "properties": {}})
        check_schema(parameters, f"{where}: parameters")
        out.append(ToolSpec(name, description, parameters))
    return tuple(out)


_TOOLS_HINT = ('Write a JSON or YAML list such as [{"type": "function", "function": {"name": "get_weather", '
               '"description": "...", "parameters": {"type": "object", "properties": {...}}}}].')  # fmt: skip


class ToolCallAccumulator:
    """Builds whole :class:`ToolCall` s from streamed pieces (OpenAI's deltas: the first piece
    of each call has its ``index``, ``id`` and name; later ones only ``index`` and a piece of
    the arguments, split anywhere; several calls interleave by ``index``)."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}

    def add(self, index: int, call_id: str | None = None, name: str | None = None, arguments: str = "") -> None:
        """One streamed piece of call ``index``."""
        self._calls.setdefault(index, [])
        if call_id:
            self._ids[index] = call_id
        if name:
            self._names[index] = name
        if arguments:
            self._calls[index].append(arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls so far, by index (a call without an id gets ``call_<index>``)."""
        return tuple(ToolCall(self._ids.get(i) or f"call_{i}", self._names.get(i, ""), "".join(parts), i)
                     for i, parts in sorted(self._calls.items()))  # fmt: skip
