"""Tool calls of in-process models: which call syntax a chat template teaches its model, and
the parser that turns the model's streamed text into text and :class:`ToolCallDelta` s.

The syntax is read from the template itself (data, not the model's name): a template that
never mentions ``tools`` has no tool support; one that writes ``<tool_call>`` teaches the
Hermes / Qwen format (``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``); one that
asks for ``"parameters"`` (or uses ``<|python_tag|>``) teaches Llama 3's JSON format
(``{"name": ..., "parameters": {...}}``). Imports nothing heavy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.core.errors import InvalidParams
from app.core.events import TextDelta, TokenLogprob, ToolCallDelta
from app.core.types import ChatMessage

NO_TOOLS_HINT = "Pick a model whose chat template has tool support (Qwen2.5, Llama 3.1, Hermes...), or send no tools."


@dataclass(frozen=True, slots=True)
class ToolSyntax:
    """How a model family writes a tool call."""

    kind: str
    """``hermes`` (Qwen, Hermes) or ``llama3``."""
    triggers: tuple[str, ...]
    """Text that opens a call."""
    end: str
    """Text that closes a call (``""``: the end of its JSON object)."""
    args_key: str
    """The key holding the arguments: ``arguments`` / ``parameters``."""
    trigger_in_body: bool = False
    """The trigger is the start of the call's JSON (Llama 3's ``{"name"``)."""


HERMES = ToolSyntax("hermes", ("<tool_call>",), "</tool_call>", "arguments")
LLAMA3 = ToolSyntax("llama3", ('{"name"', '{ "name"'), "", "parameters", trigger_in_body=True)
SEPARATORS = " \t\r\n;"
"""What may stand between calls (not shown as text)."""
_TOOLS_REF = re.compile(r"\btools\b")


def template_text(tokenizer: Any, with_tools: bool = True) -> str | None:
    """The chat template ``apply_chat_template`` uses (its ``tool_use`` variant when there are
    several and ``with_tools``), or None."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, Mapping):
        template = template.get("tool_use" if with_tools and "tool_use" in template else "default")
    return template if isinstance(template, str) and template.strip() else None


def tool_syntax(template: str | None) -> ToolSyntax | None:
    """The call syntax ``template`` teaches, or None when it has no (known) tool support."""
    if not template or not _TOOLS_REF.search(template):
        return None
    if "<tool_call>" in template:
        return HERMES
    if "<|python_tag|>" in template or '"parameters"' in template:
        return LLAMA3
    return None


def require_syntax(template: str | None) -> ToolSyntax:
    """The call syntax of ``template``; :class:`InvalidParams` (before anything is generated)
    when it has none."""
    syntax = tool_syntax(template)
    if syntax is not None:
        return syntax
    if template and _TOOLS_REF.search(template):
        raise InvalidParams("This model's chat template mentions tools, but in a call format this app does not "
                            "parse (neither <tool_call> nor Llama 3's JSON).", hint=NO_TOOLS_HINT)  # fmt: skip
    raise InvalidParams("This model's chat template has no tool support.", hint=NO_TOOLS_HINT)


def calls_in(messages: Sequence[ChatMessage]) -> int:
    """How many tool calls the conversation holds (new calls are numbered after them)."""
    return sum(len(m.tool_calls) for m in messages)


def held_back(text: str, triggers: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could start one of ``triggers`` (a call's
    opening here, a stop string in the streamer)."""
    best = 0
    for trigger in triggers:
        for k in range(min(len(trigger) - 1, len(text)), best, -1):
            if text.endswith(trigger[:k]):
                best = k
                break
    return best


Sink = Callable[[TextDelta | ToolCallDelta], None]


class ToolCallParser:
    """Splits a model's streamed answer into text and tool calls (see the module docstring).

    :meth:`feed` takes the pieces a :class:`~app.providers.local_generation.TokenStreamer`
    emits (with their tokens when the request asked for log-probabilities); text before a call
    goes on as :class:`TextDelta` (a token cut by the start of a call keeps only its part
    before it; the call's own tokens are not shown), each whole call as two
    :class:`ToolCallDelta` s (``id``/``name``, then ``arguments``). A call whose JSON does not
    parse still comes out as a call, its raw text as the arguments (shown and recorded).
    ``prefix``, the answer's given start, is parsed first but not sent (the engine shows it)."""

    def __init__(self, syntax: ToolSyntax, out: Sink, first_id: int = 0, prefix: str = "") -> None:
        self.syntax = syntax
        self.out = out
        self.first_id = first_id
        self.calls = 0
        self._text = ""  # everything seen
        self._pos = 0  # text before this offset has gone out (as text or as a call)
        self._call: int | None = None  # where the open call's body starts
        self._after_call = False
        self._tokens: list[tuple[int, TokenLogprob]] = []  # (start offset, token) not yet out
        self._floor = len(prefix)  # the answer's given start: parsed (it may open a call), never sent
        if prefix:
            self.feed(prefix)

    def feed(self, text: str, tokens: Sequence[TokenLogprob] = ()) -> None:
        """One streamed piece of the answer."""
        start = len(self._text)
        for token in tokens:
            self._tokens.append((start, token))
            start += len(token.text)
        self._text += text
        self._run(final=False)

    def finish(self) -> None:
        """The stream ended: an open call is closed as it is; held-back text goes out."""
        self._run(final=True)
        if self._call is not None:
            body = self._text[self._call :]
            if body.strip():
                self._emit_call(body)
            self._pos = len(self._text)
            self._call = None
            self._tokens.clear()
        self._emit_text(len(self._text), cut=True)

    # --- internals ---------------------------------------------------------------------------
    def _run(self, final: bool) -> None:
        while True:
            if self._call is not None:
                if not self._close_call():
                    return
                continue
            if self._after_call:  # the separators between calls are not text
                while self._pos < len(self._text) and self._text[self._pos] in SEPARATORS:
                    self._pos += 1
                self._tokens = [(s, t) for s, t in self._tokens if s >= self._pos]
                if self._pos == len(self._text):
                    return
                self._after_call = False
            rest = self._text[self._pos :]
            hits = [(i, t) for t in self.syntax.triggers if (i := rest.find(t)) >= 0]
            if not hits:
                keep = 0 if final else held_back(rest, self.syntax.triggers)
                self._emit_text(len(self._text) - keep, cut=final)
                return
            at, trigger = min(hits)
            at += self._pos
            self._emit_text(at, cut=True)
            self._call = self._pos = at if self.syntax.trigger_in_body else at + len(trigger)

    def _close_call(self) -> bool:
        assert self._call is not None
        body = self._text[self._call :]
        if self.syntax.end:
            at = body.find(self.syntax.end)
            if at < 0:
                return False
            used = at + len(self.syntax.end)
            self._emit_call(body[:at])
        else:
            stripped = body.lstrip()
            try:
                _, end = json.JSONDecoder().raw_decode(stripped)
            except ValueError:
                return False
            used = len(body) - len(stripped) + end
            self._emit_call(stripped[:end])
        self._pos = self._call + used
        self._after_call = True
        self._call = None
        self._tokens = [(s, t) for s, t in self._tokens if s >= self._pos]
        return True

    def _emit_call(self, body: str) -> None:
        index = self.calls
        self.calls += 1
        name, arguments = _parse_call(body.strip(), self.syntax.args_key)
        self.out(ToolCallDelta(index, id=f"call_{self.first_id + index}", name=name))
        self.out(ToolCallDelta(index, arguments=arguments))

    def _emit_text(self, upto: int, cut: bool) -> None:
        """Send ``text[pos:upto]`` with the tokens that start in it; without ``cut`` a token
        that runs past ``upto`` is kept whole for later (the text stops where it starts)."""
        tokens: list[TokenLogprob] = []
        taken = 0
        for start, token in self._tokens:
            end = start + len(token.text)
            if end <= upto:
                tokens.append(token)
            elif start < upto and cut:
                tokens.append(replace(token, text=token.text[: upto - start]))
            else:
                if start < upto:
                    upto = max(self._pos, start)
                break
            taken += 1
        del self._tokens[:taken]
        text = self._text[max(self._pos, self._floor) : upto]
        if text or tokens:
            self.out(TextDelta(text, tuple(tokens)))
        self._pos = max(self._pos, upto)


def _parse_call(body: str, args_key: str) -> tuple[str, str]:
    """(name, arguments JSON text) of a call's body; the raw body as arguments when it is not
    a JSON object with a name."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        args = value.get(args_key, value.get("arguments", value.get("parameters", {})))
        text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        return value["name"], text
    match = re.search(r'"name"\s*:\s*"([^"]*)"', body)
    return (match.group(1) if match else ""), body
