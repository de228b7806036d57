"""THE registry of CLI commands: name, module, one-line summary and an example. The parser,
``python -m app``'s dispatch and its usage text all derive from it. Importing this module
imports nothing else (the window's start-up passes through it)."""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    """One headless command. ``module`` (under ``app.cli``) has ``add_parser(sub)``.
    (A NamedTuple, not a dataclass: ``python -m app`` imports this before the window shows.)"""

    name: str
    module: str
    summary: str
    example: str


COMMANDS: tuple[Command, ...] = (
    Command("ask", "ask", "stream one answer", 'python -m app ask -m mock:echo "hello"'),
    Command("models", "models", "list models", "python -m app models [--base-url URL]"),
    Command("count", "count", "count tokens", 'python -m app count -m openai:gpt-4o "some text"'),
    Command("keys", "keys", "manage API keys", "python -m app keys set|delete|list [openai|ENDPOINT]"),
    Command("usage", "usage", "usage and cost totals", "python -m app usage [--by model|day]"),
    Command("grid", "grid", "run a grid file", "python -m app grid FILE [--json] [-o results.html]"),
    Command("serve", "serve", "local OpenAI-compatible API", "python -m app serve [--port 8080] [--lora NAME=PATH]"),
    Command("history", "history", "stored conversations", "python -m app history list|show|fork|export|delete"),
    Command("mcp", "mcp", "MCP servers' offer", "python -m app mcp list|prompt|read [--mcp \"COMMAND ARGS\"]"),
)

NAMES: tuple[str, ...] = tuple(c.name for c in COMMANDS)


def usage_lines() -> str:
    """The "Commands:" part of ``python -m app -h``."""
    width = max(len(c.summary) for c in COMMANDS) + 2
    return "\n".join(f"  {c.name:<8} {c.summary + ':':<{width}} {c.example}" for c in COMMANDS)
