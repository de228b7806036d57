"""A real LocalServer on 127.0.0.1 (a free port) on its own event loop thread, so the sync and
async ``openai`` SDK, ``ask`` and raw HTTP can talk to it from the test's thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.cli.conftest import tiny_local  # noqa: F401 - the tiny model and adapter, shared

T = TypeVar("T")


class ServerThread:
    """Services + LocalServer on a private loop; ``figures`` collects the request log."""

    def __init__(self, *, queue_limit: int = 16, **options: Any) -> None:
        self.options = options
        self.queue_limit = queue_limit
        self.figures: list[Any] = []
        self.clients: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Any = None
        self.services: Any = None

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run ``factory()`` on the server's loop and wait for it (bounded)."""

        async def _wrapped() -> T:
            return await asyncio.wait_for(factory(), timeout)

        return asyncio.run_coroutine_threadsafe(_wrapped(), self.loop).result(timeout + 5)

    def start(self) -> ServerThread:
        from app.core.services import Services
        from app.core.settings import LocalModelSettings
        from app.serve.server import LocalServer

        self.thread.start()

        async def _start() -> None:
            self.services = Services.create()
            self.services.settings.local = LocalModelSettings(device="cpu", dtype="float32", threads=1)
            self.services.settings.serve_queue_limit = self.queue_limit
            self.services.save_settings()  # ``ask`` in the same test runs the model as the server does
            self.server = LocalServer(self.services, port=0, on_request=self.figures.append, **self.options)
            await self.server.start()

        self.call(_start)
        return self

    def stop(self) -> None:
        async def _stop() -> None:
            if self.server is not None:
                await self.server.stop()
            if self.services is not None:
                await self.services.aclose()

        for client in self.clients:
            client.close()
        try:
            self.call(_stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def url(self) -> str:
        return str(self.server.address)

    @property
    def key(self) -> str | None:
        return self.server.key  # type: ignore[no-any-return]

    def sdk(self, **kwargs: Any) -> Any:
        import openai

        options = {"base_url": self.url, "api_key": self.key or "none", "max_retries": 0, "timeout": 30, **kwargs}
        client = openai.OpenAI(**options)
        self.clients.append(client)
        return client

    def async_sdk(self, **kwargs: Any) -> Any:
        import openai

        options = {"base_url": self.url, "api_key": self.key or "none", "max_retries": 0, "timeout": 30, **kwargs}
        return openai.AsyncOpenAI(**options)


@pytest.fixture
def serve_factory(app_home: Path) -> Iterator[Callable[..., ServerThread]]:
    """Start servers with options (``queue_limit``, ``adapters``, ``no_auth``, ...); all stopped after."""
    started: list[ServerThread] = []

    def make(**options: Any) -> ServerThread:
        srv = ServerThread(**options)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def served(serve_factory: Callable[..., ServerThread]) -> ServerThread:
    """A server with the default options (a key from the test keyring)."""
    return serve_factory()
