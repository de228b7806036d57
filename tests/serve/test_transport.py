"""Tests of app/serve/transport.py on a real asyncio transport (a socket pair): the held write
goes out with the next one in one piece, or on its own at the loop's next turn or at close."""

from __future__ import annotations

import asyncio
import socket

from app.serve.transport import HeadWithBody


def _pending(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


def test_a_held_write_goes_out_with_the_next_or_at_the_next_turn_or_at_close() -> None:
    async def scenario() -> list[bytes]:
        loop = asyncio.get_running_loop()
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        head = HeadWithBody(transport, loop)
        seen = []
        head.hold_next()
        head.write(b"HTTP/1.1 200 OK\r\n\r\n")
        seen.append(_pending(peer))  # held: nothing sent yet
        head.write(b"data: 1\n\n")
        seen.append(_pending(peer))  # both at once, in one write
        head.write(b"data: 2\n\n")  # not held: at once
        seen.append(_pending(peer))
        head.hold_next()
        head.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # no body follows in this turn
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen.append(_pending(peer))  # out at the next turn, not stuck
        head.hold_next()
        head.write(b"last")
        head.close()  # writes what it holds
        seen.append(_pending(peer))
        peer.close()
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == [
        b"", b"HTTP/1.1 200 OK\r\n\r\ndata: 1\n\n", b"data: 2\n\n", b"HTTP/1.1 100 Continue\r\n\r\n", b"last"]
