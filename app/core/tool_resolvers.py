"""Where a tool call's result comes from, in the order a :class:`~app.core.tool_loop.ToolLoop`
asks (:class:`ResolverChain`):

1. a stub result the user typed for that function (:class:`StubResolver`; OpenAI Playground
   style: any text, usually JSON);
2. arguments that are not valid JSON: an error result the model sees ("arguments are not
   valid JSON: ..."), so it can try again;
3. an MCP server that offers the tool (:class:`McpResolver`), after the user's approval
   unless the server is trusted; "deny" gives the error result "denied by the user";
4. nobody: no result, and the loop stops with ``finish_reason`` ``tool_calls``.

Qt-free; the MCP servers are passed in (:class:`McpTools`: what
:class:`app.tools.mcp_client.McpServers` offers).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from app.core.tools import ToolCall, ToolResult

Approval = Literal["once", "always", "deny"]
ApproveHook = Callable[[ToolCall, str], Awaitable[Approval]]
"""``approve(call, server)``: allow this call once, always for this server, or deny it."""
DENIED = "denied by the user"


@dataclass(frozen=True, slots=True)
class Resolved:
    """A call's result and the MCP server that gave it (None: not a server)."""

    result: ToolResult
    server: str | None = None


class ToolResolver(Protocol):
    """Gives a call its result, or None when it has none for it (the next one is asked)."""

    async def resolve(self, call: ToolCall) -> Resolved | None:
        """The result of ``call``, or None."""
        ...


class StubResolver:
    """Results the user typed, by function name (the same text for every call of it)."""

    def __init__(self, stubs: Mapping[str, str]) -> None:
        self.stubs = dict(stubs)

    async def resolve(self, call: ToolCall) -> Resolved | None:
        """The stub of ``call.name``, or None."""
        text = self.stubs.get(call.name)
        return None if text is None else Resolved(ToolResult(call.id, call.name, text, source="stub", elapsed_s=0.0))


def bad_arguments(call: ToolCall) -> ToolResult | None:
    """An error result when the call's arguments are not a JSON object (None: they are)."""
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError as exc:
        why = f"arguments are not valid JSON: {exc}"
    else:
        if isinstance(value, dict):
            return None
        why = f"arguments are not a JSON object (got {type(value).__name__})"
    return ToolResult(call.id, call.name, f"{why}. Call '{call.name}' again with a JSON object that follows its "
                      "parameters.", is_error=True, source="error", elapsed_s=0.0)  # fmt: skip


class InvalidArgumentsResolver:
    """An error result for a call whose arguments do not parse (so the model can retry)."""

    async def resolve(self, call: ToolCall) -> Resolved | None:
        """The error result, or None when the arguments are a JSON object."""
        result = bad_arguments(call)
        return None if result is None else Resolved(result)


class McpTools(Protocol):
    """What the loop needs of :class:`app.tools.mcp_client.McpServers`."""

    def server_of(self, tool_name: str) -> str | None:
        """The server that offers ``tool_name``, or None."""
        ...

    def needs_approval(self, server: str) -> bool:
        """True unless the server is trusted."""
        ...

    def trust(self, server: str) -> None:
        """Trust ``server`` for the rest of the session."""
        ...

    async def call(self, call: ToolCall, timeout_s: float | None = None) -> ToolResult:
        """Run ``call``; always a result (an error result when it failed)."""
        ...


class McpResolver:
    """Calls the MCP server that offers the tool. Before each call to a server that is not
    trusted, ``approve(call, server)`` is awaited ("always" trusts the server from then on);
    without ``approve`` every call is allowed (``--yes``)."""

    def __init__(self, servers: McpTools, approve: ApproveHook | None = None) -> None:
        self.servers = servers
        self.approve = approve

    async def resolve(self, call: ToolCall) -> Resolved | None:
        """The server's result (an error result when it failed or the user denied), or None
        when no server offers the tool."""
        server = self.servers.server_of(call.name)
        if server is None:
            return None
        if self.approve is not None and self.servers.needs_approval(server):
            answer = await self.approve(call, server)
            if answer == "deny":
                return Resolved(ToolResult(call.id, call.name, DENIED, is_error=True, source="error", elapsed_s=0.0),
                                server)  # fmt: skip
            if answer == "always":
                self.servers.trust(server)
        return Resolved(await self.servers.call(call), server)


class ResolverChain:
    """Asks each resolver in turn; the first result wins (None: nobody answers the call)."""

    def __init__(self, resolvers: Sequence[ToolResolver]) -> None:
        self.resolvers = list(resolvers)

    @classmethod
    def standard(cls, stubs: Mapping[str, str] | None = None, servers: McpTools | None = None,
                 approve: ApproveHook | None = None) -> ResolverChain:  # fmt: skip
        """Stubs, then the error for arguments that do not parse, then the MCP servers."""
        chain: list[ToolResolver] = [StubResolver(stubs or {}), InvalidArgumentsResolver()]
        if servers is not None:
            chain.append(McpResolver(servers, approve))
        return cls(chain)

    async def resolve(self, call: ToolCall) -> Resolved | None:
        """The first resolver's result, or None."""
        for resolver in self.resolvers:
            found = await resolver.resolve(call)
            if found is not None:
                return found
        return None
