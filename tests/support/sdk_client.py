"""The real ``openai`` SDK as a client of a server on 127.0.0.1, from a thread of its own (so a
test's qasync loop, which runs the server, keeps turning): awaitable, every wait bounded by the
caller's ``asyncio.wait_for``."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """``fn()`` on its own thread (a blocking SDK call), as an awaitable future."""
    fut: Future[T] = Future()

    def body() -> None:
        try:
            fut.set_result(fn())
        except BaseException as exc:  # handed to the test
            fut.set_exception(exc)

    threading.Thread(target=body, daemon=True).start()
    return asyncio.wrap_future(fut)


def with_sdk(address: str | None, key: str | None, call: Callable[[Any], T]) -> asyncio.Future[T]:
    """``call(client)`` with the sync openai SDK on a thread (the client closed after)."""
    import openai

    def body() -> T:
        with openai.OpenAI(base_url=address, api_key=key or "none", max_retries=0, timeout=30) as client:
            return call(client)

    return in_thread(body)


def stream_text(client: Any, model: str, text: str = "hi") -> str:
    """A streamed answer, every chunk read."""
    chunks = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def listens(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True
