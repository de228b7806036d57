"""The window's local server: start and stop :class:`~app.serve.server.LocalServer` on the
window's (qasync) loop, offer the LoRA dock's adapters as ``BASE+NAME`` models, tell the
Server panel and the status bar about every request, and add the server as an endpoint of the
app itself. The key is shown only to the user (a Copy button); never logged or written."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtGui import QGuiApplication

from app.core.errors import AppError, NoKeyringError, redact
from app.core.settings import EndpointConfig
from app.core.types import AdapterInfo, AdapterSpec
from app.ui.controllers.base import Controller
from app.ui.widgets.common import spawn

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.core.services import Services
    from app.serve.routes import RequestFigures
    from app.serve.server import LocalServer
    from app.ui.backend_manager import BackendManager

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
ENDPOINT_NAME = "This app's server"
"""The endpoint "Add as endpoint" makes (the app as a client of its own server)."""
STOP_TIMEOUT_S = 15.0


def indicator_text(address: str | None, active: int) -> str:
    """The status bar's ``Serving on 127.0.0.1:8080 · 2 active`` ('' when stopped)."""
    if address is None:
        return ""
    where = address.removeprefix("http://").removesuffix("/v1")
    return f"Serving on {where} · {active} active"


class ServerController(Controller):
    """Owns the window's :class:`LocalServer` (made on the first start).

    Signals:
        status(str message, bool error), hint(str message): see :class:`Controller`.
        state_changed(bool running): the server started or stopped.
        request_seen(RequestFigures): a served request started or ended (the live log).
        models_changed(list[str] ids): the models the server offers now.
        failed(str message): starting failed (a busy port, no keyring, a refused address).
    """

    state_changed = Signal(bool)
    request_seen = Signal(object)
    models_changed = Signal(object)
    failed = Signal(str)

    def __init__(self, services: Services, backend: BackendManager, parent: QWidget) -> None:
        super().__init__(services, parent)
        self.backend = backend
        self.server: LocalServer | None = None
        self._adapters: dict[str, AdapterSpec] = {}
        self._closing: asyncio.Future[None] | None = None
        self._active: set[str] = set()
        """The ids of the requests that started and have not ended."""

    # -- what it shows -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the server accepts requests."""
        return self.server is not None and self.server.running

    @property
    def address(self) -> str | None:
        """The base URL clients use (None: stopped)."""
        return self.server.address if self.running and self.server is not None else None

    @property
    def port(self) -> int | None:
        """The bound port (None: stopped)."""
        return self.server.port if self.running and self.server is not None else None

    @property
    def key(self) -> str | None:
        """The key clients send (None: stopped, or no key)."""
        return self.server.key if self.running and self.server is not None else None

    def active(self) -> int:
        """Requests waiting or streaming now (as the live log has seen them start and end)."""
        return len(self._active) if self.running else 0

    def indicator(self) -> str:
        """The status-bar text (see :func:`indicator_text`)."""
        return indicator_text(self.address, self.active())

    # -- adapters ------------------------------------------------------------------------------
    def set_adapters(self, infos: Sequence[AdapterInfo]) -> None:
        """Offer the LoRA dock's adapters (each at its scale) as ``BASE+NAME``, on or off in the dock."""
        self._adapters = {info.name: info.spec() for info in infos}
        if self.server is not None:
            self.server.set_adapters(self._adapters)
            if self.server.running:
                self._spawn(self._list_models())

    def saved_options(self) -> tuple[bool, str]:
        """The proxy option and the CORS origins (as the panel writes them) of the last start."""
        settings = self.services.settings
        return settings.serve_proxy, ", ".join(settings.serve_cors_origins)

    # -- start and stop ------------------------------------------------------------------------
    def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, require_key: bool = True,
              proxy: bool | None = None, cors_origins: str | None = None) -> asyncio.Task[object]:  # fmt: skip
        """Start serving on ``host:port`` (0: a free port) in a task; emits state_changed or failed
        (see :meth:`astart`)."""
        return self._spawn(self.astart(host, port, require_key=require_key, proxy=proxy, cors_origins=cors_origins))

    def stop(self) -> asyncio.Task[object]:
        """Stop serving in a task (the served runs are cancelled); emits state_changed."""
        return self._spawn(self.astop())

    def _spawn(self, coro: Coroutine[object, None, None]) -> asyncio.Task[object]:
        return spawn(coro, lambda message: self.say(message, error=True))

    async def astart(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, require_key: bool = True,
                     proxy: bool | None = None, cors_origins: str | None = None) -> None:  # fmt: skip
        """Start serving (returns once it accepts requests; a failure is emitted as ``failed``).
        ``proxy`` (also offer the configured endpoints' models) and ``cors_origins`` (web
        origins, comma-separated; empty: no CORS) are kept in the settings for the next start;
        None: the kept ones."""
        from app.serve.routes import parse_origins
        from app.serve.server import LocalServer

        if self.running:
            return
        settings = self.services.settings
        try:
            origins = parse_origins(", ".join(settings.serve_cors_origins) if cors_origins is None else cors_origins)
        except AppError as exc:
            self._fail(exc.user_message())
            return
        proxy = settings.serve_proxy if proxy is None else proxy
        if (proxy, list(origins)) != (settings.serve_proxy, settings.serve_cors_origins):
            settings.serve_proxy, settings.serve_cors_origins = proxy, list(origins)
            self.save_settings()
        server = LocalServer(self.services, host=host.strip() or DEFAULT_HOST, port=port, adapters=self._adapters,
                             no_auth=not require_key, proxy=proxy, cors_origins=origins,
                             on_request=self._on_request)  # fmt: skip
        try:
            await server.start()
        except NoKeyringError as exc:
            self._fail(f"{exc.message} Choose 'session only' in API keys to keep the server's key in memory until "
                       "the app closes, or untick 'Require a key' (then only this machine may connect).")  # fmt: skip
            return
        except AppError as exc:
            self._fail(exc.user_message())
            return
        except Exception as exc:  # a bug guard: the window stays usable
            log.exception("the server did not start")
            self._fail(redact(f"The server did not start: {exc}"))
            return
        self.server = server
        self.state_changed.emit(True)
        self.say(f"Serving on {server.address}")
        await self._list_models()

    def _fail(self, message: str) -> None:
        self.failed.emit(message)
        self.say(message, error=True)

    async def astop(self) -> None:
        """Stop serving (bounded); nothing happens when it is not running."""
        server = self.server
        if server is None or not server.running:
            return
        await server.stop()
        self._active.clear()
        self.state_changed.emit(False)
        self.say("The server stopped.")

    def close(self) -> None:
        """Begin stopping as the window closes (:meth:`aclose` awaits the end); nothing to do
        (and no task made) when the server is not running."""
        if self._closing is None and self.server is not None and self.server.running:
            self._closing = asyncio.ensure_future(self.astop())

    async def aclose(self) -> None:
        """Stop serving as the window closes (bounded; a failure is logged, never raised)."""
        self.close()
        if self._closing is None:  # it was not running
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._closing), STOP_TIMEOUT_S)
        except Exception:
            log.exception("the server did not stop cleanly")

    async def _list_models(self) -> None:
        if self.server is None:
            return
        try:
            models = await self.server.models()
        except Exception as exc:  # the panel says so; the server keeps serving
            self.say(redact(f"The served models could not be listed: {exc}"), error=True)
            return
        self.models_changed.emit([m.id for m in models])

    def _on_request(self, figures: RequestFigures) -> None:
        if figures.status == "running":
            self._active.add(figures.request_id)
        else:
            self._active.discard(figures.request_id)
        self.request_seen.emit(figures)

    # -- the key and the app as a client -------------------------------------------------------
    def copy_key(self) -> bool:
        """Put the key on the clipboard (False: no key to copy). The key goes nowhere else."""
        key = self.key
        if not key:
            return False
        QGuiApplication.clipboard().setText(key)
        self.hint.emit("The server's key is on the clipboard.")
        return True

    def add_as_endpoint(self) -> EndpointConfig | None:
        """Add (or point) the endpoint :data:`ENDPOINT_NAME` at this server, its key in the
        keyring as the app keeps every endpoint's; the models are listed again. None: not running."""
        address, key = self.address, self.key
        if address is None:
            self.say("Start the server first, then add it as an endpoint.", error=True)
            return None
        settings = self.services.settings
        endpoint = EndpointConfig(name=ENDPOINT_NAME, base_url=address, kind="custom", needs_key=key is not None)
        try:
            if key is not None:
                self.services.secrets.set(endpoint.secret_name, key)
        except AppError as exc:
            self.say(f"The key could not be put in the keyring, so the endpoint was not added: {exc.user_message()}",
                     error=True)  # fmt: skip
            return None
        others = [ep for ep in settings.endpoints if ep.name != ENDPOINT_NAME]
        settings.endpoints = [*others, endpoint]
        self.save_settings()
        self.backend.refresh_models()
        self.hint.emit(f"Added the endpoint '{ENDPOINT_NAME}' ({address}): pick its models in the model picker.")
        return endpoint
