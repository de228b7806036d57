"""``mcp``: what the MCP servers offer, and their prompts and resources as text.

- ``mcp list``: each server (the settings' and ``--mcp``'s) with its state, tools, prompts (their
  arguments; ``*``: required), resources and resource templates; ``--json`` prints one object.
- ``mcp prompt SERVER NAME [ARG=VALUE ...]``: the prompt filled in by its server, on stdout.
- ``mcp read SERVER URI``: the resource's text, on stdout (any URI the server reads, e.g. one
  written from its resource templates).

So a server's prompt or resource can go into another command, e.g.
``python -m app mcp read files file:///notes.txt | python -m app ask -m local:smollm2 -``.
A server that fails, a prompt it cannot fill or a binary resource exits 1; an unknown
server, prompt or argument exits 2, naming what there is.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from app.cli.ask_tools import mcp_config
from app.cli.common import EXIT_OK, run_with_services, subcommand
from app.core.errors import InvalidParams, ToolError

if TYPE_CHECKING:
    from app.core.services import Services
    from app.tools.mcp_client import McpServers
    from app.tools.mcp_library import McpPrompt, McpResource


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``mcp`` subcommand."""
    p = subcommand(sub, "mcp", "MCP servers' tools, prompts and resources",
                   "List what the MCP servers of the settings (and --mcp) offer, fill in a prompt, "
                   "or read a resource; the text goes to stdout.", run_mcp)  # fmt: skip
    p.add_argument("action", choices=("list", "prompt", "read"))
    p.add_argument("target", nargs="*", metavar="SERVER NAME|URI [ARG=VALUE ...]",
                   help="prompt: the server, the prompt and its arguments; read: the server and the URI")  # fmt: skip
    p.add_argument("--mcp", metavar='"COMMAND ARGS..."|URL', action="append", default=[],
                   help="one more MCP server (repeatable; named cli1, cli2, ...)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="list: print one JSON object")


def run_mcp(args: argparse.Namespace) -> int:
    """Run ``mcp`` (see the module doc)."""
    return run_with_services(lambda services: _run(services, args))


async def _run(services: Services, args: argparse.Namespace) -> int:
    from app.tools.mcp_client import McpServers

    expected = {"list": (0, 0), "prompt": (2, None), "read": (2, 2)}[args.action]
    lo, hi = expected
    if len(args.target) < lo or (hi is not None and len(args.target) > hi):
        raise InvalidParams(f"mcp {args.action}: wrong arguments ({' '.join(args.target) or 'none'}).",
                            hint="Use: mcp list | mcp prompt SERVER NAME [ARG=VALUE ...] | mcp read SERVER URI.")  # fmt: skip
    configs = [c for c in services.settings.mcp_servers if c.enabled]
    configs += [mcp_config(spec, i) for i, spec in enumerate(args.mcp, start=1)]
    if not configs:
        raise InvalidParams("There are no MCP servers.",
                            hint='Add them to settings.json (mcp_servers), or give --mcp "COMMAND ARGS..." or --mcp URL.')  # fmt: skip
    async with McpServers(configs, services.secrets) as servers:
        if args.action == "list":
            _list(servers, args.json)
            return EXIT_OK
        _ready(servers, args.target[0])
        if args.action == "prompt":
            prompt = _prompt(servers, args.target[0], args.target[1])
            text, _roles = await servers.get_prompt(prompt, _arguments(prompt, args.target[2:]))
        else:
            text = await servers.read_resource(_resource(servers, args.target[0], args.target[1]))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _ready(servers: McpServers, name: str) -> None:
    """Raise when ``name`` is not a server, or did not start (why it failed is said)."""
    states = {s.name: s for s in servers.states()}
    state = states.get(name)
    if state is None:
        raise InvalidParams(f"No MCP server is called '{name}'.", hint=f"The servers: {', '.join(states)}.")
    if state.status != "ready":
        raise ToolError(f"The MCP server '{name}' is not ready: {state}.")


def _prompt(servers: McpServers, server: str, name: str) -> McpPrompt:
    prompts = [p for p in servers.prompts() if p.server == server]
    for prompt in prompts:
        if prompt.name == name:
            return prompt
    raise InvalidParams(f"The MCP server '{server}' has no prompt '{name}'.",
                        hint=f"Its prompts: {', '.join(p.name for p in prompts) or 'none'}.")  # fmt: skip


def _arguments(prompt: McpPrompt, words: list[str]) -> dict[str, str]:
    """``ARG=VALUE`` words as the prompt's arguments (each one it has; the required ones given)."""
    known = {a.name for a in prompt.arguments}
    values: dict[str, str] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or name not in known:
            raise InvalidParams(f"'{word}' is not ARG=VALUE for an argument of the prompt '{prompt.name}'.",
                                hint=f"Its arguments: {_signature(prompt) or 'none'}.")  # fmt: skip
        values[name] = value
    missing = prompt.missing(values)
    if missing:
        raise InvalidParams(f"The prompt '{prompt.name}' needs: {', '.join(missing)}.",
                            hint=f"Give them as ARG=VALUE ({_signature(prompt)}).")  # fmt: skip
    return values


def _resource(servers: McpServers, server: str, uri: str) -> McpResource:
    """The listed resource ``uri`` of ``server``, or one made for a URI it did not list (a
    server may read more than it lists, e.g. from its resource templates)."""
    from app.tools.mcp_library import McpResource

    for resource in servers.resources():
        if resource.server == server and resource.uri == uri:
            return resource
    return McpResource(server, "", uri=uri)


def _signature(prompt: McpPrompt) -> str:
    return ", ".join(a.name + ("*" if a.required else "") for a in prompt.arguments)


def _list(servers: McpServers, as_json: bool) -> None:
    tools = servers.tools()
    prompts, resources, templates = servers.prompts(), servers.resources(), servers.resource_templates()
    rows: list[dict[str, Any]] = []
    for state in servers.states():
        rows.append({
            "name": state.name, "state": str(state), "command": servers.describe(state.name),
            "tools": [{"name": t.name, "description": t.description} for t in tools
                      if servers.server_of(t.name) == state.name],
            "prompts": [{"name": p.name, "description": p.description,
                         "arguments": [{"name": a.name, "required": a.required, "description": a.description}
                                       for a in p.arguments]} for p in prompts if p.server == state.name],
            "resources": [{"uri": r.uri, "name": r.name, "mime_type": r.mime_type, "description": r.description}
                          for r in resources if r.server == state.name],
            "resource_templates": [{"uri_template": t.uri_template, "name": t.name, "mime_type": t.mime_type,
                                    "description": t.description} for t in templates if t.server == state.name],
        })  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps({"servers": rows, "notes": servers.notes()}, ensure_ascii=False, indent=2) + "\n")
        return
    lines: list[str] = []
    for row, state in zip(rows, servers.states(), strict=True):
        lines.append(f"{row['name']}  {row['state']}  ({row['command']})")
        lines += [f"  tool      {t['name']}" + (f" - {t['description']}" if t["description"] else "") for t in row["tools"]]
        lines += [f"  prompt    {p.name}({_signature(p)})" + (f" - {p.description}" if p.description else "")
                  for p in prompts if p.server == state.name]  # fmt: skip
        lines += [f"  resource  {r['uri']}" + (f" ({r['mime_type']})" if r["mime_type"] else "")
                  + (f" - {r['description']}" if r["description"] else "") for r in row["resources"]]  # fmt: skip
        lines += [f"  template  {t['uri_template']}" + (f" - {t['description']}" if t["description"] else "")
                  for t in row["resource_templates"]]  # fmt: skip
    lines += [f"note: {note}" for note in servers.notes()]
    sys.stdout.write("\n".join(lines) + "\n")
