"""Tools and structured output on OpenAI-compatible servers: the request's ``tools`` /
``tool_choice`` / ``parallel_tool_calls`` / ``response_format``, messages that hold tool
calls and results, streamed ``delta.tool_calls`` as :class:`ToolCallDelta` events, and the
400 of a server that does not take tools or a response format.

Wire facts (OpenAI's Chat Completions, followed by vLLM, llama.cpp, Ollama, LM Studio): the
first delta of a call has its ``index``, ``id``, ``type`` and ``function.name``; later
deltas only ``index`` and a piece of ``function.arguments`` (split anywhere); several calls
interleave by ``index``; the last chunk has ``finish_reason: "tool_calls"``. Results go
back as ``{"role": "tool", "tool_call_id", "content"}`` after the assistant message with
the ``tool_calls`` (its content null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.errors import BadRequest
from app.core.events import ToolCallDelta
from app.core.tools import TOOL_CHOICES, ToolChoice
from app.core.types import ChatMessage, GenerationRequest
from app.providers.openai_support import server_message

TOOL_WORDS = ("tool", "function")
"""Words of a 400 that refuses tools: "tools param requires --jinja" (llama.cpp), ""auto"
tool choice requires --enable-auto-tool-choice" (vLLM), "... does not support tools"
(Ollama), "functions are not supported" (older proxies)."""
FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output", "response format")


def openai_message(message: ChatMessage) -> dict[str, Any]:
    """One message in Chat Completions' form: an assistant turn with calls carries them (its
    content null when it has no text); a ``tool`` turn names the call it answers."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {"role": "assistant", "content": message.content or None,
                "tool_calls": [call.to_openai() for call in message.tool_calls]}  # fmt: skip
    return {"role": message.role, "content": message.content}


def openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The request's ``messages`` (see :func:`openai_message`)."""
    return [openai_message(m) for m in messages]


def tool_choice_value(choice: ToolChoice) -> str | dict[str, Any]:
    """``auto`` / ``none`` / ``required`` as they are; a function's name as
    ``{"type": "function", "function": {"name": ...}}``."""
    if choice in TOOL_CHOICES:
        return choice
    return {"type": "function", "function": {"name": choice}}


def add_tools(body: dict[str, Any], request: GenerationRequest) -> None:
    """Put the request's tools, tool choice, parallel calls and response format in ``body``
    (each only when the request sets it: a server's defaults stand otherwise)."""
    if request.tools:
        body["tools"] = [tool.to_openai() for tool in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = tool_choice_value(request.tool_choice)
    if request.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.response_schema is not None:
        body["response_format"] = request.response_schema.to_openai()


def refused_feature(exc: BadRequest, body: dict[str, Any]) -> str | None:
    """``tools`` or ``response_format`` when ``exc`` (a 400 to ``body``) refuses that part of
    the request, else None. Only the server's own words (and ``param``) are read, not the
    endpoint's name around them."""
    cause = exc.__cause__
    said = (exc.message if cause is None else f"{server_message(cause)} {getattr(cause, 'param', '') or ''}").lower()
    if "response_format" in body and any(word in said for word in FORMAT_WORDS):
        return "response_format"
    if ("tools" in body or "tool_choice" in body) and any(word in said for word in TOOL_WORDS):
        return "tools"
    return None


def feature_error(exc: BadRequest, body: dict[str, Any], where: str) -> BadRequest:
    """A clear :class:`BadRequest` when ``exc`` refuses tools or a response format (``exc``
    itself otherwise). Not retried: the same request would be refused again."""
    feature = refused_feature(exc, body)
    if feature == "tools":
        return BadRequest(f"{where} does not accept tools (function calling): {exc.message}",
                          hint="Use a model and server with tool support (llama.cpp needs --jinja, vLLM "
                          "--enable-auto-tool-choice --tool-call-parser ...), or send without tools.")  # fmt: skip
    if feature == "response_format":
        return BadRequest(f"{where} does not accept response_format (structured output / JSON mode): "
                          f"{exc.message}",
                          hint="Use a model and server that support structured outputs, or send without "
                          "a schema.")  # fmt: skip
    return exc


class ToolDeltas:
    """Turns one stream's ``delta.tool_calls`` into :class:`ToolCallDelta` s, the pieces as
    they come. A server that leaves out ``index`` (some send each whole call in one piece)
    gets one: a new ``id`` starts the next call, a piece without either continues the last."""

    def __init__(self) -> None:
        self._by_id: dict[str, int] = {}
        self._last = -1
        self.seen = False
        """True once any call piece came (the answer is tool calls)."""
        self._pieces: list[str] = []

    def events(self, delta: Any) -> list[ToolCallDelta]:
        """The events of one chunk's delta (none when it has no ``tool_calls``)."""
        calls = getattr(delta, "tool_calls", None) if delta is not None else None
        if not calls:
            return []
        out: list[ToolCallDelta] = []
        for call in calls:
            call_id = getattr(call, "id", None) or None
            index = getattr(call, "index", None)
            if not isinstance(index, int):
                if call_id is not None and call_id in self._by_id:
                    index = self._by_id[call_id]
                elif call_id is not None or self._last < 0:
                    index = max(self._last, max(self._by_id.values(), default=-1)) + 1
                else:
                    index = self._last
            if call_id is not None:
                self._by_id.setdefault(call_id, index)
            self._last = index
            fn = getattr(call, "function", None)
            name = getattr(fn, "name", None) or None
            arguments = getattr(fn, "arguments", None) or ""
            out.append(ToolCallDelta(index, call_id, name, arguments))
            self._pieces += [name or "", arguments]
        self.seen = self.seen or bool(out)
        return out

    def text(self) -> str:
        """The calls' names and argument text as they came (what a local count counts)."""
        return "".join(self._pieces)

    def finish(self, reason: str) -> str:
        """The finish reason to report: ``tool_calls`` when calls came and the server said
        ``stop`` (Ollama and some proxies do), else ``reason`` as sent."""
        return "tool_calls" if self.seen and reason == "stop" else reason

