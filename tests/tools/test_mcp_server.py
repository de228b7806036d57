"""Tests of app/tools/mcp_server.py: one server's state, how it is described, and a server that
cannot start (the whole client against real servers is in test_mcp_client.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from app.core.mcp_config import McpServerConfig
from app.tools.mcp_server import McpConnection, ServerState, describe


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
