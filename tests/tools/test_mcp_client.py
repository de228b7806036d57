"""McpServers against real MCP servers in subprocesses (tests/support/mcp_servers.py): stdio
and streamable HTTP, their tools, every fault as an error result, timeouts, cancellation,
and a clean stop (no child process left, no stray task errors)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from app.core.mcp_config import McpServerConfig
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.tools import ToolCall
from app.tools.mcp_client import McpServers, ServerState

T = TypeVar("T")
SERVER = str(Path(__file__).resolve().parents[1] / "support" / "mcp_servers.py")


def stdio(name: str = "local", mode: str = "stdio", **kw: Any) -> McpServerConfig:
    return McpServerConfig(name=name, command=sys.executable, args=[SERVER, mode], **kw)


def call(name: str, arguments: str = "{}", call_id: str = "c1") -> ToolCall:
    return ToolCall(call_id, name, arguments)


@pytest.fixture
def scenario(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Any]]:
    """Run a coroutine on a fresh loop with a timeout; afterwards no loop error was reported
    (no "Task exception was never retrieved", no cancel-scope error) and nothing was printed
    to stderr (no traceback)."""
    errors: list[dict[str, Any]] = []

    def _run(coro: Awaitable[T], timeout: float = 60.0) -> T:
        async def wrapped() -> T:
            asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
            return await asyncio.wait_for(coro, timeout)

        result = asyncio.run(wrapped())
        gc.collect()
        return result

    yield _run
    assert not errors, errors
    err = capfd.readouterr().err
    assert "Traceback" not in err and "never retrieved" not in err, err


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def mcp_children() -> list[psutil.Process]:
    """This process's children that are stdio test servers (the HTTP server is the test's own)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if SERVER in child.cmdline() and "http" not in child.cmdline():
                out.append(child)
        except psutil.Error:
            continue
    return out


def test_stdio_server_lists_and_calls_its_tools(scenario: Callable[..., Any]) -> None:
    seen: list[str] = []

    async def body() -> None:
        servers = McpServers([stdio()], on_state=lambda s: seen.append(str(s)))
        async with servers:
            (state,) = servers.states()
            assert state.status == "ready" and state.tools == 9 and str(state) == "ready (9 tools, 3 prompts, 3 resources)"
            specs = {s.name: s for s in servers.tools()}
            assert {
                "echo",
                "add",
                "fail",
                "raise_error",
                "crash",
                "hang",
                "hangs",
                "pid",
                "picture",
            } == set(specs)
            assert specs["add"].description == "Add two integers."
            assert specs["add"].parameters["required"] == ["a", "b"]
            assert servers.server_of("add") == "local" and servers.server_of("nope") is None
            res = await servers.call(call("add", '{"a": 2, "b": 40}'))
            assert (res.content, res.is_error, res.source, res.call_id, res.name) == (
                "42",
                False,
                "mcp",
                "c1",
                "add",
            )
            assert res.elapsed_s is not None and res.elapsed_s >= 0
            res = await servers.call(call("echo", '{"text": "héllo"}'))
            assert res.content == "héllo"
            res = await servers.call(call("picture"))
            assert res.content == "a picture:\n[image: image/png, 8 bytes]" and not res.is_error
        assert servers.states()[0].status == "stopped"

    scenario(body())
    assert seen == ["starting", "ready (9 tools, 3 prompts, 3 resources)", "stopped"]
    assert mcp_children() == []


def test_each_fault_is_an_error_result_and_the_server_stays_usable(
    scenario: Callable[..., Any],
) -> None:
    async def body() -> None:
        async with McpServers([stdio()]) as servers:
            res = await servers.call(call("fail", '{"reason": "no such city"}'))
            assert res.is_error and res.source == "mcp" and "no such city" in res.content
            res = await servers.call(call("raise_error"))
            assert res.is_error and res.source == "error"
            assert "the test server refuses" in res.content and "-32001" in res.content
            res = await servers.call(call("add", '{"a": 1,'))
            assert res.is_error and res.source == "error" and "not a JSON object" in res.content
            res = await servers.call(call("add", "[1, 2]"))
            assert res.is_error and "not a JSON object" in res.content
            res = await servers.call(call("weather"))
            assert res.is_error and "No ready MCP server offers the tool 'weather'" in res.content
            assert servers.states()[0].status == "ready"
            assert (await servers.call(call("echo", '{"text": "ok"}'))).content == "ok"

    scenario(body())


def test_a_hang_past_the_timeout_is_cancelled_in_bounded_time(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        async with McpServers([stdio(timeout_s=0.5)]) as servers:
            started = time.monotonic()
            res = await servers.call(call("hang"), timeout_s=0.5)
            took = time.monotonic() - started
            assert (
                res.is_error and res.source == "error" and "no answer within 0.5 s" in res.content
            )
            assert 0.5 <= took < 3.0, took
            assert (await servers.call(call("hangs"))).content == "0"
            res = await servers.call(call("hang"))  # the server's own timeout_s
            assert res.is_error and "no answer within 0.5 s" in res.content
            assert (await servers.call(call("echo", '{"text": "alive"}'))).content == "alive"

    scenario(body())


def test_cancelling_the_caller_cancels_the_call(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        async with McpServers([stdio()]) as servers:
            task = asyncio.create_task(servers.call(call("hang"), timeout_s=30))
            done, _ = await asyncio.wait({task}, timeout=0.3)
            assert not done  # it hangs
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
            assert time.monotonic() - started < 3
            assert servers.states()[0].status == "ready"
            assert (await servers.call(call("hangs"))).content == "0"  # cancelled on the server too
            assert (await servers.call(call("echo", '{"text": "after"}'))).content == "after"

    scenario(body())


def test_a_server_that_exits_mid_call_gives_an_error_and_shows_failed(
    scenario: Callable[..., Any],
) -> None:
    states: list[ServerState] = []

    async def body() -> int:
        async with McpServers([stdio()], on_state=states.append) as servers:
            pid = int((await servers.call(call("pid"))).content)
            assert alive(pid)
            res = await servers.call(call("crash"))
            assert res.is_error and res.source == "error" and "exited" in res.content
            assert "Traceback" not in res.content
            (state,) = servers.states()
            assert state.status == "failed" and "exited" in state.reason
            assert servers.tools() == ()
            res = await servers.call(call("echo", '{"text": "x"}'))
            assert res.is_error and "No ready MCP server offers" in res.content
            return pid

    pid = scenario(body())
    assert [s.status for s in states] == ["starting", "ready", "failed"]
    assert not alive(pid)


def test_servers_that_cannot_start_show_why(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        configs = [
            McpServerConfig(name="missing", command="/no/such/mcp-server", args=["--x"]),
            stdio("quits", mode="exit"),
            stdio("off", enabled=False),
            stdio("good"),
        ]
        async with McpServers(configs) as servers:
            states = {s.name: s for s in servers.states()}
            assert set(states) == {"missing", "quits", "good"}
            assert states["missing"].status == "failed"
            assert "the command '/no/such/mcp-server' was not found" in states["missing"].reason
            assert states["quits"].status == "failed"
            assert (
                "exited" in states["quits"].reason and "gives up at start" in states["quits"].reason
            )
            assert states["good"].status == "ready"
            assert "echo" in {s.name for s in servers.tools()}

    scenario(body())


def test_a_name_offered_twice_is_prefixed_by_server(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        async with McpServers([stdio("one"), stdio("two", trusted=True)]) as servers:
            names = {s.name for s in servers.tools()}
            assert {
                "one__echo",
                "two__echo",
                "one__pid",
                "two__pid",
            } <= names and "echo" not in names
            assert any("'echo' is offered by 2 MCP servers" in n for n in servers.notes())
            pid_one = (await servers.call(call("one__pid"))).content
            pid_two = (await servers.call(call("two__pid"))).content
            assert pid_one != pid_two
            assert servers.server_of("two__echo") == "two"
            assert servers.needs_approval("one") and not servers.needs_approval("two")
            servers.trust("one")
            assert not servers.needs_approval("one")

    scenario(body())


def test_aclose_stops_every_server_even_mid_call(scenario: Callable[..., Any]) -> None:
    async def body() -> list[int]:
        servers = McpServers([stdio("a"), stdio("b")])
        await servers.wait_started()
        pids = [int((await servers.call(call(f"{n}__pid"))).content) for n in ("a", "b")]
        hanging = asyncio.create_task(servers.call(call("a__hang"), timeout_s=60))
        done, _ = await asyncio.wait({hanging}, timeout=0.2)
        assert not done
        started = time.monotonic()
        await servers.aclose()
        assert time.monotonic() - started < 8
        res = await asyncio.wait_for(hanging, 5)
        assert res.is_error and "stopped during the call" in res.content
        assert [s.status for s in servers.states()] == ["stopped", "stopped"]
        return pids

    pids = scenario(body())
    assert not any(alive(p) for p in pids)
    assert mcp_children() == []


# -- streamable HTTP ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """A streamable-HTTP test server on 127.0.0.1 that wants ``X-Test-Key: s3cret-value``."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "http", str(port), "X-Test-Key", "s3cret-value"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:  # readiness: the port accepts a connection (bounded)
            assert proc.poll() is None, "the HTTP test server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP test server did not start"
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.05)  # waits a little, and notices an exit
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def store_with(**entries: str) -> SecretStore:
    store = SecretStore(MemoryKeyring())
    for name, value in entries.items():
        store.set(name.replace("__", ":"), value)
    return store


def http(url: str, name: str = "remote", **kw: Any) -> McpServerConfig:
    return McpServerConfig(
        name=name, transport="http", url=url, headers={"X-Test-Key": "keyring:TEST_KEY"}, **kw
    )


def test_http_server_with_a_keyring_header(scenario: Callable[..., Any], http_url: str) -> None:
    async def body() -> None:
        async with McpServers(
            [http(http_url)], store_with(mcp__TEST_KEY="s3cret-value")
        ) as servers:
            (state,) = servers.states()
            assert state.status == "ready" and state.tools == 9
            res = await servers.call(call("add", '{"a": 5, "b": 6}'))
            assert (res.content, res.is_error) == ("11", False)
            res = await servers.call(call("raise_error"))
            assert res.is_error and "the test server refuses" in res.content
            res = await servers.call(call("hang"), timeout_s=0.5)
            assert res.is_error and "no answer within 0.5 s" in res.content
            assert (await servers.call(call("echo", '{"text": "http"}'))).content == "http"

    scenario(body())


def test_http_failures_show_why(scenario: Callable[..., Any], http_url: str) -> None:
    async def body() -> None:
        configs = [
            http(http_url, "wrongkey"),
            http(http_url, "nokey").model_copy(
                update={"headers": {"X-Test-Key": "keyring:ABSENT"}}
            ),
            http(f"http://127.0.0.1:{free_port()}/mcp", "refused", timeout_s=5),
        ]
        async with McpServers(configs, store_with(mcp__TEST_KEY="wrong-value")) as servers:
            states = {s.name: s for s in servers.states()}
            assert all(s.status == "failed" for s in states.values()), states
            assert "HTTP 401" in states["wrongkey"].reason
            assert "needs the secret 'mcp:ABSENT'" in states["nokey"].reason
            assert "python -m app keys set mcp:ABSENT" in states["nokey"].reason
            assert "could not connect to http://127.0.0.1:" in states["refused"].reason
            assert "wrong-value" not in str(states)

    scenario(body())


def test_a_server_that_never_answers_fails_after_its_start_timeout(
    scenario: Callable[..., Any],
) -> None:
    mute = McpServerConfig(name="mute", command=sys.executable, args=["-c", "import time; time.sleep(120)"],
                           start_timeout_s=1)  # fmt: skip

    async def body() -> None:
        started = time.monotonic()
        async with McpServers([mute]) as servers:
            (state,) = servers.states()
            assert state.status == "failed" and "did not start within 1 s" in state.reason
        assert time.monotonic() - started < 10

    scenario(body())
    leftovers = [
        p
        for p in psutil.Process().children(recursive=True)
        if "time.sleep(120)" in " ".join(p.cmdline())
    ]
    assert leftovers == []


def test_works_on_the_qasync_loop(qloop: Any) -> None:
    async def body() -> str:
        async with McpServers([stdio()]) as servers:
            return (await servers.call(call("echo", '{"text": "qt"}'))).content

    assert qloop.run_until_complete(asyncio.wait_for(body(), 60)) == "qt"
    assert mcp_children() == []
