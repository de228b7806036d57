"""Small MCP servers for tests, written with the SDK's server API and run as real subprocesses.

``python -m tests.support.mcp_servers stdio`` serves over stdio (``dynamic``: the same plus a
``grow`` tool that adds tools and prompts at run time); ``... http PORT HEADER VALUE``
serves streamable HTTP on 127.0.0.1:PORT and answers 401 unless the request carries the
header ``HEADER: VALUE``; ``... exit`` exits at once with a message on stderr.

Tools: ``echo(text)``, ``add(a, b)``, ``fail(reason)`` (an ``isError`` result), ``raise_error``
(a JSON-RPC error), ``crash`` (the process exits mid-call), ``hang`` (sleeps until cancelled), ``hangs`` (how many hang now),
``pid`` (the server's process id), ``picture`` (an image and a text item). Prompts: ``greet(who)``,
``review(code, language?)`` (a user and an assistant message), ``broken`` (fails). Resources:
``note://hello`` (text), ``blob://logo`` (binary only), ``note://big`` (200,000 characters); one
template, ``topic://{topic}/notes{?lang}``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

CLASH_TOOL = "echo"
"""A tool name every test server has (two servers listed together clash on it)."""


def build(name: str = "test", dynamic: bool = False) -> MCPServer[Any]:
    """The test server with its tools, prompts and resources (``dynamic``: and ``grow``)."""
    server: MCPServer[Any] = MCPServer(name)
    if dynamic:
        _add_grow(server)

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool()
    def fail(reason: str = "it failed") -> str:
        """Fail with an isError result."""
        raise ToolError(reason)

    @server.tool()
    def raise_error() -> str:
        """Answer with a JSON-RPC error."""
        raise MCPError(code=-32001, message="the test server refuses")

    @server.tool()
    def crash() -> str:
        """Exit the server process mid-call."""
        os._exit(3)

    hanging = [0]

    @server.tool()
    async def hang() -> str:
        """Never answer (until cancelled)."""
        import anyio

        hanging[0] += 1
        try:
            await anyio.sleep_forever()
        finally:
            hanging[0] -= 1
        return "never"

    @server.tool()
    def hangs() -> str:
        """How many ``hang`` calls are running (a cancelled one stops)."""
        return str(hanging[0])

    @server.tool()
    def pid() -> str:
        """The server's process id."""
        return str(os.getpid())

    @server.tool()
    def picture() -> list[Any]:
        """A text item and an image item."""
        from mcp.types import ImageContent, TextContent

        return [TextContent(type="text", text="a picture:"),
                ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png")]  # fmt: skip

    @server.prompt()
    def greet(who: str) -> str:
        """A greeting prompt."""
        return f"Say hello to {who}."

    @server.prompt()
    def review(code: str, language: str = "") -> list[Any]:
        """A two-turn prompt: the user's request and the assistant's question."""
        from mcp.server.mcpserver.prompts.base import AssistantMessage, UserMessage

        return [UserMessage(f"Review this {language or 'unnamed language'} code: {code}"),
                AssistantMessage("What should I look for first?")]  # fmt: skip

    @server.prompt()
    def broken() -> str:
        """A prompt whose rendering fails on the server."""
        raise ValueError("the template is broken")

    @server.resource("note://hello")
    def hello() -> str:
        """A short note."""
        return "hello from the resource"

    @server.resource("blob://logo", mime_type="image/png")
    def logo() -> bytes:
        """Binary only."""
        return b"\x89PNG\r\n\x1a\n"

    @server.resource("topic://{topic}/notes{?lang}", mime_type="text/plain")
    def topic_notes(topic: str, lang: str = "en") -> str:
        """Notes about a topic (a resource template)."""
        return f"notes about {topic} ({lang})"

    @server.resource("note://big")
    def big() -> str:
        """A long text (200,000 characters)."""
        return "x" * 200_000

    return server


def _add_grow(server: MCPServer[Any]) -> None:
    """``grow(name)``: adds a tool and a prompt called ``name`` and tells the client that its
    tool and prompt lists changed (``notifications/*/list_changed``)."""
    from mcp.server.mcpserver.prompts.base import Prompt

    @server.tool()
    async def grow(name: str, ctx: Context) -> str:
        """Add a tool and a prompt called ``name``."""

        def grown() -> str:
            return "grown"

        server.add_tool(grown, name=name, description="A tool added at run time.")
        server.add_prompt(Prompt.from_function(grown, name=name, description="A prompt added at run time."))
        await ctx.session.send_tool_list_changed()
        await ctx.session.send_prompt_list_changed()
        return f"added {name}"


def _serve_http(port: int, header: str, value: str) -> None:
    import uvicorn
    from starlette.responses import PlainTextResponse
    from starlette.types import ASGIApp, Receive, Scope, Send

    inner = build("http").streamable_http_app()

    def guarded(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                got = dict(scope["headers"]).get(header.lower().encode())
                if got != value.encode():
                    await PlainTextResponse("missing or wrong header", status_code=401)(
                        scope, receive, send
                    )
                    return
            await app(scope, receive, send)

        return guard

    uvicorn.run(guarded(inner), host="127.0.0.1", port=port, log_level="warning", lifespan="on")


def main(argv: list[str]) -> None:
    """Serve as ``argv`` says (see the module's docstring)."""
    mode = argv[0] if argv else "stdio"
    if mode == "stdio":
        build().run("stdio")
    elif mode == "dynamic":
        build(dynamic=True).run("stdio")
    elif mode == "http":
        _serve_http(int(argv[1]), argv[2], argv[3])
    elif mode == "exit":
        sys.stderr.write("the test server gives up at start\n")
        sys.exit(2)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
