"""MCP servers for a run: start the configured ones, list their tools, call them, stop them.

The interface a tool loop, the CLI or the window needs::

    async with McpServers(settings.mcp_servers, secrets, on_state=show) as servers:
        specs = servers.tools()                  # ToolSpecs to offer the model
        server = servers.server_of(call.name)    # None: no MCP server offers it
        if server and servers.needs_approval(server): ...ask (allow once / always / deny)...
        result = await servers.call(call)        # a ToolResult, never an exception
        prompts, resources = servers.prompts(), servers.resources()   # for the user to insert
        text = await servers.get_prompt(prompt, {"who": "Ada"})      # ToolError when it fails
        text = await servers.read_resource(resource)

Works on any asyncio loop (the CLI's, or qasync's in the window); ``on_state`` is called on
that loop's thread with each server's new :class:`ServerState`. Nothing here raises out of
:meth:`McpServers.call`: a server that crashed, hung past its timeout, answered a JSON-RPC
error or got arguments that are not JSON gives an error :class:`ToolResult` (``is_error``,
source ``"error"``); a tool that reports ``isError`` gives one with source ``"mcp"``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from app.core.errors import ToolError, ToolSchemaError, redact
from app.core.mcp_config import McpServerConfig, SecretLookup
from app.core.tools import MAX_NAME, NAME_CHARS, ToolCall, ToolResult, ToolSpec, check_schema
from app.tools.mcp_content import call_error, content_text, main_leaf
from app.tools.mcp_library import (
    McpPrompt,
    McpResource,
    McpResourceTemplate,
    prompt_of,
    prompt_text,
    resource_of,
    resource_text,
    template_of,
)
from app.tools.mcp_server import McpConnection, ServerState, describe

log = logging.getLogger(__name__)

__all__ = ["McpServers", "ServerState", "describe"]

STOP_GRACE_S = 10.0
"""How long :meth:`McpServers.aclose` waits for a server's task (the SDK's own shutdown
closes stdin, waits 2 s, terminates, waits 2 s, kills) before cancelling it."""


def _safe_name(name: str) -> str:
    return "".join(c if c in NAME_CHARS else "_" for c in name)[:MAX_NAME] or "tool"


class McpServers:
    """The enabled servers of ``configs``; secrets resolved through ``secrets`` (a
    :class:`app.core.secrets.SecretStore`) when they start."""

    def __init__(self, configs: Sequence[McpServerConfig], secrets: SecretLookup | None = None, *,
                 on_state: Callable[[ServerState], None] | None = None) -> None:  # fmt: skip
        self.on_state = on_state
        self._servers = {
            c.name: McpConnection(c, secrets, self._changed) for c in configs if c.enabled
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._trusted: set[str] = {c.name for c in configs if c.trusted}
        self._routes: dict[str, tuple[str, str]] = {}
        self._specs: list[ToolSpec] = []
        self._notes: list[str] = []

    def _changed(self, state: ServerState) -> None:
        self._routes.clear()  # tools() rebuilds them
        if self.on_state is not None:
            self.on_state(state)

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every enabled server (each in its own task); returns at once."""
        for name, server in self._servers.items():
            if name not in self._tasks:
                self._changed(server.state)
                self._tasks[name] = asyncio.get_running_loop().create_task(
                    server.run(), name=f"mcp:{name}"
                )

    async def wait_started(self) -> None:
        """Wait until no server is ``starting`` (each is bounded by its ``timeout_s``)."""
        self.start()
        waits = [s.started.wait() for s in self._servers.values()]
        if waits:
            await asyncio.gather(*waits)

    async def __aenter__(self) -> McpServers:
        await self.wait_started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every server (its process ends; one that does not is killed) and wait for it."""
        for server in self._servers.values():
            server.close()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in pending:  # a last resort: the SDK's shutdown is bounded well below this
            log.warning("an MCP server did not stop within %.0f s; cancelling it", STOP_GRACE_S)
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=STOP_GRACE_S)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("an MCP server's task failed: %s", redact(str(task.exception())))

    # -- what they offer ----------------------------------------------------------------------

    def states(self) -> list[ServerState]:
        """Each enabled server's state, in the settings' order."""
        return [s.state for s in self._servers.values()]

    def describe(self, server: str) -> str:
        """The server's command line or URL, as shown to the user."""
        return describe(self._servers[server].config)

    def tools(self) -> tuple[ToolSpec, ...]:
        """The tools of the ready servers as ToolSpecs (name, description, inputSchema). A name
        offered by several servers is called ``server__tool`` for each (see :meth:`notes`);
        a tool with an invalid input schema is left out (and said)."""
        if self._routes:
            return tuple(self._specs)
        count: dict[str, int] = {}
        for server in self._ready():
            for tool in server.tools:
                count[_safe_name(tool.name)] = count.get(_safe_name(tool.name), 0) + 1
        specs: list[ToolSpec] = []
        notes: list[str] = []
        routes: dict[str, tuple[str, str]] = {}
        for server in self._ready():
            for tool in server.tools:
                base = _safe_name(tool.name)
                name = (
                    base if abs(count[base]) == 1 else _safe_name(f"{server.config.name}__{base}")
                )
                if name != base and count[base] > 0:
                    count[base] = -count[base]  # said once per name
                    notes.append(f"The tool '{tool.name}' is offered by {-count[base]} MCP servers; each is "
                                 "called SERVER__TOOL (e.g. " + repr(name) + ").")  # fmt: skip
                schema = dict(tool.input_schema or {"type": "object", "properties": {}})
                try:
                    check_schema(
                        schema,
                        f"MCP server '{server.config.name}': tool '{tool.name}': inputSchema",
                    )
                except ToolSchemaError as exc:
                    notes.append(exc.message + " The tool is left out.")
                    continue
                routes[name] = (server.config.name, tool.name)
                specs.append(ToolSpec(name, tool.description or "", schema))
        self._specs, self._notes, self._routes = specs, notes, routes
        return tuple(specs)

    def notes(self) -> list[str]:
        """What :meth:`tools` had to say (renamed tools, tools left out), and the servers
        whose prompts or resources could not be listed."""
        self.tools()
        return [*self._notes, *(s.listing_note for s in self._ready() if s.listing_note), *self._templates()[1]]

    def prompts(self) -> list[McpPrompt]:
        """The prompts of the ready servers, in the settings' order."""
        return [prompt_of(s.config.name, p) for s in self._ready() for p in s.prompts]

    def resources(self) -> list[McpResource]:
        """The resources of the ready servers, in the settings' order."""
        return [resource_of(s.config.name, r) for s in self._ready() for r in s.resources]

    def resource_templates(self) -> list[McpResourceTemplate]:
        """The resource templates of the ready servers (one whose URI template does not parse
        is left out, and said in :meth:`notes`)."""
        return self._templates()[0]

    def _templates(self) -> tuple[list[McpResourceTemplate], list[str]]:
        templates: list[McpResourceTemplate] = []
        notes: list[str] = []
        for server in self._ready():
            for template in server.resource_templates:
                try:
                    templates.append(template_of(server.config.name, template))
                except ToolError as exc:
                    notes.append(exc.message)
        return templates, notes

    async def get_prompt(self, prompt: McpPrompt, arguments: dict[str, str]) -> tuple[str, list[str]]:
        """``prompt`` filled by its server with ``arguments``: its text and the roles of its
        messages (see :func:`~app.tools.mcp_library.prompt_text`). Raises :class:`ToolError`
        naming the server and the prompt: a required argument left empty (checked before
        asking), a server that is not ready, answers an error or takes longer than its
        ``timeout_s``."""
        missing = prompt.missing(arguments)
        if missing:
            raise ToolError(f"The prompt '{prompt.name}' needs: {', '.join(missing)}.",
                            hint="Fill in every argument marked *.")  # fmt: skip
        values = {k: v for k, v in arguments.items() if v.strip()}  # an optional one left empty is not sent

        async def op(session: Any) -> Any:
            return await session.get_prompt(prompt.name, values)

        result = await self._ask(prompt.server, f"prompt '{prompt.name}'", op)
        return prompt_text(getattr(result, "messages", ()))

    async def read_resource(self, resource: McpResource) -> str:
        """The text of ``resource`` as its server reads it out. Raises :class:`ToolError`
        naming the server and the URI (as :meth:`get_prompt` does), also when the
        resource is binary only."""

        async def op(session: Any) -> Any:
            return await session.read_resource(resource.uri)

        where = f"resource '{resource.uri}'"
        result = await self._ask(resource.server, where, op)
        try:
            return resource_text(getattr(result, "contents", ()))
        except ToolError as exc:
            raise ToolError(f"MCP server '{resource.server}', {where}: {exc.message}", hint=exc.hint) from None

    async def read_template(self, template: McpResourceTemplate, values: dict[str, str]) -> tuple[str, str]:
        """(the URI, its text): ``template`` expanded with ``values`` and read (see
        :meth:`read_resource`); a required variable left empty raises :class:`ToolError`."""
        missing = template.missing(values)
        if missing:
            raise ToolError(f"The resource template '{template.uri_template}' needs: {', '.join(missing)}.",
                            hint="Fill in every variable marked *.")  # fmt: skip
        uri = template.expand(values)
        resource = McpResource(template.server, template.name, uri=uri, mime_type=template.mime_type)
        return uri, await self.read_resource(resource)

    async def _ask(self, name: str, what: str, op: Callable[[Any], Any], timeout_s: float | None = None) -> Any:
        """Run ``op`` on server ``name`` (``timeout_s``: its ``timeout_s`` when None); its
        failures as a :class:`ToolError` naming the server and ``what``."""
        server = self._servers.get(name)
        where = f"MCP server '{name}', {what}"
        if server is None:
            raise ToolError(f"{where}: the server is not in the settings.")
        timeout = server.config.timeout_s if timeout_s is None else timeout_s
        try:
            return await server.request(op, timeout)
        except TimeoutError:
            raise ToolError(f"{where}: no answer within {timeout:g} s; the call was cancelled.") from None
        except ToolError as exc:
            raise ToolError(f"{where}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - the user sees it; nothing breaks
            raise ToolError(f"{where}: {call_error(main_leaf(exc), server.state.reason)}") from None

    def server_of(self, tool_name: str) -> str | None:
        """The server that offers ``tool_name`` (as named in :meth:`tools`), or None."""
        self.tools()
        route = self._routes.get(tool_name)
        return route[0] if route else None

    def needs_approval(self, server: str) -> bool:
        """True unless the server is trusted (in the settings, or by :meth:`trust` for this
        session): the loop asks before each call."""
        return server not in self._trusted

    def trust(self, server: str) -> None:
        """Trust ``server`` ("always for this server") until these servers close: no more asking."""
        self._trusted.add(server)

    def _ready(self) -> list[McpConnection]:
        return [s for s in self._servers.values() if s.state.status == "ready"]

    # -- calls ------------------------------------------------------------------------------

    async def call(self, call: ToolCall, timeout_s: float | None = None) -> ToolResult:
        """Run ``call`` on the server that offers it (``timeout_s``: that server's
        ``timeout_s`` when None); always a :class:`ToolResult`."""
        started = time.monotonic()

        def error(why: str) -> ToolResult:
            return ToolResult(call.id, call.name, redact(why), is_error=True, source="error",
                              elapsed_s=round(time.monotonic() - started, 3))  # fmt: skip

        self.tools()
        route = self._routes.get(call.name)
        if route is None:
            return error(f"No ready MCP server offers the tool '{call.name}'.")
        arguments = call.parsed_arguments()
        if arguments is None:
            return error(f"The arguments of '{call.name}' are not a JSON object: {call.arguments[:200]!r}. "
                         "Call the tool again with a JSON object that follows its parameters.")  # fmt: skip
        server, tool = route

        async def op(session: Any) -> Any:
            return await session.call_tool(tool, arguments)

        try:
            result = await self._ask(server, f"tool '{tool}'", op, timeout_s)
        except ToolError as exc:  # the model and the user see it; nothing breaks
            return error(exc.message)
        text = content_text(result.content, getattr(result, "structured_content", None))
        return ToolResult(call.id, call.name, text, is_error=bool(result.is_error), source="mcp",
                          elapsed_s=round(time.monotonic() - started, 3))  # fmt: skip
