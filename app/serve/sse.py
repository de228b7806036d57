"""``EventStream``: a streamed answer's ASGI response (``text/event-stream``), lighter than
Starlette's ``StreamingResponse`` on the server's hot path.

- The last piece goes out in the same message as the end of the body (``more_body`` False),
  so the HTTP layer writes it and the chunked terminator at once: one write and one wake-up
  of the client fewer per answer than an empty closing message.
- The client's disconnect is watched by one task that calls ``on_gone`` (the answer's
  :meth:`~app.serve.inbox.Inbox.close`), which ends the pieces at their next wait; Starlette
  runs an anyio task group per response for the same (uvicorn speaks ASGI 2.3, where a write
  to a closed connection does not raise).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Piece = tuple[bytes, bool]
"""Bytes to write and whether more follow (False: the last piece, the body ends with it)."""


async def disconnected(receive: Receive) -> None:
    """Returns when the client goes away (or the response completed: nothing is left to read
    once the body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream(Response):
    """Writes ``pieces`` as they come; ``on_gone`` is called when the client disconnects (then
    ``pieces`` must end soon: their ``finally`` runs when the iterator closes)."""

    media_type = "text/event-stream"

    def __init__(self, pieces: AsyncIterator[Piece], on_gone: Callable[[], None],
                 headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.pieces = pieces
        self.on_gone = on_gone
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(disconnected(receive))
        gone.add_done_callback(lambda f: f.cancelled() or self.on_gone())
        more = True
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for data, more in self.pieces:
                await send({"type": "http.response.body", "body": data, "more_body": more})
                if not more:
                    break
            if more:  # ended without a last piece (the client left): close the body anyway
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            aclose = getattr(self.pieces, "aclose", None)
            if aclose is not None:
                await aclose()
