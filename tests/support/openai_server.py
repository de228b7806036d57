"""A real OpenAI-compatible HTTP/1.1 server on 127.0.0.1 for tests, demos and benchmarks.

It speaks the wire protocol (JSON and chunked SSE), runs its own asyncio loop in a
background thread (so it serves sync code, other event loops and subprocesses alike), and
is scripted per test with a queue of :class:`Behaviour` s::

    with OpenAIServer() as server:
        server.enqueue(rate_limited(retry_after="2"), text("Hello", " world"))
        ...  # point a client at server.base_url (ends in /v1)
        assert server.chat_requests[-1].json["seed"] == 7

Queue rules: each POST /v1/chat/completions takes the next behaviour (or ``server.default``
when the queue is empty). POST /v1/embeddings answers with :func:`embedding` vectors. An *error* behaviour at the head of the queue is taken by the
next request of any kind, GET /v1/models included. Every request is recorded.

Tests get a fresh server per test from the ``openai_server`` fixture (add
``pytest_plugins = ["tests.support.openai_server"]`` to a conftest) or ``with OpenAIServer()``.

Also runnable on its own: ``python -m tests.support.openai_server --tokens 1000`` prints
its base URL and streams 1000 tokens per request until killed (or stdin closes).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 409: "Conflict", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}  # fmt: skip


@dataclass
class Behaviour:
    """How the server answers one request.

    ``status != 200`` answers with an OpenAI-style JSON error body. Otherwise the answer is
    ``chunks`` (streamed one SSE event each, or joined when not streaming), then a chunk
    with ``finish_reason``, then the usage chunk (when the client asked for it and
    ``usage`` is not False), then ``data: [DONE]``. Fault knobs (chunk counts are content
    chunks sent before the fault):

    - ``first_delay_s`` / ``chunk_delay_s``: server-side waits before the first / each chunk.
    - ``hold_after=K``: after K chunks wait until :meth:`OpenAIServer.release` or the client
      goes away (``hold_after=0``: a first token that comes only when the test says so).
    - ``disconnect_after=K``: drop the connection abruptly after K chunks.
    - ``reset_after=K``: reset the connection (TCP RST: ``SO_LINGER`` 0, then close) after K
      chunks, as a crashed server or a proxy does; the client reads ECONNRESET.
    - ``malformed_after=K``: send ``data: {not json`` after K chunks, then end the body.
    - ``error_after=K``: send an ``{"error": {...}}`` event (``error_message``) after K chunks.
    - ``finish_reason=None, send_done=False``: clean end of body with no finish and no [DONE].
    - ``raw=[...]``: send these body pieces verbatim (one HTTP chunk each) instead of the
      generated events, with ``content_type``: any wire quirk a real server has (``data:``
      without a space, CRLF, ``: ping`` comments, odd chunks; see :func:`sse`).

    A chunk that is a dict is sent as the ``delta`` itself (tool-call pieces: see
    :mod:`tests.support.openai_tool_calls`). ``reply``: a function of the request body that
    returns the behaviour to answer with (an answer made from what the request holds).
    """

    chunks: Sequence[str | dict[str, Any]] = ("Hello", " from", " the", " loopback", " server.")
    finish_reason: str | None = "stop"
    usage: bool | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    send_done: bool = True
    first_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    hold_after: int | None = None
    disconnect_after: int | None = None
    reset_after: int | None = None
    malformed_after: int | None = None
    error_after: int | None = None
    status: int = 200
    error_message: str = ""
    error_type: str = "invalid_request_error"
    error_code: str | None = None
    error_param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: Sequence[str | bytes] | None = None
    content_type: str = "text/event-stream"
    logprobs: bool = True
    """When the request asks for ``logprobs``, stream them (see :func:`token_logprobs`);
    False: ignore the request's ``logprobs`` (as some servers silently do)."""
    reply: Callable[[dict[str, Any]], Behaviour] | None = None

    @property
    def is_error(self) -> bool:
        """True for an HTTP error answer."""
        return self.status != 200


def token_logprobs(token: str, index: int, top: int) -> dict[str, Any]:
    """The loopback server's deterministic logprobs of chunk ``index`` (a proper distribution):
    the chunk itself is the most likely token (p 0.9 down to 0.6); alternative k gets a third
    of what k-1 left."""
    import math

    p = 0.9 - 0.05 * (index % 7)
    chosen = math.log(p)
    alternatives = [{"token": token, "logprob": chosen, "bytes": list(token.encode())}]
    alternatives += [{"token": f"alt{k}", "logprob": math.log((1 - p) / 3**k), "bytes": list(f"alt{k}".encode())}
                     for k in range(1, top)]
    return {"token": token, "logprob": chosen, "bytes": list(token.encode()), "top_logprobs": alternatives[:top]}


def text(*chunks: str, **options: Any) -> Behaviour:
    """A streamed answer made of ``chunks`` (keyword options as in :class:`Behaviour`)."""
    return Behaviour(chunks=chunks, **options)


def tokens(n: int, **options: Any) -> Behaviour:
    """``n`` one-token chunks: ``tok0 tok1 ...``."""
    return Behaviour(chunks=["tok0", *(f" tok{i}" for i in range(1, n))], **options)


def raw(*pieces: str | bytes, content_type: str = "text/event-stream") -> Behaviour:
    """A 200 answer whose body is ``pieces`` sent verbatim, one HTTP chunk each."""
    return Behaviour(raw=pieces, content_type=content_type)


def sse(*payloads: Any, sep: str = "\n\n", prefix: str = "data: ") -> list[str]:
    """SSE events: each payload (a dict/list is JSON-encoded, a str sent as is) as
    ``prefix + payload + sep``."""
    return [prefix + (p if isinstance(p, str) else json.dumps(p)) + sep for p in payloads]


def chunk(
    content: str | None = None, finish_reason: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A minimal ``chat.completion.chunk`` (``fields`` added or replacing top-level keys)."""
    delta = {} if content is None else {"content": content}
    out: dict[str, Any] = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1700000000,
                           "model": "raw", "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}  # fmt: skip
    out.update(fields)
    return out


def error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
          param: str | None = None, headers: Mapping[str, str] | None = None) -> Behaviour:  # fmt: skip
    """An HTTP error with an OpenAI-style JSON body."""
    return Behaviour(status=status, error_message=message, error_type=type, error_code=code,
                     error_param=param, headers=dict(headers or {}))  # fmt: skip


def rate_limited(retry_after: str | None = "1") -> Behaviour:
    """429 with a ``Retry-After`` header (seconds or an HTTP date; None: no header)."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error(429, "Rate limit reached for requests. Please try again later.",
                 type="requests", code="rate_limit_exceeded", headers=headers)  # fmt: skip


def auth_error() -> Behaviour:
    """401 invalid_api_key."""
    return error(401, "Incorrect API key provided.", code="invalid_api_key")


def model_not_found(model: str = "no-such-model") -> Behaviour:
    """404 model_not_found."""
    return error(404, f"The model `{model}` does not exist or you do not have access to it.",
                 code="model_not_found", param="model")  # fmt: skip


def context_too_long() -> Behaviour:
    """400 context_length_exceeded."""
    return error(400, "This model's maximum context length is 128000 tokens. However, your "
                 "messages resulted in 130000 tokens.", code="context_length_exceeded",
                 param="messages")  # fmt: skip


def server_error(status: int = 500) -> Behaviour:
    """A 5xx error."""
    return error(
        status, "The server had an error while processing your request.", type="server_error"
    )


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    query: str = ""
    """The request target's query string (without the ``?``)."""

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any."""
        return self.headers.get("authorization")


class OpenAIServer:
    """The loopback server. Use as a context manager or call :meth:`start` / :meth:`stop`.

    Server-wide switches: ``send_usage=False`` (like LM Studio / llama.cpp: never a usage
    chunk), ``reject_stream_options=True`` (400 for any request carrying stream_options),
    ``require_key="sk-..."`` (401 unless ``Authorization: Bearer <key>``; the message
    echoes the key it got, as a worst case for redaction tests), ``models_body`` (the
    GET /models answer verbatim: a str/bytes body, or anything else JSON-encoded; sent with
    ``models_content_type``), ``models_hold=True`` (GET /models answers only after
    :meth:`release`, like a server that accepts and never answers), ``reject_logprobs=True``
    (400 for any request asking for logprobs), ``tokenizer`` (count
    tokens as one kind of server does: ``"vllm"`` ``POST /tokenize`` with messages or a prompt;
    ``"llama.cpp"`` ``POST /apply-template`` + ``POST /tokenize``; ``"llama-cpp-python"``
    ``POST /extras/tokenize``, adding a BOS when ``tokenize_bos``; tokens as in
    :func:`count_tokens`, the template :func:`chatml`), ``reject_tools=True`` /
    ``reject_response_format=True`` (400 for a request carrying ``tools`` /
    ``response_format``, as a server without that support answers). Like OpenAI, every chat
    request's tool messages are checked: each call of an assistant message must be answered
    by a ``tool`` message with its ``tool_call_id`` (else a 400 naming the ids).
    """

    def __init__(self, *, models: Sequence[str] = ("gpt-4o-mini", "test-model"), send_usage: bool = True,
                 reject_stream_options: bool = False, require_key: str | None = None,
                 default: Behaviour | None = None, models_body: Any = None,
                 models_content_type: str = "application/json", models_hold: bool = False,
                 reject_logprobs: bool = False, reject_tools: bool = False, reject_response_format: bool = False,
                 tokenizer: str | None = None, tokenize_bos: bool = False) -> None:  # fmt: skip
        self.tokenizer = tokenizer
        self.tokenize_bos = tokenize_bos
        self.models = list(models)
        self.models_body = models_body
        self.models_content_type = models_content_type
        self.models_hold = models_hold
        self.send_usage = send_usage
        self.reject_stream_options = reject_stream_options
        self.reject_logprobs = reject_logprobs
        self.reject_tools = reject_tools
        self.reject_response_format = reject_response_format
        self.require_key = require_key
        self.default = default or Behaviour()
        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()
        self.disconnects = 0
        self.connections = 0
        self.active_streams = 0
        """Streamed answers being sent right now."""
        self.max_active_streams = 0
        """The most streamed answers sent at the same time so far (concurrency seen)."""
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._startup_error: BaseException | None = None
        self.port = 0

    # ----------------------------------------------------------------- control
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._queue.extend(behaviours)

    @property
    def pending(self) -> int:
        """Queued behaviours not yet used."""
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The POST /v1/chat/completions requests so far."""
        return [r for r in list(self.requests) if r.path.endswith("/chat/completions")]

    def release(self) -> None:
        """Let every held stream (``hold_after``) go on; stays released from then on."""
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def wait_disconnected(self, timeout: float = 5.0) -> bool:
        """Block until the server saw a client drop a streaming response (or ``timeout``)."""
        return self.disconnected.wait(timeout)

    def endpoint(self, name: str = "Loopback", **options: Any) -> Any:
        """An ``EndpointConfig`` pointing at this server (``kind="custom"``, no key needed,
        unless ``options`` say otherwise)."""
        from app.core.settings import EndpointConfig

        return EndpointConfig(name=name, base_url=self.base_url, **options)

    def start(self) -> OpenAIServer:
        """Start serving on a random port; return self once it accepts connections."""
        self._thread = threading.Thread(
            target=self._thread_main, name="openai-loopback", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the loopback OpenAI server did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError(
                "the loopback OpenAI server failed to start"
            ) from self._startup_error
        return self

    def stop(self) -> None:
        """Close every connection and stop the thread."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- server loop
    def _thread_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._release = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                if not await self._respond(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort() if writer.transport.is_closing() else writer.close()

    def _next(self, chat: bool) -> Behaviour | None:
        with self._lock:
            if self._queue and (chat or self._queue[0].is_error):
                return self._queue.popleft()
        return self.default if chat else None

    async def _respond(self, req: RecordedRequest, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:  # fmt: skip
        """Answer one request; return False when the connection must close."""
        if self.require_key is not None and req.authorization != f"Bearer {self.require_key}":
            got = (req.authorization or "").removeprefix("Bearer ")
            await _send_error(
                writer, error(401, f"Incorrect API key provided: {got}.", code="invalid_api_key")
            )
            return True
        if req.method == "GET" and req.path.rstrip("/").endswith("/models"):
            b = self._next(chat=False)
            if b is not None:
                await _send_error(writer, b)
                return True
            if self.models_hold:
                assert self._release is not None
                gone = asyncio.ensure_future(reader.read(1))
                held = asyncio.ensure_future(self._release.wait())
                await asyncio.wait({gone, held}, return_when=asyncio.FIRST_COMPLETED)
                for fut in (gone, held):
                    fut.cancel()
                await asyncio.gather(gone, held, return_exceptions=True)
                if not self._release.is_set():
                    return self._gone()
            if self.models_body is not None:
                body = self.models_body
                if not isinstance(body, str | bytes):
                    body = json.dumps(body)
                data_bytes = body.encode() if isinstance(body, str) else body
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {self.models_content_type}\r\n"
                             f"Content-Length: {len(data_bytes)}\r\n\r\n".encode() + data_bytes)  # fmt: skip
                await writer.drain()
                return True
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "loopback"}
                for m in self.models
            ]
            await _send_json(writer, 200, {"object": "list", "data": data})
            return True
        if req.method == "POST" and self.tokenizer is not None and await self._tokenize(req, writer):
            return True
        if req.method == "POST" and req.path.rstrip("/").endswith("/embeddings"):
            b = self._next(chat=False)
            if b is not None:
                await _send_error(writer, b)
                return True
            await _send_json(writer, 200, _embeddings(req.json if isinstance(req.json, dict) else {}))
            return True
        if req.method != "POST" or not req.path.rstrip("/").endswith("/chat/completions"):
            await _send_error(writer, error(404, f"Unknown path {req.method} {req.path}."))
            return True
        body = req.json if isinstance(req.json, dict) else {}
        if self.reject_logprobs and body.get("logprobs"):
            await _send_error(writer, error(400, "logprobs are not supported by this server", param="logprobs"))
            return True
        if self.reject_stream_options and "stream_options" in body:
            await _send_error(writer, error(400, "Unrecognized request argument supplied: stream_options",
                                            param="stream_options"))  # fmt: skip
            return True
        if self.reject_tools and "tools" in body:  # llama.cpp's llama-server without --jinja
            await _send_error(writer, error(400, "tools param requires --jinja flag"))
            return True
        if self.reject_response_format and "response_format" in body:
            await _send_error(writer, error(400, "Unrecognized request argument supplied: response_format",
                                            param="response_format"))  # fmt: skip
            return True
        from tests.support.openai_tool_calls import tool_message_problem

        problem = tool_message_problem(body.get("messages"))
        if problem is not None:
            await _send_error(writer, error(400, problem, param="messages"))
            return True
        b = self._next(chat=True)
        assert b is not None
        while b.reply is not None:
            b = b.reply(body)
        if b.is_error:
            await _send_error(writer, b)
            return True
        if not body.get("stream"):
            await _send_json(writer, 200, _completion(b, body))
            return True
        self.active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self.active_streams)
        try:
            return await self._stream(b, body, reader, writer)
        finally:
            self.active_streams -= 1

    async def _stream(self, b: Behaviour, body: dict[str, Any], reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:  # fmt: skip
        assert self._release is not None
        if b.raw is not None:
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {b.content_type}\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n".encode())  # fmt: skip
            for piece in b.raw:
                data = piece.encode() if isinstance(piece, str) else piece
                if data:
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        model = json.dumps(str(body.get("model", "")))
        want_logprobs = bool(body.get("logprobs")) and b.logprobs
        top = int(body.get("top_logprobs") or 0)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        usage_null = ',"usage":null' if include_usage else ""
        head = ('{"id":"chatcmpl-loopback","object":"chat.completion.chunk","created":1700000000,'
                f'"model":{model},"system_fingerprint":"fp_loopback","choices":[{{"index":0,"delta":')  # fmt: skip
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        watcher = asyncio.ensure_future(reader.read(1))  # b"" when the client goes away

        async def wait(aw: Any) -> bool:
            """Await ``aw`` unless the client leaves first; False when it left."""
            fut = asyncio.ensure_future(aw)
            await asyncio.wait({fut, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not fut.done():
                fut.cancel()
                await asyncio.gather(fut, return_exceptions=True)
                return False
            return True

        def event(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))

        try:
            await writer.drain()
            event(
                head
                + '{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]'
                + usage_null
                + "}"
            )
            if b.first_delay_s and not await wait(asyncio.sleep(b.first_delay_s)):
                return self._gone()
            for i, chunk in enumerate(b.chunks):
                if i == b.hold_after:
                    await writer.drain()
                    if not await wait(self._release.wait()):
                        return self._gone()
                if i == b.disconnect_after:
                    await writer.drain()
                    writer.transport.abort()
                    return False
                if i == b.reset_after:
                    await writer.drain()
                    _reset(writer)
                    return False
                if i == b.malformed_after:
                    event("{not json")
                    break
                if i == b.error_after:
                    event(json.dumps({"error": {"message": b.error_message or "internal error",
                                                "type": b.error_type, "code": b.error_code}}))  # fmt: skip
                    break
                if i and b.chunk_delay_s and not await wait(asyncio.sleep(b.chunk_delay_s)):
                    return self._gone()
                lp = "null"
                if isinstance(chunk, dict):  # a delta as it is (tool-call pieces)
                    delta = json.dumps(chunk)
                else:
                    delta = '{"content":' + json.dumps(chunk) + "}"
                    if want_logprobs:
                        lp = json.dumps({"content": [token_logprobs(chunk, i, top)], "refusal": None})
                event(head + delta + ',"logprobs":' + lp + ',"finish_reason":null}]' + usage_null + "}")
                if i % 64 == 63 or b.chunk_delay_s or i + 1 == b.hold_after:
                    await writer.drain()
                if watcher.done():
                    return self._gone()
            else:
                if b.hold_after is not None and b.hold_after >= len(b.chunks):
                    await writer.drain()
                    if not await wait(self._release.wait()):
                        return self._gone()
                if b.disconnect_after is not None and b.disconnect_after >= len(b.chunks):
                    await writer.drain()
                    writer.transport.abort()
                    return False
                if b.reset_after is not None and b.reset_after >= len(b.chunks):
                    await writer.drain()
                    _reset(writer)
                    return False
                if b.finish_reason is not None:
                    event(head + '{},"logprobs":null,"finish_reason":' + json.dumps(b.finish_reason) + "}]"
                          + usage_null + "}")  # fmt: skip
                send_usage = self.send_usage if b.usage is None else b.usage
                if include_usage and send_usage:
                    usage = json.dumps(_usage(b, body))
                    event(head[: head.index('"choices"')] + f'"choices":[],"usage":{usage}}}')
                if b.send_done:
                    event("[DONE]")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            return self._gone()
        finally:
            if not watcher.done():
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _tokenize(self, req: RecordedRequest, writer: asyncio.StreamWriter) -> bool:
        """Answer the token-counting routes of :attr:`tokenizer`'s kind; False: not one of them."""
        path = req.path.rstrip("/")
        body = req.json if isinstance(req.json, dict) else {}
        if self.tokenizer == "vllm" and path == "/tokenize":
            if isinstance(body.get("messages"), list):
                n = count_tokens(chatml(body["messages"], body.get("add_generation_prompt", True)))
            else:
                n = count_tokens(str(body.get("prompt", "")))
            await _send_json(writer, 200, {"count": n, "max_model_len": 4096, "tokens": list(range(n))})
            return True
        if self.tokenizer == "llama.cpp" and path == "/apply-template":
            await _send_json(writer, 200, {"prompt": chatml(body.get("messages") or [])})
            return True
        if self.tokenizer == "llama.cpp" and path == "/tokenize":
            n = count_tokens(str(body.get("content", ""))) + (1 if body.get("add_special") else 0)
            await _send_json(writer, 200, {"tokens": list(range(n))})
            return True
        if self.tokenizer == "llama-cpp-python" and path == "/extras/tokenize":
            n = count_tokens(str(body.get("input", ""))) + (1 if self.tokenize_bos else 0)
            await _send_json(writer, 200, {"tokens": list(range(n))})
            return True
        return False

    def _gone(self) -> bool:
        self.disconnects += 1
        self.disconnected.set()
        return False


EMBEDDING_DIM = 64


def embedding(text: str) -> list[float]:
    """The loopback server's deterministic embedding: a bag of words, each lower-cased word
    hashed (CRC-32) into one of :data:`EMBEDDING_DIM` buckets. Texts with the same words are
    identical (cosine 1); texts without a word in common are far apart."""
    import re
    import zlib

    vector = [0.0] * EMBEDDING_DIM
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[zlib.crc32(word.encode()) % EMBEDDING_DIM] += 1.0
    return vector


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
    data = [{"object": "embedding", "index": i, "embedding": embedding(t)} for i, t in enumerate(texts)]
    tokens = sum(count_tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip


def count_tokens(text: str) -> int:
    """The loopback tokenizer: each special marker (``<|im_start|>``), word and punctuation
    mark is one token."""
    import re

    return len(re.findall(r"<\|[^|]+\|>|\w+|[^\w\s]", text))


def chatml(messages: Sequence[Any], add_generation_prompt: bool = True) -> str:
    """The loopback server's chat template (ChatML, as llama.cpp and vLLM would apply it)."""
    text = "".join(f"<|im_start|>{m.get('role', '')}\n{m.get('content') or ''}<|im_end|>\n"
                   for m in messages if isinstance(m, dict))  # fmt: skip
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset instead of a FIN: linger on, timeout 0, then close."""
    import socket
    import struct

    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _usage(b: Behaviour, body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or []
    words = sum(len(str(m.get("content") or "").split()) + 3 for m in messages if isinstance(m, dict))
    prompt = b.prompt_tokens if b.prompt_tokens is not None else words + 3
    completion = b.completion_tokens if b.completion_tokens is not None else len(b.chunks)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": b.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}  # fmt: skip


def _completion(b: Behaviour, body: dict[str, Any]) -> dict[str, Any]:
    from tests.support.openai_tool_calls import joined_calls

    calls = joined_calls(c for c in b.chunks if isinstance(c, dict))
    content = "".join(c for c in b.chunks if isinstance(c, str))
    message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else ""), "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {"id": "chatcmpl-loopback", "object": "chat.completion", "created": 1700000000,
            "model": str(body.get("model", "")), "system_fingerprint": "fp_loopback",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": b.finish_reason or "stop"}],
            "usage": _usage(b, body)}  # fmt: skip


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _version = line.decode("latin-1").split(None, 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    size = int(headers.get("content-length", "0") or 0)
    data = await reader.readexactly(size) if size else b""
    try:
        parsed: Any = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode("utf-8", "replace")
    path, _, query = target.partition("?")
    return RecordedRequest(method.upper(), path, headers, parsed, query)


async def _send_json(writer: asyncio.StreamWriter, status: int, payload: Any,
                     headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
    data = json.dumps(payload).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{extra}\r\n")  # fmt: skip
    writer.write(head.encode("latin-1") + data)
    await writer.drain()


async def _send_error(writer: asyncio.StreamWriter, b: Behaviour) -> None:
    body = {
        "error": {
            "message": b.error_message,
            "type": b.error_type,
            "param": b.error_param,
            "code": b.error_code,
        }
    }
    await _send_json(writer, b.status, body, b.headers)


def provider_context(endpoints: Sequence[Any], *, keys: Mapping[str, str] | None = None,
                     retry: Any = None, home: Any = None) -> Any:  # fmt: skip
    """A ``ProviderContext`` with only ``endpoints``, an in-memory keyring holding ``keys``
    (name -> key, e.g. ``{"openai": "sk-..."}``; the environment is ignored) and ``retry``."""
    import tempfile
    from pathlib import Path

    from app.core.paths import AppPaths
    from app.core.provider import ProviderContext
    from app.core.secrets import MemoryKeyring, SecretStore
    from app.core.settings import RetryPolicy, Settings

    secrets = SecretStore(MemoryKeyring(), environ={})
    for name, value in (keys or {}).items():
        secrets.set(name, value)
    root = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="openai-ctx-"))
    paths = AppPaths.under(root)
    settings = Settings(endpoints=list(endpoints), retry=retry or RetryPolicy(max_attempts=1))
    return ProviderContext(settings=settings, secrets=secrets, paths=paths)


def _fixture() -> Any:
    import pytest

    @pytest.fixture(name="openai_server")
    def openai_server_fixture() -> Any:
        """A started :class:`OpenAIServer`, stopped after the test."""
        with OpenAIServer() as server:
            yield server

    return openai_server_fixture


try:  # the fixture, for ``pytest_plugins = ["tests.support.openai_server"]``
    openai_server = _fixture()
except ImportError:  # pytest is not installed (the server used from a script)
    pass


def main(argv: Sequence[str] | None = None) -> None:
    """Serve N tokens per request until killed or stdin closes; print the base URL first."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per streamed answer")
    parser.add_argument("--no-usage", action="store_true", help="never send a usage chunk")
    parser.add_argument("--first-delay", type=float, default=0.0, metavar="S",
                        help="seconds before each answer's first token (a model's latency)")
    parser.add_argument("--chunk-delay", type=float, default=0.0, metavar="S",
                        help="seconds between chunks (e.g. 30 tokens at 0.01: a 300 ms answer)")
    args = parser.parse_args(argv)
    answer = tokens(args.tokens, first_delay_s=args.first_delay, chunk_delay_s=args.chunk_delay)
    with OpenAIServer(default=answer, send_usage=not args.no_usage) as server:
        print(server.base_url, flush=True)
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
