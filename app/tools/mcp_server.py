"""One MCP server's connection, owned by one long-lived asyncio task.

The SDK's context managers (the stdio or streamable-HTTP transport and the ``ClientSession``)
hold anyio cancel scopes, which must be entered and left by the same task. So each server
runs :meth:`McpConnection.run` as its own task: it starts the server, lists its tools (and its
prompts and resources), then serves requests that other tasks put on its queue (a list the
server says has changed is asked for again the same way), each in a child task of its own with a
cancel scope (cancelled when the caller gives up or times out, which sends the server a
``notifications/cancelled`` and leaves it usable). Closing the queue ends the task and stops
the server (the SDK closes stdin, then terminates, then kills the process group).
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import IO, Any, Literal

from app.core.errors import ToolError, redact
from app.core.mcp_config import McpServerConfig, SecretLookup
from app.core.urls import clean_url
from app.tools.mcp_content import CONNECTION_CLOSED, failure_reason, last_line, main_leaf

log = logging.getLogger(__name__)

Status = Literal["starting", "ready", "failed", "stopped"]
CANCEL_WAIT_S = 2.0
"""How long a caller that gave up waits for its call's cancellation to go out."""
Op = Callable[[Any], Awaitable[Any]]
"""What a request does with the server's ``ClientSession``."""


@dataclass(frozen=True, slots=True)
class ServerState:
    """Where one server stands: ``starting``, ``ready`` (with ``tools`` tools), ``failed``
    (with ``reason``) or ``stopped``."""

    name: str
    status: Status
    tools: int = 0
    reason: str = ""
    prompts: int = 0
    resources: int = 0

    def __str__(self) -> str:
        if self.status == "ready":
            counts = [(self.tools, "tool")]
            counts += [(n, what) for n, what in ((self.prompts, "prompt"), (self.resources, "resource")) if n]
            return "ready (" + ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in counts) + ")"
        if self.status == "failed":
            return f"failed: {self.reason}"
        return self.status


@dataclass(slots=True)
class _Request:
    op: Op
    future: asyncio.Future[Any]
    finished: asyncio.Future[None]
    scope: Any = None  # the anyio CancelScope it runs in, once it runs
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class McpConnection:
    """One configured server: its state, its tools once listed, and its request queue."""

    def __init__(self, config: McpServerConfig, secrets: SecretLookup | None,
                 on_state: Callable[[ServerState], None]) -> None:  # fmt: skip
        self.config = config
        self._secrets = secrets
        self._on_state = on_state
        self.state = ServerState(config.name, "starting")
        self.tools: list[Any] = []
        """The server's ``mcp.types.Tool`` s (once ready)."""
        self.prompts: list[Any] = []
        """Its ``mcp.types.Prompt`` s (once ready; none unless it declares the capability)."""
        self.resources: list[Any] = []
        """Its ``mcp.types.Resource`` s (likewise)."""
        self.resource_templates: list[Any] = []
        """Its ``mcp.types.ResourceTemplate`` s (likewise)."""
        self.listing_note = ""
        """Why its prompts or resources could not be listed (the server still serves its tools)."""
        self.capabilities: Any = None
        self._send: Any = None
        self._receive: Any = None
        self._stderr: IO[str] | None = None
        self._stderr_mark = 0
        """Where the server's stderr stood when the last call began: "last words" come after it."""
        self._http_status: int | None = None
        self._lost = ""
        self.started = asyncio.Event()
        """Set when the server is ready or has failed."""
        self._relists: set[asyncio.Task[None]] = set()
        """Lists asked for again after the server said they changed (see _on_message)."""

    # -- state ----------------------------------------------------------------------------

    def _set(self, status: Status, tools: int = 0, reason: str = "") -> None:
        ready = status == "ready"
        self.state = ServerState(self.config.name, status, tools, reason,
                                 len(self.prompts) if ready else 0, len(self.resources) if ready else 0)  # fmt: skip
        if status != "starting":
            self.started.set()
        try:
            self._on_state(self.state)
        except Exception:  # an observer's bug must not stop the server
            log.exception("an MCP state observer failed")

    def _reason(self, exc: BaseException) -> str:
        return failure_reason(exc, command=self.config.command if self.config.transport == "stdio" else "",
                              url=clean_url(self.config.url) or "", http_status=self._http_status,
                              stderr_tail=self._stderr_tail())  # fmt: skip

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            size = self._stderr.seek(0, 2)
            self._stderr.seek(max(self._stderr_mark, size - 4000))
            return last_line(self._stderr.read())
        except (OSError, ValueError):
            return ""

    # -- the task -------------------------------------------------------------------------

    async def run(self) -> None:
        """Start the server and serve requests until :meth:`close`; never raises (but
        re-raises a cancellation of this task)."""
        import anyio

        self._send, self._receive = anyio.create_memory_object_stream[_Request](math.inf)
        timeout = self.config.start_timeout_s
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + timeout) as start_scope:
                async with AsyncExitStack() as stack:
                    session = await self._open(stack)
                    result = await session.initialize()
                    self.capabilities = result.capabilities
                    self.tools = await self._list_all(session.list_tools, "tools")
                    await self._list_library(session)
                    start_scope.deadline = math.inf
                    self._set("ready", len(self.tools))
                    await self._serve(session, stack)
            if start_scope.cancelled_caught and self.state.status == "starting":
                self._set(
                    "failed", reason=f"it did not start within {timeout:g} s (start_timeout_s)"
                )
        except asyncio.CancelledError:
            self._fail_or_stop("stopped")
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a state, never a traceback
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            self._fail_or_stop(self._reason(exc))
        else:
            self._fail_or_stop(self._lost or "stopped")
        finally:
            self._send.close()
            self._receive.close()
            if self._stderr is not None:
                self._stderr.close()

    def _fail_or_stop(self, reason: str) -> None:
        if reason == "stopped" and self.state.status != "failed":
            self._set("stopped")
        elif self.state.status not in ("failed", "stopped"):
            self._set("failed", reason=reason)

    async def _open(self, stack: AsyncExitStack) -> Any:
        from mcp import ClientSession

        env, headers = self.config.resolved(self._secrets) if self._secrets is not None else (
            self.config.env, self.config.headers)  # fmt: skip
        if self.config.transport == "stdio":
            from mcp import StdioServerParameters, stdio_client

            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
            params = StdioServerParameters(
                command=self.config.command, args=list(self.config.args), env=env
            )
            read, write = await stack.enter_async_context(stdio_client(params, errlog=self._stderr))
            read = await self._watch_eof(stack, read)
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            async def remember(response: httpx2.Response) -> None:
                if response.status_code >= 400:
                    self._http_status = response.status_code

            client = httpx2.AsyncClient(headers=headers, event_hooks={"response": [remember]},
                                        timeout=httpx2.Timeout(self.config.timeout_s, read=300.0))  # fmt: skip
            await stack.enter_async_context(client)
            read, write = await stack.enter_async_context(
                streamable_http_client(self.config.url, http_client=client)
            )
        return await stack.enter_async_context(ClientSession(read, write, message_handler=self._on_message))

    async def _on_message(self, message: Any) -> None:
        """A server's notification: when its tools, prompts or resources changed, list them
        again (in a task of its own: the session's reader must not wait on a request)."""
        from mcp import types

        changed = {types.ToolListChangedNotification: "tools", types.PromptListChangedNotification: "prompts",
                   types.ResourceListChangedNotification: "resources"}  # fmt: skip
        field = next((f for kind, f in changed.items() if isinstance(message, kind)), None)
        if field is None or self.state.status != "ready":
            return
        for name in (field, "resource_templates") if field == "resources" else (field,):
            task = asyncio.get_running_loop().create_task(self._relist(name))
            self._relists.add(task)
            task.add_done_callback(self._relists.discard)

    async def _relist(self, field: str) -> None:
        """List ``field`` again and say the new state (its listeners refresh what they show)."""

        async def op(session: Any) -> Any:
            return await self._list_all(getattr(session, f"list_{field}"), field)

        try:
            items = await self.request(op, self.config.timeout_s)
        except Exception as exc:  # noqa: BLE001 - what was listed before stays; the panel says why
            self.listing_note = (f"MCP server '{self.config.name}': its {field.replace('_', ' ')} changed but could "
                                 "not be listed "
                                 f"again ({redact(str(main_leaf(exc)))[:200]}).")  # fmt: skip
            return
        setattr(self, field, items)
        if self.state.status == "ready":
            self._set("ready", len(self.tools))

    async def _watch_eof(self, stack: AsyncExitStack, read: Any) -> Any:
        """A relay of the stdio read stream that notices the server's exit even while idle:
        the state turns failed and the request loop ends."""
        import anyio

        out_send, out_receive = anyio.create_memory_object_stream[Any](0)
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)  # runs before the group's exit (LIFO)

        async def relay() -> None:
            try:
                async with out_send:
                    async for item in read:
                        await out_send.send(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            if self.state.status == "ready":  # EOF from a live server: it exited
                self._lost = "the server exited" + (
                    f" (its last words: {t})" if (t := self._stderr_tail()) else ""
                )
                self._set("failed", reason=self._lost)
                self._send.close()

        group.start_soon(relay)
        return out_receive

    async def _list_all(self, method: Callable[..., Awaitable[Any]], field: str) -> list[Any]:
        """Every page of a list request (``field``: the result's list)."""
        from mcp.types import PaginatedRequestParams

        items: list[Any] = []
        cursor: str | None = None
        for _ in range(100):  # a server that pages forever cannot hang the start
            page = await method(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            items.extend(getattr(page, field))
            cursor = page.next_cursor
            if not cursor:
                break
        return items

    async def _list_library(self, session: Any) -> None:
        """List the prompts and resources the server declares. A server whose list fails
        still serves its tools; ``listing_note`` says what went wrong."""
        caps = self.capabilities
        notes = []
        for field, capability in (("prompts", "prompts"), ("resources", "resources"),
                                  ("resource_templates", "resources")):  # fmt: skip
            if getattr(caps, capability, None) is None:
                continue
            method = getattr(session, f"list_{field}")
            try:
                setattr(self, field, await self._list_all(method, field))
            except Exception as exc:  # noqa: BLE001 - tools still work; the panel says why
                notes.append(f"its {field.replace('_', ' ')} could not be listed ({redact(str(main_leaf(exc)))[:200]})")
        self.listing_note = f"MCP server '{self.config.name}': " + "; ".join(notes) + "." if notes else ""

    async def _serve(self, session: Any, stack: AsyncExitStack) -> None:
        import anyio

        async with anyio.create_task_group() as group:
            try:
                async for request in self._receive:
                    group.start_soon(self._handle, session, request)
            except anyio.ClosedResourceError:
                pass
            group.cancel_scope.cancel()  # calls still running end with "stopped"

    async def _handle(self, session: Any, request: _Request) -> None:
        import anyio

        future = request.future
        try:
            with anyio.CancelScope() as scope:
                request.scope = scope
                if request.cancelled:
                    scope.cancel()
                value = await request.op(session)
            if not future.done():
                if scope.cancelled_caught:
                    future.cancel()
                else:
                    future.set_result(value)
        except Exception as exc:  # handed to the caller, who turns it into an error result
            leaf = main_leaf(exc)
            if getattr(leaf, "code", None) == CONNECTION_CLOSED and self.config.transport == "http":
                self._lost = self._reason(leaf)
                self._set("failed", reason=self._lost)
                self._send.close()
            if not future.done():
                future.set_exception(leaf if isinstance(leaf, Exception) else exc)
        finally:
            if not request.finished.done():
                request.finished.set_result(None)
            if not future.done():
                future.set_exception(ToolError(f"the MCP server '{self.config.name}' stopped during the call"
                                               + (f": {self._lost}" if self._lost else "")))  # fmt: skip

    # -- the callers' side ------------------------------------------------------------------

    async def request(self, op: Op, timeout_s: float) -> Any:
        """Run ``op(session)`` on the server's task; its value, or its exception. Raises
        :class:`ToolError` when the server is not ready, and :class:`TimeoutError` past
        ``timeout_s`` (the call is cancelled on the server). Cancelling the awaiting task
        cancels the call."""
        if self.state.status != "ready" or self._send is None:
            raise ToolError(f"the MCP server '{self.config.name}' is not ready ({self.state})")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(_consume)
        request = _Request(op, future, loop.create_future())
        if self._stderr is not None:
            try:
                self._stderr_mark = self._stderr.seek(0, 2)
            except (OSError, ValueError):
                pass
        try:
            self._send.send_nowait(request)
        except Exception:
            raise ToolError(
                f"the MCP server '{self.config.name}' is not ready ({self.state})"
            ) from None
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except BaseException:
            request.cancel()  # the server gets notifications/cancelled before this returns
            await asyncio.wait({request.finished}, timeout=CANCEL_WAIT_S)
            raise

    def close(self) -> None:
        """End the request loop: the task stops the server and returns."""
        if self._send is not None:
            self._send.close()


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark an abandoned future's exception as retrieved (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


def describe(config: McpServerConfig) -> str:
    """The server as a user reads it: its command line or its URL (no secret)."""
    if config.transport == "stdio":
        return redact(" ".join([config.command, *config.args]))
    return clean_url(config.url) or ""
