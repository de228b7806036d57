"""uvicorn's HTTP protocol (httptools) with a response's headers and its first body bytes
written as one: a streamed answer's start costs one syscall, and one wake-up and read of the
client, fewer (uvicorn writes the headers as soon as the ASGI app starts the response).

The connection's transport is wrapped: the first write after request bytes arrived (the status
line and headers, or a 100 Continue) is held until the next write, which takes it along, or
until the loop's next turn at the latest, so nothing waits on a body that comes later.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadWithBody:
    """A transport that holds the write after :meth:`hold_next` until the next write (or the
    loop's next turn); everything else is the wrapped transport's."""

    __slots__ = ("_transport", "_loop", "_hold", "_held", "_flush_at")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._hold = False
        self._held: bytes | None = None
        self._flush_at: asyncio.Handle | None = None

    def hold_next(self) -> None:
        """Hold the next write until the one after it (or the loop's next turn)."""
        self._hold = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` (with the held bytes before it), or hold it when asked to."""
        held = self._held
        if held is not None:
            self._held = None
            if self._flush_at is not None:
                self._flush_at.cancel()
            data = held + bytes(data)
        elif self._hold:
            self._hold = False
            self._held = bytes(data)
            self._flush_at = self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Write the held bytes now (if any)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        """Close after writing the held bytes."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`HeadWithBody` transport: the first write after
    request bytes (a response's headers) goes out with the next (its first body bytes)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, HeadWithBody(transport, self.loop)))

    def data_received(self, data: bytes) -> None:
        cast(HeadWithBody, self.transport).hold_next()
        super().data_received(data)
