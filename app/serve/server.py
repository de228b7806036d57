"""``LocalServer``: the app's models as an OpenAI-compatible HTTP API, on the running event
loop (standalone for ``python -m app serve``, or the window's qasync loop).

uvicorn's ``Server.serve()`` runs as a task on the caller's loop, on a socket bound here (so
a busy port is a clear error, port 0 picks a free one) and without signal handlers (the
window, or the CLI, owns Ctrl+C). The key is generated on first start and kept in the
keyring under ``serve``; it is never written to a file or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING

import uvicorn

from app.core.errors import ConfigError, register_secret
from app.core.secrets import SecretStore
from app.core.types import AdapterSpec
from app.serve.catalog import Catalog, Offered
from app.serve.routes import DEFAULT_MAX_BODY, RequestFigures, ServeConfig, build_app
from app.serve.transport import Protocol

if TYPE_CHECKING:
    from app.core.services import Services

log = logging.getLogger(__name__)
KEY_NAME = "serve"
"""The keyring entry of the server's key."""
KEY_PREFIX = "sk-local-"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_key(store: SecretStore, *, create: bool = True) -> str | None:
    """The server's key from the keyring (made and stored on first use when ``create``)."""
    key = store.get(KEY_NAME)
    if key is None and create:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        store.set(KEY_NAME, key)
    if key:
        register_secret(key)
    return key


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on the accepted sockets only then (else
    # Nagle holds a response's last small write until the client's delayed ACK, 40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)  # clients connecting before uvicorn accepts wait in the backlog
    except OSError as exc:
        sock.close()
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                          hint="Pick another port with --port, or stop the program that uses it.") from None  # fmt: skip
    sock.setblocking(False)
    return sock


def _default_temperature(model_id: str) -> float:
    from app.providers.bundled import default_temperature

    return float(default_temperature(model_id))


class LocalServer:
    """The local OpenAI-compatible server. Qt-free; call :meth:`start` / :meth:`stop` on the
    running loop. ``on_request`` gets a :class:`RequestFigures` when each request starts and
    ends (for a live log). Auth: ``api_key`` given (e.g. from an environment variable), else
    the keyring's ``serve`` key (made on first start); ``no_auth`` only on loopback."""

    def __init__(  # fmt: skip
        self, services: Services, *, host: str = "127.0.0.1", port: int = 8080,
        adapters: Mapping[str, AdapterSpec] | None = None, api_key: str | None = None, no_auth: bool = False,
        proxy: bool = False, cors_origins: tuple[str, ...] = (), max_body_bytes: int = DEFAULT_MAX_BODY,
        on_request: Callable[[RequestFigures], None] | None = None,
    ) -> None:
        self.services = services
        self.host = host
        self.port = port
        self.no_auth = no_auth
        self._api_key = api_key
        self.catalog = Catalog(services.registry, services.settings, adapters=adapters, proxy=proxy)
        self.cors_origins = cors_origins
        self.max_body_bytes = max_body_bytes
        self.on_request = on_request
        self._config: ServeConfig | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    # -- what it offers ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    @property
    def address(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8080/v1`` (the bound port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def key(self) -> str | None:
        """The key clients send as ``Authorization: Bearer`` (None: no auth). Show it only to
        the user (a terminal, a Copy button), never in a file or log."""
        return self._config.key if self._config is not None else self._api_key

    def set_adapters(self, adapters: Mapping[str, AdapterSpec]) -> None:
        """Offer these LoRA adapters (``BASE+NAME``) from now on (e.g. the window's LoRA dock)."""
        self.catalog.adapters = dict(adapters)

    async def models(self) -> list[Offered]:
        """The model ids ``GET /v1/models`` lists now."""
        return await self.catalog.models()

    def active_requests(self) -> int:
        """Requests waiting or streaming now."""
        return len(self._config.runs) if self._config is not None else 0

    # -- life ----------------------------------------------------------------------------
    def _resolve_key(self) -> str | None:
        if self.no_auth:
            if not is_loopback(self.host):
                raise ConfigError(f"Refusing to serve {self.host} without a key: anyone on the network could use it.",
                                  hint="Drop --no-auth (a key is made and kept in the keyring), or bind 127.0.0.1.")  # fmt: skip
            return None
        if self._api_key is not None:
            if len(self._api_key.strip()) < 8:
                raise ConfigError("The API key is too short (fewer than 8 characters).",
                                  hint="Use a longer key, or leave it out to use the keyring's.")  # fmt: skip
            register_secret(self._api_key.strip())
            return self._api_key.strip()
        return server_key(self.services.secrets)

    async def start(self) -> None:
        """Bind and start serving (returns once it accepts requests). Raises
        :class:`ConfigError` for a refused configuration or a busy port."""
        if self.running:
            return
        key = self._resolve_key()
        settings = self.services.settings
        self._config = ServeConfig(self.services.scheduler, self.catalog, key,
                                   lambda: settings.serve_queue_limit, _default_temperature,
                                   self.max_body_bytes, self.cors_origins, self._report)  # fmt: skip
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        # the protocol class named (httptools' C parser, a response's headers written with its
        # first body bytes), not uvicorn's "auto" string: a bundler sees the import; no websockets;
        # no X-Forwarded-For rewriting (a middleware per request; nothing here reads the client's address)
        config = uvicorn.Config(build_app(self._config), http=Protocol, ws="none", log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=2, server_header=False,
                                proxy_headers=False)  # fmt: skip
        server = _EmbeddedServer(config)
        self._server, self._sock = server, sock
        self._task = asyncio.ensure_future(server.serve(sockets=[sock]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not server.started and not self._task.done() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if not server.started:
            await self.stop()
            raise ConfigError(f"The server on {self.address} did not start.", hint="See the log for why.")

    def _report(self, figures: RequestFigures) -> None:
        if self.on_request is not None:
            self.on_request(figures)

    async def stop(self) -> None:
        """Cancel the served runs, close the connections and stop listening (bounded)."""
        if self._config is not None:
            for run in list(self._config.runs):
                run.cancel()
        task, server = self._task, self._server
        self._task = None
        if task is None or server is None:
            return
        await self._settle_accepted()
        server.should_exit = True
        done, _ = await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
        if not done:
            server.force_exit = True
            task.cancel()
            await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("the server stopped with an error: %s", task.exception())

    async def _settle_accepted(self) -> None:
        """Accept nothing more, and let the connections accepted already be set up while the
        server is open: asyncio 3.11 leaks the socket of a connection set up on a closed server
        (one that waited while the loop was busy elsewhere is accepted in the turn it stops)."""
        sock = self._sock
        if sock is not None and sock.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            for _ in range(2):  # the accepting callback schedules the set-up; the set-up runs next
                await asyncio.sleep(0)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host (the window or the CLI) owns Ctrl+C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
