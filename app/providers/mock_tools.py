"""The mock's tool calls (``mock:tools``): deterministic calls of the offered tools, for demos,
the window and tests.

``mock:tools[?call=NAME&parallel=N&steps=K&args=TEXT]``:

- while the request holds fewer than ``steps`` (default 1) answers with calls, it calls a
  tool: ``call`` (default: the request's named ``tool_choice``, else the first offered
  tool), or with ``parallel=N`` the first N offered tools at once; the arguments are
  ``args`` as given (e.g. text that is not JSON) or built from the tool's schema: each
  required property gets its ``default``, its first ``enum`` value, or an example of its
  type; the arguments stream in two pieces;
- otherwise (or with ``tool_choice`` ``none``, or no tools offered) it answers with text
  that quotes the results it got: ``Results: NAME=CONTENT; ...`` (``No tool results.``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.core.errors import InvalidParams
from app.core.tools import ToolCall, ToolSpec
from app.core.types import GenerationRequest

_EXAMPLES: dict[str, Any] = {"string": "example", "integer": 1, "number": 1.5, "boolean": True, "array": [],
                             "object": {}, "null": None}  # fmt: skip


def example_value(schema: Any) -> Any:
    """A value that fits ``schema``'s type (its default or first enum value when it has one)."""
    if not isinstance(schema, Mapping):
        return "example"
    if "default" in schema:
        return schema["default"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return example_arguments(schema)
    return _EXAMPLES.get(str(kind), "example")


def example_arguments(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for a tool: each required property with an example value."""
    props = parameters.get("properties")
    props = props if isinstance(props, Mapping) else {}
    required = parameters.get("required")
    return {str(name): example_value(props.get(name)) for name in (required if isinstance(required, list) else [])}


def calls_so_far(request: GenerationRequest) -> int:
    """How many answers with tool calls the request's messages hold (the loop's steps so far)."""
    return sum(1 for m in request.messages if m.role == "assistant" and m.tool_calls)


def planned_calls(request: GenerationRequest, opts: Mapping[str, str]) -> list[ToolCall]:
    """The calls the mock makes for ``request`` (empty: it answers with text)."""
    if not request.tools or request.tool_choice == "none":
        return []
    try:
        steps = int(opts.get("steps", "1") or 1)
        parallel = int(opts.get("parallel", "1") or 1)
    except ValueError as exc:
        raise InvalidParams(f"Bad mock option in '{request.model.name}': {exc}") from exc
    done = calls_so_far(request)
    if done >= steps:
        return []
    by_name = {t.name: t for t in request.tools}
    wanted = opts.get("call") or (request.tool_choice if request.tool_choice in by_name else None)
    if wanted:
        chosen = [by_name.get(wanted) or ToolSpec(wanted)]
    else:
        chosen = list(request.tools[: max(1, parallel)])
    args = opts.get("args")
    return [ToolCall(f"call_{done + 1}_{i}", spec.name,
                     args if args is not None else json.dumps(example_arguments(spec.parameters)), i)
            for i, spec in enumerate(chosen)]  # fmt: skip


def results_text(request: GenerationRequest) -> str:
    """The answer after tool results: ``Results: NAME=CONTENT; ...`` of the last step's results."""
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    tail: list[str] = []
    for m in reversed(request.messages):
        if m.role != "tool":
            break
        tail.append(f"{names.get(m.tool_call_id or '', m.tool_call_id)}={m.content}")
    return "Results: " + "; ".join(reversed(tail)) if tail else "No tool results."
