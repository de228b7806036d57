"""What an MCP server sends back, as text for the model and the user: content blocks joined
(text kept, images, audio and resources summarised), and failures said in one line.

Qt-free; the ``mcp`` SDK's types are only looked at by name, so this module imports nothing
heavy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from app.core.errors import AppError, redact

CONNECTION_CLOSED = -32000
"""The SDK's code for a connection that closed under a request."""
REQUEST_TIMEOUT = -32001


def content_text(blocks: Iterable[Any], structured: Any = None) -> str:
    """The blocks of a result joined by newlines: text as is; an image or audio as
    ``[image: image/png, 1.2 kB]``; an embedded text resource as its text; others named.
    With no blocks, ``structured`` (the result's structured content) as JSON."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(getattr(block, "text", "")))
        elif kind in ("image", "audio"):
            data = str(getattr(block, "data", "") or "")
            parts.append(
                f"[{kind}: {getattr(block, 'mime_type', '?')}, {_size(len(data) * 3 // 4 - data.count('=', -2))}]"
            )
        elif kind == "resource":
            res = getattr(block, "resource", None)
            text = getattr(res, "text", None)
            parts.append(
                str(text) if isinstance(text, str) else f"[resource: {getattr(res, 'uri', '?')}]"
            )
        elif kind == "resource_link":
            parts.append(f"[resource link: {getattr(block, 'uri', '?')}]")
        else:
            parts.append(f"[{kind or type(block).__name__} content]")
    if not parts and structured is not None:
        return json.dumps(structured, ensure_ascii=False)
    return "\n".join(parts)


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1000 else f"{n / 1000:.1f} kB"


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]``."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(leaves(inner))
        return out
    return [exc]


def main_leaf(exc: BaseException) -> BaseException:
    """The exception that says most: the first leaf that is not a cancellation."""
    found = leaves(exc)
    import asyncio

    for leaf in found:
        if not isinstance(leaf, asyncio.CancelledError | GeneratorExit):
            return leaf
    return found[0] if found else exc


def failure_reason(exc: BaseException, *, command: str = "", url: str = "", http_status: int | None = None,
                   stderr_tail: str = "") -> str:  # fmt: skip
    """Why a server could not start or stopped, in one line (no traceback, no secret)."""
    leaf = main_leaf(exc)
    tail = f" (its last words: {stderr_tail})" if stderr_tail else ""
    if isinstance(leaf, AppError):
        return leaf.user_message()
    if isinstance(leaf, FileNotFoundError) and command:
        return redact(f"the command '{command}' was not found; check 'command' in the settings (a full path, "
                      "or a program on PATH)")  # fmt: skip
    if isinstance(leaf, PermissionError) and command:
        return redact(f"the command '{command}' could not be run (permission denied)")
    code = getattr(leaf, "code", None)
    if type(leaf).__name__ == "MCPError" and code == CONNECTION_CLOSED:
        if http_status:
            return f"the server answered HTTP {http_status}" + tail
        return ("the server exited" if command else "the connection closed") + tail
    if type(leaf).__name__ == "MCPError":
        status = f" (HTTP {http_status})" if http_status else ""
        return redact(f"the server answered an error: {leaf}{status}") + tail
    if type(leaf).__name__ == "ConnectError" and url:
        return redact(
            f"could not connect to {url} ({leaf}); check that the server runs and the URL is right"
        )
    if isinstance(leaf, TimeoutError):
        return "the server did not answer in time" + tail
    text = str(leaf).strip()
    return redact(f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__) + tail


def call_error(leaf: BaseException, lost: str) -> str:
    """Why one call failed (the server's JSON-RPC error, or the connection lost)."""
    code = getattr(leaf, "code", None)
    if type(leaf).__name__ == "MCPError":
        if code == CONNECTION_CLOSED:
            return lost or "the server closed the connection during the call"
        return redact(f"the server answered an error: {leaf} (code {code})")
    if isinstance(leaf, AppError):
        return leaf.message
    return failure_reason(leaf)


def last_line(text: str, limit: int = 300) -> str:
    """The last non-blank line of ``text`` (a server's stderr), shortened and redacted."""
    lines: Sequence[str] = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return redact(line if len(line) <= limit else line[: limit - 1] + "…")
