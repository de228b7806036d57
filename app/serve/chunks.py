"""A run's events and result -> OpenAI's ``chat.completion`` object and its streamed
``chat.completion.chunk`` s (SSE ``data:`` lines, ``[DONE]`` at the end)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from app.core.events import TokenLogprob
from app.core.generation import GenerationResult
from app.core.tools import ToolCall

DONE = b"data: [DONE]\n\n"
_MARK = "\x00text\x00"
"""Where a text chunk's content goes in its template (the last JSON string of the chunk)."""
_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def finish_reason(result: GenerationResult) -> str:
    """OpenAI's finish reason for ``result`` (``tool_calls`` when the model called tools)."""
    if result.tool_calls:
        return "tool_calls"
    return _REASONS.get(result.finish_reason, "stop")


def usage(result: GenerationResult) -> dict[str, int]:
    """``{"prompt_tokens", "completion_tokens", "total_tokens"}``."""
    u = result.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}  # fmt: skip


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def logprobs(tokens: Iterable[TokenLogprob]) -> dict[str, Any]:
    """``{"content": [{"token", "logprob", "bytes", "top_logprobs"}, ...]}``."""
    return {"content": [{**_token(t.text, t.logprob), "top_logprobs": [_token(c.text, c.logprob) for c in t.top]}
                        for t in tokens]}  # fmt: skip


def tool_calls(calls: Sequence[ToolCall], *, streamed: bool) -> list[dict[str, Any]]:
    """The calls as a message's ``tool_calls`` (with ``index`` in a streamed delta)."""
    out = []
    for n, call in enumerate(calls):
        entry = call.to_openai()
        if streamed:
            entry["index"] = n
        out.append(entry)
    return out


class ChunkWriter:
    """Builds the SSE bytes of one streamed answer (the id, model and time of every chunk)."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool, logprobs: bool) -> None:
        self.include_usage = include_usage
        self.want_logprobs = logprobs
        self._head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model, "system_fingerprint": None}  # fmt: skip
        # a text chunk is the same bytes around its JSON string each time: made once, filled per chunk
        blank = self._chunk({"content": _MARK})
        self._text_head, _mark, self._text_tail = blank.rpartition(json.dumps(_MARK, ensure_ascii=False).encode())

    def _chunk(self, delta: dict[str, Any], *, reason: str | None = None, probs: Any = None) -> bytes:
        body: dict[str, Any] = {**self._head, "choices": [
            {"index": 0, "delta": delta, "logprobs": probs, "finish_reason": reason}]}  # fmt: skip
        if self.include_usage:
            body["usage"] = None
        return b"data: " + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    def role(self) -> bytes:
        """The first chunk: the assistant's role, no text yet."""
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str, tokens: Sequence[TokenLogprob] = ()) -> bytes:
        """A piece of the answer (one or several tokens) with their log-probabilities when asked."""
        if self.want_logprobs:
            return self._chunk({"content": text}, probs=logprobs(tokens))
        return self._text_head + json.dumps(text, ensure_ascii=False).encode() + self._text_tail

    def end(self, result: GenerationResult) -> bytes:
        """The tool calls (when any), the finish reason, the usage chunk (when asked) and ``[DONE]``."""
        out = b""
        if result.tool_calls:
            out += self._chunk({"tool_calls": tool_calls(result.tool_calls, streamed=True)})
        out += self._chunk({}, reason=finish_reason(result))
        if self.include_usage:
            body = {**self._head, "choices": [], "usage": usage(result)}
            out += b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
        return out + DONE

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        """An error after the stream began (OpenAI's SDK raises it from the ``data:`` line)."""
        return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


def completion(completion_id: str, model: str, result: GenerationResult, *, want_logprobs: bool) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text or (None if result.tool_calls else ""),
                               "refusal": None}  # fmt: skip
    if result.tool_calls:
        message["tool_calls"] = tool_calls(result.tool_calls, streamed=False)
    choice = {"index": 0, "message": message, "logprobs": logprobs(result.tokens) if want_logprobs else None,
              "finish_reason": finish_reason(result)}  # fmt: skip
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": None, "choices": [choice], "usage": usage(result)}  # fmt: skip
