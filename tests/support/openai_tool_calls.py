"""Tool-call scripts for the loopback OpenAI server (:mod:`tests.support.openai_server`).

- :func:`tool_calls`: a streamed answer of calls as OpenAI streams them: the first delta of
  each call carries its ``index``, ``id``, ``type`` and name, later deltas only ``index`` and
  a piece of the arguments (split anywhere, even inside a string); several calls interleave
  by ``index``; it finishes with ``tool_calls`` (then the usage chunk, when asked for).
- :func:`answer_tool_results`: answers a follow-up request with text made of the ``tool``
  messages it holds (so a test sees that each result reached the model).
- :func:`tool_message_problem`: OpenAI's own check of a request's tool messages (the server
  answers 400 with it): every call of an assistant message answered by a ``tool`` message
  with its ``tool_call_id``, and no ``tool`` message without a call before it.

    server.enqueue(tool_calls(("call_a", "get_weather", ['{"city": "Pa', 'ris"}']),
                              ("call_b", "get_time", '{"tz": "UTC"}')),
                   answer_tool_results())
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tests.support.openai_server import Behaviour

Call = tuple[str, str, "str | Sequence[str]"]
"""``(id, name, arguments)``: the arguments as the pieces to stream, or one text cut in 3."""


def pieces(arguments: str | Sequence[str], n: int = 3) -> list[str]:
    """The argument pieces of a call: a list as given; a text cut into ``n`` pieces at even
    places (anywhere: inside a key, a string or a number)."""
    if not isinstance(arguments, str):
        return list(arguments)
    step = max(1, -(-len(arguments) // n))
    return [arguments[i : i + step] for i in range(0, len(arguments), step)] or [""]


def opening(index: int, call_id: str, name: str) -> dict[str, Any]:
    """The first delta of call ``index``: its id, type and name, empty arguments."""
    return {"tool_calls": [{"index": index, "id": call_id, "type": "function",
                            "function": {"name": name, "arguments": ""}}]}  # fmt: skip


def argument_piece(index: int, piece: str) -> dict[str, Any]:
    """A later delta of call ``index``: only a piece of its arguments."""
    return {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


def call_deltas(*calls: Call, interleave: bool = True) -> list[dict[str, Any]]:
    """The deltas of ``calls``: interleaved round by round (call 0's opening, call 1's
    opening, call 0's first piece, call 1's first piece, ...) or one call after the other."""
    streams = [[opening(i, cid, name), *(argument_piece(i, p) for p in pieces(args))]
               for i, (cid, name, args) in enumerate(calls)]  # fmt: skip
    if not interleave:
        return [d for s in streams for d in s]
    rounds = max((len(s) for s in streams), default=0)
    return [s[r] for r in range(rounds) for s in streams if r < len(s)]


def tool_calls(*calls: Call, text_before: Sequence[str] = (), interleave: bool = True,
               finish_reason: str | None = "tool_calls", **options: Any) -> Behaviour:  # fmt: skip
    """A streamed answer of ``calls`` (after ``text_before``, when the model says something
    first), finishing with ``finish_reason``; ``options`` as in :class:`Behaviour`."""
    return Behaviour(chunks=[*text_before, *call_deltas(*calls, interleave=interleave)],
                     finish_reason=finish_reason, **options)  # fmt: skip


def tool_results(messages: Any) -> list[tuple[str, str]]:
    """``(tool_call_id, content)`` of each ``tool`` message in a request's ``messages``."""
    return [(str(m.get("tool_call_id")), str(m.get("content")))
            for m in messages or () if isinstance(m, dict) and m.get("role") == "tool"]  # fmt: skip


def answer_tool_results(prefix: str = "Results: ", **options: Any) -> Behaviour:
    """Answers with ``prefix`` and ``<tool_call_id>=<content>`` for each tool message of the
    request, joined by ``; `` (a 400 when the request holds no tool results)."""

    def reply(body: dict[str, Any]) -> Behaviour:
        results = tool_results(body.get("messages"))
        if not results:
            return Behaviour(status=400, error_message="the loopback server expected tool results")
        said = "; ".join(f"{cid}={content}" for cid, content in results)
        return Behaviour(chunks=[prefix, said], **options)

    return Behaviour(reply=reply)


def tool_message_problem(messages: Any) -> str | None:
    """OpenAI's 400 message for a request whose tool messages do not answer the calls before
    them, or None when they do."""
    if not isinstance(messages, list):
        return None
    open_ids: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m.get("role") == "tool":
            cid = m.get("tool_call_id")
            if cid not in open_ids:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                        f"message with 'tool_calls' (tool_call_id {cid!r}).")  # fmt: skip
            open_ids.remove(cid)
            continue
        if open_ids:
            break
        if m.get("role") == "assistant" and m.get("tool_calls"):
            open_ids = [str(c.get("id")) for c in m["tool_calls"] if isinstance(c, dict)]
    if open_ids:
        return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_ids)}")
    return None


def joined_calls(deltas: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Whole ``tool_calls`` entries of an assistant message from streamed ``deltas`` (the
    server's non-streaming answer)."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for piece in delta.get("tool_calls") or ():
            call = calls.setdefault(piece["index"], {"id": "", "type": "function",
                                                     "function": {"name": "", "arguments": ""}})  # fmt: skip
            call["id"] = piece.get("id") or call["id"]
            fn = piece.get("function") or {}
            call["function"]["name"] = fn.get("name") or call["function"]["name"]
            call["function"]["arguments"] += fn.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]
