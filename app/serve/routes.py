"""The HTTP side: Starlette routes for ``/health``, ``/v1/models`` and
``/v1/chat/completions``. A request becomes a :class:`GenerationRequest` submitted to the
core's run scheduler (so it waits in its lane, is timed, priced and lands in the ledger
tagged ``served:<user agent>``); the run's events become SSE chunks. A client that goes away
cancels its run at once (the model is free for the next request)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.core.errors import AppError, ConfigError, redact
from app.core.run_events import RunCancelled, RunEnded, RunFailed, RunFinished
from app.core.runs import Run, RunScheduler
from app.serve.catalog import Catalog
from app.serve.chunks import ChunkWriter, completion
from app.serve.errors import WireError, internal, queue_full, too_large, unauthorized, wire_error
from app.serve.inbox import Inbox
from app.serve.sse import EventStream, Piece, disconnected
from app.serve.wire import ChatCall, bad, parse_chat

log = logging.getLogger(__name__)
SERVED_TAG = "served"
DEFAULT_MAX_BODY = 8 * 1024 * 1024
UA_CHARS = 120
LINGER_STEP_S = 0.002
"""A streamed answer's text goes out as soon as its producer pauses this long: a token that
comes after a longer gap (a local model, a remote API) is written at once, alone."""
MAX_HOLD_S = 0.016
"""Tokens that come faster (a mock, a fast model) are gathered into one chunk for at most this
long after the last write (which saves each client a parse per chunk and each write a syscall),
while the producer keeps producing; the first text goes out at once."""
Status = Literal["running", "finished", "cancelled", "failed", "rejected"]


@dataclass(frozen=True, slots=True)
class RequestFigures:
    """One served request for a live log: reported when it starts (``status`` "running") and
    when it ends. Never holds the key or the prompt."""

    request_id: str
    client: str
    model: str
    status: Status
    http_status: int = 200
    tokens: int = 0
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    duration_s: float = 0.0
    error: str | None = None


@dataclass
class ServeConfig:
    """What the routes need; ``key`` None: no auth (loopback only, checked by the server)."""

    scheduler: RunScheduler
    catalog: Catalog
    key: str | None
    queue_limit: Callable[[], int]
    default_temperature: Callable[[str], float]
    max_body_bytes: int = DEFAULT_MAX_BODY
    cors_origins: tuple[str, ...] = ()
    on_request: Callable[[RequestFigures], None] | None = None
    runs: set[Run] = field(default_factory=set)
    """The runs this server has in flight (waiting or streaming)."""

    def report(self, figures: RequestFigures) -> None:
        """Tell the live log (its failure never breaks a request)."""
        if self.on_request is not None:
            try:
                self.on_request(figures)
            except Exception:
                log.exception("the request log failed")


def _error(err: WireError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def client_name(request: Request) -> str:
    """The client as the log and ledger name it: its User-Agent (printable, short, redacted)."""
    ua = request.headers.get("user-agent", "") or "unknown client"
    ua = "".join(ch for ch in ua if ch.isprintable())[:UA_CHARS]
    return redact(ua)


def _authorized(cfg: ServeConfig, request: Request) -> bool:
    if cfg.key is None:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), cfg.key.encode())


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or :class:`_TooLarge` past ``limit`` bytes (checked before and while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _TooLarge(Exception):
    pass


def parse_origins(text: str) -> tuple[str, ...]:
    """Web origins written by a user (``http://localhost:3000, https://app.example``; commas or
    spaces between them, ``*`` for any) -> clean ones; :class:`ConfigError` names a bad one."""
    out: list[str] = []
    for item in text.replace(",", " ").split():
        origin = item.rstrip("/")
        scheme, sep, host = origin.partition("://")
        if origin != "*" and not (sep and scheme.lower() in ("http", "https") and host
                                  and not any(c in host for c in "/?#@ ")):  # fmt: skip
            raise ConfigError(f"'{item}' is not a web origin.",
                              hint="Write origins as scheme://host[:port] (e.g. http://localhost:3000), separated "
                              "by commas; leave the field empty for no CORS.")  # fmt: skip
        if origin not in out:
            out.append(origin)
    return tuple(out)


def build_app(cfg: ServeConfig) -> Starlette:
    """The ASGI app (CORS only for ``cfg.cors_origins``)."""

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(request: Request) -> Response:
        if not _authorized(cfg, request):
            return _error(unauthorized())
        data = [{"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by}
                for m in await cfg.catalog.models()]  # fmt: skip
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        return await _Exchange(cfg, request).answer()

    middleware = []
    if cfg.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                                     allow_headers=["authorization", "content-type"]))  # fmt: skip
    routes = [Route("/health", health), Route("/v1/health", health), Route("/v1/models", models),
              Route("/v1/chat/completions", chat, methods=["POST"])]  # fmt: skip
    return Starlette(routes=routes, middleware=middleware)


class _Exchange:
    """One ``POST /v1/chat/completions``, from the body to the last byte."""

    def __init__(self, cfg: ServeConfig, request: Request) -> None:
        self.cfg = cfg
        self.request = request
        self.started = time.perf_counter()
        self.figures = RequestFigures(f"req-{id(self):x}", client_name(request), "", "running")

    def _end(self, status: Status, http_status: int, error: str | None = None, **more: Any) -> None:
        self.figures = replace(self.figures, status=status, http_status=http_status, error=error,
                               duration_s=time.perf_counter() - self.started, **more)  # fmt: skip
        self.cfg.report(self.figures)

    def _reject(self, err: WireError) -> JSONResponse:
        self._end("rejected", err.status, err.message)
        return _error(err)

    async def answer(self) -> Response:
        cfg = self.cfg
        if not _authorized(cfg, self.request):
            return self._reject(unauthorized())
        try:
            raw = await _read_body(self.request, cfg.max_body_bytes)
        except _TooLarge:
            return self._reject(too_large(cfg.max_body_bytes))
        try:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise bad(f"The request body is not JSON: {exc}.") from None
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                self.figures = replace(self.figures, model=body["model"])
            call = parse_chat(body, cfg.catalog.resolve, cfg.default_temperature)
        except AppError as exc:
            return self._reject(wire_error(exc))
        limit = cfg.queue_limit()
        if len(cfg.runs) >= limit:
            return self._reject(queue_full(limit))
        run = cfg.scheduler.submit(call.request, tag=f"{SERVED_TAG}:{self.figures.client}")
        inbox = Inbox(run, tokens=call.logprobs)
        cfg.runs.add(run)
        run.task.add_done_callback(lambda _t: cfg.runs.discard(run))  # type: ignore[union-attr]
        cfg.report(self.figures)
        try:
            started = await self._first(inbox)
        except BaseException:
            run.cancel()
            raise
        if not started:  # the client went away while the run waited or loaded
            run.cancel()
            self._end("cancelled", 499)
            return Response(status_code=499)
        end = inbox.end
        if not inbox.has_text():
            if isinstance(end, RunFailed):
                err = wire_error(end.error)
                self._end("failed", err.status, err.message)
                return _error(err)
            if isinstance(end, RunCancelled):
                self._end("cancelled", 499)
                return Response(status_code=499)
        if not call.stream:
            return await self._whole(run, call, end)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return EventStream(self._stream(run, call, inbox), inbox.close, headers)

    async def _first(self, inbox: Inbox) -> bool:
        """Waits for the first text or the end of the run; False when the client left first."""
        if inbox.ready():
            return True
        getter = asyncio.ensure_future(inbox.wait())
        if await self._unless_gone(getter):
            return True
        getter.cancel()
        return False

    async def _unless_gone(self, waiter: asyncio.Future[Any]) -> bool:
        """Wait for ``waiter`` or the client's disconnect, whichever comes first; True when
        ``waiter`` is done (the caller cancels it otherwise)."""
        gone = asyncio.ensure_future(disconnected(self.request.receive))
        try:
            await asyncio.wait([waiter, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        return waiter.done()

    async def _whole(self, run: Run, call: ChatCall, end: RunEnded | None) -> Response:
        ended: RunEnded | None = end
        if not isinstance(ended, RunFinished):
            waiter = asyncio.ensure_future(run.wait())
            if not await self._unless_gone(waiter):
                run.cancel()
                await asyncio.wait([waiter], timeout=10)
                self._end("cancelled", 499)
                return Response(status_code=499)
            ended = waiter.result()
        if isinstance(ended, RunFinished):
            self._finished(ended)
            return JSONResponse(completion(f"chatcmpl-{run.id}", call.model_id, ended.result,
                                           want_logprobs=call.logprobs))  # fmt: skip
        if isinstance(ended, RunFailed):
            err = wire_error(ended.error)
            self._end("failed", err.status, err.message)
            return _error(err)
        self._end("cancelled", 499)
        return Response(status_code=499)

    def _finished(self, ended: RunFinished) -> None:
        r = ended.result
        self._end("finished", 200, tokens=r.usage.completion_tokens, ttft_s=r.ttft_s, tokens_per_s=r.tokens_per_s)

    async def _stream(self, run: Run, call: ChatCall, inbox: Inbox) -> AsyncIterator[Piece]:
        """The SSE bytes: the text that arrived since the last write goes out as one chunk, when
        its producer pauses (:data:`LINGER_STEP_S`) or :data:`MAX_HOLD_S` after the last write
        (the end at once, as the last piece); leaving early (the client went away: the inbox
        closed) cancels the run."""
        writer = ChunkWriter(f"chatcmpl-{run.id}", call.model_id, include_usage=call.include_usage,
                             logprobs=call.logprobs)  # fmt: skip
        loop = asyncio.get_running_loop()
        end: RunEnded | None = None
        out = writer.role()  # goes out with the first text
        flushed = loop.time()
        try:
            while True:
                end = inbox.end  # before the text: all of a run's text comes before its end
                text, tokens = inbox.take()
                if text:
                    out += writer.text(text, tokens)
                if end is not None:
                    yield out + _last_bytes(writer, end), False
                    return
                if out:
                    yield out, True
                    out, flushed = b"", loop.time()
                await inbox.wait()
                if loop.time() - flushed < LINGER_STEP_S:  # it came at once: gather while more comes
                    await inbox.linger(LINGER_STEP_S, flushed + MAX_HOLD_S)
                if inbox.closed:
                    return
        finally:
            if end is None:
                run.cancel()
                self._end("cancelled", 499)
            else:  # once the last bytes are out: the request log is not in their way
                self._ended(end)

    def _ended(self, end: RunEnded) -> None:
        if isinstance(end, RunFinished):
            self._finished(end)
        elif isinstance(end, RunFailed):
            err = wire_error(end.error)
            self._end("failed", err.status, err.message)
        else:
            self._end("cancelled", 499)


def _last_bytes(writer: ChunkWriter, end: RunEnded) -> bytes:
    """The last bytes of a stream: the finish (with usage and ``[DONE]``) or its error."""
    if isinstance(end, RunFinished):
        return writer.end(end.result)
    if isinstance(end, RunFailed):
        return writer.error(wire_error(end.error).body())
    return writer.error(internal(RuntimeError("the run was cancelled by the server")).body())
