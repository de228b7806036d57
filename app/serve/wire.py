"""OpenAI's Chat Completions request body -> the core's :class:`GenerationRequest`.

Every value is checked before anything is sent; a bad one raises :class:`InvalidParams` (or
:class:`ToolSchemaError` for tools and schemas) naming the field, which the server answers
with a 400 in OpenAI's error shape. Unknown fields are ignored, as OpenAI-compatible servers
do (clients send ``frequency_penalty: 0`` and the like).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.core.errors import InvalidParams
from app.core.tools import ResponseSchema, ToolCall, ToolChoice, check_schema, parse_tools
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, Role
from app.serve.catalog import Target

_HINT = "Fix the request body (OpenAI's Chat Completions format) and send it again."
_ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user",
                           "assistant": "assistant", "tool": "tool"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One parsed ``POST /v1/chat/completions``: the request and how to answer it."""

    model_id: str
    """The model id as the client wrote it (echoed in every answer)."""
    request: GenerationRequest
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False


def bad(message: str) -> InvalidParams:
    """A 400 for the client: ``message`` names the field."""
    return InvalidParams(message, hint=_HINT)


def _field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise bad(f"'{name}' must be a number, not a boolean.")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise bad(f"'{name}' must be of type {names} (got {type(value).__name__}).")
    return value


def _content(value: Any, where: str) -> str:
    """A message's content: text, or a list of text parts (joined)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[str] = []
        for i, part in enumerate(value):
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"{where}.content[{i}]: only text parts ({{\"type\": \"text\", \"text\": ...}}) are "
                          "supported by this server.")  # fmt: skip
            parts.append(part["text"])
        return "".join(parts)
    raise bad(f"{where}.content must be a string or a list of text parts.")


def parse_messages(value: Any) -> tuple[ChatMessage, ...]:
    """``messages``: system/developer, user, assistant (with ``tool_calls``) and tool turns."""
    if not isinstance(value, list) or not value:
        raise bad("'messages' must be a non-empty list.")
    out: list[ChatMessage] = []
    for i, raw in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(raw, Mapping):
            raise bad(f"{where} must be an object.")
        role = _ROLES.get(str(raw.get("role")))
        if role is None:
            raise bad(f"{where}.role must be one of system, developer, user, assistant, tool.")
        content = _content(raw.get("content"), where)
        calls: tuple[ToolCall, ...] = ()
        if role == "assistant" and raw.get("tool_calls"):
            entries = raw["tool_calls"]
            if not isinstance(entries, list) or not all(isinstance(c, Mapping) for c in entries):
                raise bad(f"{where}.tool_calls must be a list of objects.")
            calls = tuple(ToolCall.from_json({**c, "index": n}) for n, c in enumerate(entries))
        call_id = raw.get("tool_call_id")
        if role == "tool" and not isinstance(call_id, str):
            raise bad(f"{where}: a tool message needs its 'tool_call_id'.")
        out.append(ChatMessage(role, content, calls, call_id if role == "tool" else None))
    return tuple(out)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise bad("'stop' must be a string or a list of strings.")


def _tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return str(value)
    if isinstance(value, Mapping):
        fn = value.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    raise bad("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}.")


def _response_format(value: Any) -> ResponseSchema | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseSchema(None)
    if kind == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        spec = value["json_schema"]
        schema = spec.get("schema", {"type": "object"})
        check_schema(schema, "response_format.json_schema.schema")
        return ResponseSchema(schema, str(spec.get("name") or "answer"), bool(spec.get("strict", True)))
    raise bad("'response_format' must have type text, json_object or json_schema (with a 'json_schema' object).")


def parse_params(body: Mapping[str, Any], default_temperature: float) -> tuple[GenerationParams, bool]:
    """The sampling parameters (validated) and whether log-probabilities were asked for."""
    n = _field(body, "n", int, 1)
    if n != 1:
        raise bad("'n' must be 1: this server answers one choice per request.")
    max_tokens = _field(body, "max_completion_tokens", int)
    if max_tokens is None:
        max_tokens = _field(body, "max_tokens", int)
    logprobs = bool(_field(body, "logprobs", bool, False))
    top = _field(body, "top_logprobs", int)
    if top is not None and not logprobs:
        raise bad("'top_logprobs' needs 'logprobs': true.")
    extras = {k: body[k] for k in ("min_p",) if k in body}
    params = GenerationParams(
        temperature=float(_field(body, "temperature", (int, float), default_temperature)),
        top_p=float(_field(body, "top_p", (int, float), 1.0)),
        max_tokens=max_tokens,
        seed=_field(body, "seed", int),
        stop=_stop(body.get("stop")),
        top_k=_field(body, "top_k", int),
        repetition_penalty=_field(body, "repetition_penalty", (int, float)),
        logprobs=(top or 0) if logprobs else None,
        extras=extras,
    )
    return params.validated(), logprobs


def parse_chat(body: Any, resolve: Callable[[str], Target], default_temperature: Callable[[str], float]) -> ChatCall:
    """A whole request body -> :class:`ChatCall` (``resolve`` maps the model id to what runs;
    ``default_temperature`` gives a model's temperature when the client sends none)."""
    if not isinstance(body, Mapping):
        raise bad("The request body must be a JSON object.")
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id.strip():
        raise bad("'model' is required: one of the ids GET /v1/models lists.")
    target = resolve(model_id.strip())
    messages = parse_messages(body.get("messages"))
    params, logprobs = parse_params(body, default_temperature(str(target.ref)))
    stream = bool(_field(body, "stream", bool, False))
    options = _field(body, "stream_options", dict, {})
    tools = parse_tools(body["tools"], "tools") if body.get("tools") else ()
    parallel = _field(body, "parallel_tool_calls", bool)
    request = GenerationRequest(target.ref, messages, params, endpoint=target.endpoint, adapters=target.adapters,
                                tools=tools, tool_choice=_tool_choice(body.get("tool_choice")),
                                parallel_tool_calls=parallel,
                                response_schema=_response_format(body.get("response_format")))  # fmt: skip
    return ChatCall(model_id.strip(), request, stream, stream and bool(options.get("include_usage")), logprobs)
