"""``ask``'s tools and structured output: ``--tools FILE``, ``--tool-result NAME=JSON``,
``--mcp``, ``--yes``, ``--max-tool-steps``, ``--tool-choice``, ``--schema FILE`` and
``--json-mode``. With any of them the answer runs as a tool loop
(:class:`app.core.tool_loop.ToolLoop`): each call and result is printed on stderr as it
happens (``→ get_weather({"city":"Paris"})`` / ``← {"temp": 21} (0.02 s)``), the final
answer on stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import shlex
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TextIO

from app.core.errors import ApprovalNeeded, InvalidParams
from app.core.mcp_config import McpServerConfig
from app.core.tool_events import ToolCallsMade, ToolLoopFinished, ToolResultReady
from app.core.tool_files import load_schema, load_tools, parse_stub
from app.core.tool_loop import ToolLoop
from app.core.tool_resolvers import Approval, ResolverChain
from app.core.tools import NAME_CHARS, TOOL_CHOICES, ResponseSchema, ToolCall, ToolSpec

if TYPE_CHECKING:
    from app.cli.exchange import AskConversation
    from app.core.run_events import RunEvent
    from app.core.services import Services
    from app.core.tool_events import LoopEvent
    from app.core.tool_loop import LoopResult
    from app.core.types import GenerationRequest
    from app.tools.mcp_client import McpServers

SHOWN = 200
"""Characters of a call's arguments or a result shown on stderr (the rest is cut)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The tool options of ``ask``."""
    g = p.add_argument_group("tools and structured output")
    g.add_argument("--tools", metavar="FILE", help="functions the model may call: a JSON or YAML list in OpenAI's "
                   "tools format (a bad schema exits 2 naming the tool and the JSON path)")
    g.add_argument("--tool-result", metavar="NAME=JSON", action="append", default=[],
                   help="the result to send back when the model calls NAME (repeatable)")
    g.add_argument("--mcp", metavar='"COMMAND ARGS..."|URL', action="append", default=[],
                   help="an MCP server whose tools the model may call, beside the configured ones (repeatable)")
    g.add_argument("--yes", action="store_true", help="run MCP tool calls without asking")
    g.add_argument("--max-tool-steps", metavar="N", type=int,
                   help="stop after N model requests in the tool loop (default: the settings', 8)")
    g.add_argument("--tool-choice", metavar="auto|none|required|NAME",
                   help="whether the model must call a tool (NAME: that function)")
    g.add_argument("--schema", metavar="FILE", help="a JSON Schema the answer must follow (structured output; "
                   "--json says whether it is 'valid')")
    g.add_argument("--json-mode", action="store_true", help="the answer must be a JSON object")  # fmt: skip


def wanted(args: argparse.Namespace) -> bool:
    """True when ``ask`` runs as a tool loop (a tool or schema option was given)."""
    return bool(getattr(args, "tools", None) or getattr(args, "tool_result", None) or getattr(args, "mcp", None)
                or getattr(args, "schema", None) or getattr(args, "json_mode", False)
                or getattr(args, "tool_choice", None) or getattr(args, "max_tool_steps", None) is not None)  # fmt: skip


def _calls_tools(args: argparse.Namespace) -> bool:
    return bool(args.tools or args.tool_result or args.mcp)


def request_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request's ``tools``, ``tool_choice`` and ``response_schema`` from the options
    (files read and checked here: bad input raises before anything is sent)."""
    if not wanted(args):
        return {}
    tools: tuple[ToolSpec, ...] = load_tools(args.tools) if args.tools else ()
    for stub in args.tool_result:
        parse_stub(stub)
    if args.max_tool_steps is not None and not 1 <= args.max_tool_steps <= 100:
        raise InvalidParams(f"--max-tool-steps must be from 1 to 100 (got {args.max_tool_steps}).")
    if args.schema and args.json_mode:
        raise InvalidParams("--schema and --json-mode do not go together.", hint="Give one of them.")
    schema = load_schema(args.schema) if args.schema else (ResponseSchema(None) if args.json_mode else None)
    choice = args.tool_choice
    if choice is not None and choice not in TOOL_CHOICES and not (set(choice) <= NAME_CHARS and _calls_tools(args)):
        raise InvalidParams(f"--tool-choice {choice!r} is not auto, none, required or a function of --tools/--mcp.",
                            hint="Use auto, none, required or the name of one of the functions.")  # fmt: skip
    return {"tools": tools, "tool_choice": choice, "response_schema": schema}


def mcp_config(spec: str, number: int) -> McpServerConfig:
    """``--mcp "COMMAND ARGS..."`` (stdio) or ``--mcp URL`` (streamable HTTP) as a server config."""
    if spec.strip().lower().startswith(("http://", "https://")):
        return McpServerConfig(name=f"cli{number}", transport="http", url=spec.strip())
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise InvalidParams(f"--mcp {spec!r}: {exc}.", hint='Quote it as one argument: --mcp "COMMAND ARGS..."') from None
    if not words:
        raise InvalidParams("--mcp needs a command or a URL.", hint='Write --mcp "COMMAND ARGS..." or --mcp URL.')
    return McpServerConfig(name=f"cli{number}", command=words[0], args=words[1:])


def short(text: str) -> str:
    """``text`` on one line, cut at :data:`SHOWN` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SHOWN else flat[: SHOWN - 1] + "…"


class ToolPrinter:
    """Prints the loop's calls and results on stderr as they happen."""

    def __init__(self, err: TextIO, before: Callable[[], None]) -> None:
        self.err = err
        self.before = before
        """Ends the streamed text / progress line before a tool line."""

    def __call__(self, event: LoopEvent) -> None:
        """One loop event."""
        if isinstance(event, ToolCallsMade):
            self.before()
            for call in event.calls:
                self.err.write(f"→ {call.name}({short(call.arguments)})\n")
        elif isinstance(event, ToolResultReady):
            r = event.result
            where = f" [{event.server}]" if event.server else ""
            took = f" ({r.elapsed_s:.2f} s)" if r.elapsed_s else ""
            self.err.write(f"← {'error: ' if r.is_error else ''}{short(r.content)}{took}{where}\n")
        elif isinstance(event, ToolLoopFinished) and event.result.note:
            self.before()
            self.err.write(f"note: {event.result.note}\n")
        else:
            return
        self.err.flush()


class Approver:
    """Asks before each call to an MCP server that is not trusted: ``--yes`` allows all; on a
    terminal it asks ``[y/N/a]`` on stderr (a: always for this server); without a terminal
    the run stops (exit 1) saying why."""

    def __init__(self, yes: bool, err: TextIO, stdin: TextIO | None = None) -> None:
        self.yes = yes
        self.err = err
        self.stdin = stdin or sys.stdin

    async def __call__(self, call: ToolCall, server: str) -> Approval:
        """``once``, ``always`` or ``deny`` for ``call`` on ``server``."""
        if self.yes:
            return "once"
        what = f"{call.name}({short(call.arguments)})"
        if not self.stdin.isatty():
            raise ApprovalNeeded(f"The MCP server '{server}' needs approval to run {what}, and there is no "
                                 "terminal to ask on; the run stopped before the call.",
                                 hint="Run with --yes to allow its calls, or mark the server trusted in the "
                                 "settings (mcp_servers: trusted: true).")  # fmt: skip
        self.err.write(f"Allow {what} on MCP server '{server}'? [y/N/a=always for this server] ")
        self.err.flush()
        line = await asyncio.get_running_loop().run_in_executor(None, self.stdin.readline)
        answer = line.strip().lower()
        return "always" if answer in ("a", "always") else "once" if answer in ("y", "yes") else "deny"


@contextlib.asynccontextmanager
async def mcp_servers(services: Services, args: argparse.Namespace, err: TextIO) -> AsyncIterator[McpServers | None]:
    """The configured MCP servers and those of ``--mcp``, started (None when tools are not
    used, or no server is configured); failed ones are said on stderr."""
    configs = [*services.settings.mcp_servers, *(mcp_config(s, i) for i, s in enumerate(args.mcp, start=1))]
    if not _calls_tools(args) or not configs:
        yield None
        return
    from app.tools.mcp_client import McpServers

    async with McpServers(configs, services.secrets) as servers:
        for state in servers.states():
            if state.status != "ready":
                err.write(f"note: MCP server '{state.name}' {state.status}: {state.reason}\n")
        for note in servers.notes():
            err.write(f"note: {note}\n")
        err.flush()
        yield servers


def stubs(args: argparse.Namespace) -> dict[str, str]:
    """The ``--tool-result`` stubs by function name."""
    return dict(parse_stub(s) for s in getattr(args, "tool_result", None) or ())


async def run_loop(services: Services, args: argparse.Namespace, request: GenerationRequest,
                   on_event: Callable[[RunEvent | LoopEvent], None], err: TextIO,
                   exchange: AskConversation | None = None) -> LoopResult:  # fmt: skip
    """Run ``request`` as a tool loop with the options' stubs, MCP servers and limits."""
    steps = args.max_tool_steps or services.settings.max_tool_steps
    async with mcp_servers(services, args, err) as servers:
        if servers is not None:
            offered = {t.name for t in request.tools}
            request = dataclasses.replace(request, tools=(*request.tools,
                                                          *(t for t in servers.tools() if t.name not in offered)))
        choice = request.tool_choice
        if choice is not None and choice not in TOOL_CHOICES and all(t.name != choice for t in request.tools):
            error = InvalidParams(f"--tool-choice {choice!r} names no function of --tools or of the MCP servers.",
                                  hint="Use auto, none, required or the name of one of the functions.")  # fmt: skip
            if exchange is not None and exchange.answer is not None:  # its row must not stay "streaming"
                exchange.answers.abandon(exchange.answer, error.user_message())
            raise error
        approver = Approver(args.yes, err)
        loop = ToolLoop(services.scheduler, ResolverChain.standard(stubs(args), servers, approver), max_steps=steps,
                        on_event=on_event, conversation_id=exchange.ids()["conversation_id"] if exchange else None,
                        store=exchange.answers if exchange else None,
                        answer=exchange.answer if exchange else None,
                        stop_on_tool_error=services.settings.stop_on_tool_error)  # fmt: skip
        try:
            return await loop.run(request)
        finally:
            if exchange is not None:  # --json names the last answer
                exchange.answer = loop.answer


def pending_lines(result: LoopResult) -> str:
    """The calls nobody answered, one per line (``name(arguments)``), for stdout."""
    return "".join(f"{c.call.name}({c.call.arguments})\n" for c in result.pending())


def result_json(result: LoopResult) -> str:
    """The ``--json`` line of a loop."""
    return json.dumps(result.to_json(), ensure_ascii=False)
