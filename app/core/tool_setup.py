"""What the window's Tools panel holds, as a plain value: the functions (each as the JSON text
the user typed, on or off, with its stub result), ``tool_choice``, the step limit, the
response schema (or JSON mode) and whether the MCP servers' tools are offered.

It is kept with presets and with a conversation (in its stored parameters, under
:data:`SETUP_KEY`) as :meth:`ToolSetup.to_json`, and turned into what a request and a
:class:`~app.core.tool_loop.ToolLoop` need by :meth:`ToolSetup.specs`,
:meth:`ToolSetup.stubs` and :meth:`ToolSetup.response_schema`, which raise
:class:`~app.core.errors.ToolSchemaError` naming the function and the JSON path. Qt-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.core.errors import ToolSchemaError
from app.core.tools import ResponseSchema, ToolSpec, check_schema, parse_tools

SETUP_KEY = "tools"
"""The key of the setup in a conversation's stored parameters and in a preset."""

NEW_FUNCTION = ('{\n  "type": "function",\n  "function": {\n    "name": "get_weather",\n'
                '    "description": "The weather in a city",\n    "parameters": {\n      "type": "object",\n'
                '      "properties": {"city": {"type": "string"}},\n      "required": ["city"]\n    }\n  }\n}')  # fmt: skip
"""The text of a function the panel's Add starts from."""


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        line, col = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        at = f" (line {line}, column {col})" if line is not None else ""
        why = getattr(exc, "msg", str(exc))
        raise ToolSchemaError(f"{where}: not valid JSON{at}: {why}.", hint="Fix the JSON and try again.") from None


def check_function(text: str, where: str = "function") -> ToolSpec:
    """The function definition ``text`` (one object in OpenAI's format, or a bare
    ``{"name", "description", "parameters"}``) checked; raises :class:`ToolSchemaError`
    naming ``where``, the tool and the JSON path."""
    data = _json(text, where)
    if not isinstance(data, Mapping):
        raise ToolSchemaError(f"{where}: expected one function as a JSON object, not {type(data).__name__}.")
    return parse_tools([data], where)[0]


def check_response_schema(text: str) -> ResponseSchema:
    """The response schema ``text`` checked (a JSON Schema object)."""
    data = _json(text, "response schema")
    check_schema(data, "response schema")
    return ResponseSchema(data)


@dataclass(frozen=True, slots=True)
class FunctionEntry:
    """One function of the panel: its definition as typed, on or off, and its stub result
    ("" : none, the loop asks an MCP server or stops at the call)."""

    text: str
    enabled: bool = True
    stub: str = ""

    def name(self) -> str:
        """The function's name as far as the text says (``?`` when it does not parse)."""
        try:
            data = json.loads(self.text)
        except ValueError:
            return "?"
        fn = data.get("function", data) if isinstance(data, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        return name if isinstance(name, str) and name else "?"


@dataclass(frozen=True, slots=True)
class ToolSetup:
    """The Tools panel's content (see the module doc)."""

    functions: tuple[FunctionEntry, ...] = ()
    tool_choice: str = "auto"
    max_steps: int | None = None
    """None: the ``max_tool_steps`` setting."""
    schema_on: bool = False
    schema_text: str = ""
    json_mode: bool = False
    use_mcp: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """True when a send should offer tools or ask for a shape."""
        return any(f.enabled for f in self.functions) or self.schema_on or self.use_mcp

    def specs(self) -> tuple[ToolSpec, ...]:
        """The enabled functions, checked (raises :class:`ToolSchemaError`)."""
        out: list[ToolSpec] = []
        for i, entry in enumerate(self.functions):
            if entry.enabled:
                spec = check_function(entry.text, f"function {i + 1}")
                if any(s.name == spec.name for s in out):
                    raise ToolSchemaError(f"function {i + 1}: tool '{spec.name}': the name is used twice.",
                                          hint="Give each function its own name, or turn one off.")  # fmt: skip
                out.append(spec)
        return tuple(out)

    def stubs(self) -> dict[str, str]:
        """The stub results of the enabled functions that have one, by function name."""
        return {e.name(): e.stub for e in self.functions if e.enabled and e.stub.strip()}

    def response_schema(self) -> ResponseSchema | None:
        """The shape asked for: None (no schema), JSON mode, or the checked schema."""
        if not self.schema_on:
            return None
        if self.json_mode:
            return ResponseSchema(None)
        return check_response_schema(self.schema_text)

    def with_(self, **changes: Any) -> ToolSetup:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """As kept with presets and conversations."""
        return {"functions": [{"text": f.text, "enabled": f.enabled, "stub": f.stub} for f in self.functions],
                "tool_choice": self.tool_choice, "max_steps": self.max_steps, "schema_on": self.schema_on,
                "schema": self.schema_text, "json_mode": self.json_mode, "use_mcp": self.use_mcp}  # fmt: skip

    @classmethod
    def from_json(cls, data: object) -> ToolSetup:
        """The inverse of :meth:`to_json`; what is not usable is left at its default."""
        if not isinstance(data, Mapping):
            return cls()
        functions = tuple(FunctionEntry(str(f.get("text", "")), bool(f.get("enabled", True)), str(f.get("stub") or ""))
                          for f in data.get("functions") or [] if isinstance(f, Mapping))  # fmt: skip
        steps = data.get("max_steps")
        return cls(functions, str(data.get("tool_choice") or "auto"),
                   steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1 else None,
                   bool(data.get("schema_on")), str(data.get("schema") or ""), bool(data.get("json_mode")),
                   bool(data.get("use_mcp")))  # fmt: skip


__all__ = ["NEW_FUNCTION", "SETUP_KEY", "FunctionEntry", "ToolSetup", "check_function", "check_response_schema"]
