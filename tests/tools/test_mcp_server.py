"""Tests of app/tools/mcp_server.py: one server's state, how it is described, and a server that
cannot start (the whole client against real servers is in test_mcp_client.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from app.core.mcp_config import McpServerConfig
from app.tools.mcp_server import McpConnection, ServerState, describe
from tests.tools.test_mcp_client import scenario

__all__ = ["scenario"]  # a fixture, used by name


def test_server_state_reads_as_the_user_sees_it() -> None:
    assert str(ServerState("a", "ready", 1)) == "ready (1 tool)"
    assert str(ServerState("a", "ready", 3)) == "ready (3 tools)"
    assert str(ServerState("a", "ready", 0, prompts=1, resources=2)) == "ready (0 tools, 1 prompt, 2 resources)"
    assert str(ServerState("a", "failed", reason="no such file")) == "failed: no such file"
    assert str(ServerState("a", "stopped")) == "stopped"


def test_describe_gives_the_command_line_or_the_url() -> None:
    assert describe(McpServerConfig(name="local", command="mcp-files", args=["--root", "/tmp"])) == "mcp-files --root /tmp"
    url = describe(McpServerConfig(name="remote", transport="http", url="http://127.0.0.1:9/mcp"))
    assert url.startswith("http://127.0.0.1:9")


def test_a_server_that_cannot_start_fails_with_its_reason(run: Callable[..., Any]) -> None:
    seen: list[ServerState] = []
    conn = McpConnection(McpServerConfig(name="missing", command="/no/such/mcp-server"), None, seen.append)
    assert conn.state.status == "starting" and not conn.started.is_set()

    async def start() -> None:
        task = asyncio.ensure_future(conn.run())
        await asyncio.wait_for(conn.started.wait(), 20)
        conn.close()
        await asyncio.wait_for(task, 20)

    run(start(), timeout=40)
    assert conn.state.status == "failed" and conn.state.reason
    assert seen and seen[0].status == "failed" and conn.tools == []


def test_a_server_that_changes_its_lists_is_listed_again(scenario: Callable[..., Any]) -> None:
    """``notifications/tools/list_changed`` and ``.../prompts/list_changed``: the lists are asked
    for again, the new state is said, and the new tool can be called."""
    from app.core.tools import ToolCall
    from app.tools.mcp_client import McpServers
    from tests.tools.test_mcp_client import stdio

    async def body() -> None:
        both_listed = asyncio.Event()

        def seen(state: ServerState) -> None:
            if state.status == "ready" and state.tools == 11 and state.prompts == 4:
                both_listed.set()

        async with McpServers([stdio(mode="dynamic")], on_state=seen) as servers:
            assert servers.states()[0].tools == 10
            grown = await servers.call(ToolCall("c1", "grow", '{"name": "fresh"}'))
            assert grown.content == "added fresh" and not grown.is_error
            await asyncio.wait_for(both_listed.wait(), 20)
            assert "fresh" in {s.name for s in servers.tools()} and servers.server_of("fresh") == "local"
            assert "fresh" in {p.name for p in servers.prompts()}
            assert (await servers.call(ToolCall("c2", "fresh", "{}"))).content == "grown"
            assert str(servers.states()[0]) == "ready (11 tools, 4 prompts, 3 resources)"

    scenario(body())
