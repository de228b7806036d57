"""The ``openai`` provider: OpenAI and any OpenAI-compatible server (Ollama, LM Studio, vLLM,
llama.cpp, ...) over Chat Completions streaming.

- ``openai:<model>`` uses ``request.endpoint``: a configured endpoint's name, an ad-hoc base
  URL (``http://...``, the CLI's ``--base-url``), or None for the built-in "OpenAI" endpoint.
- One ``AsyncOpenAI`` client per endpoint, with the SDK's own retries off (``max_retries=0``):
  :mod:`app.core.retry` retries opening the stream, never once text has been yielded.
- Errors are translated to :mod:`app.core.errors` at this boundary (see :func:`translate`);
  keys never appear in messages (they are registered with ``redact``).
- ``openai`` is imported lazily, on first use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import (
    AuthError,
    BadRequest,
    ModelNotFound,
    ProviderError,
    RateLimited,
    SecretsError,
    StreamInterrupted,
    Unreachable,
    register_secret,
)
from app.core.events import (
    Finished,
    Notice,
    ReasoningDelta,
    Retrying,
    StreamEvent,
    TextDelta,
    UsageReport,
)
from app.core.provider import ProviderContext
from app.core.retry import RetryCallback, RetryWait, WaitCallback, countdown, next_delay
from app.core.settings import DEFAULT_ENDPOINT_NAME, EndpointConfig
from app.core.tools import ToolSpec
from app.core.types import ChatMessage, GenerationRequest, ModelInfo, ModelRef, TokenCount
from app.core.url_keys import sdk_base, url_key
from app.core.urls import clean_url
from app.providers.openai_lens import (
    add_continuation,
    add_logprobs,
    chunk_tokens,
    drop_logprobs,
    is_logprobs_refusal,
)
from app.providers.openai_support import (
    NON_CHAT,
    UNSUPPORTED_BY_OPENAI,
    context_length,
    is_reasoning_model,
    model_ids,
    parse_retry_after,
    reasoning_text,
    server_message,
    translate,
)
from app.providers.openai_tokens import ServerTokenCounter, endpoint_key, estimate_prompt
from app.providers.openai_tools import ToolDeltas, add_tools, feature_error, openai_messages

__all__ = [
    "OpenAIProvider",
    "context_length",
    "is_reasoning_model",
    "parse_retry_after",
    "translate",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = DEFAULT_ENDPOINT_NAME
NO_KEY = "not-needed"
"""Sent as the key to servers that need none (the SDK insists on some value)."""
LIST_TIMEOUT_S = 30.0
"""The most a GET /models may take (the endpoint's own timeout, meant for long generations,
is the limit when it is shorter): a server that accepts and never answers must not hold
up the model list or the Test button for ten minutes."""


@dataclass
class _Opened:
    """A stream opened and read up to its first meaningful chunk (None: it ended before one)."""

    stream: Any
    chunks: Any  # the stream's async iterator of ChatCompletionChunk
    first: Any


class OpenAIProvider:
    """Chat Completions over any OpenAI-compatible endpoint. ``on_retry`` (optional) is told
    about each retry, ``on_wait`` (optional) gets a countdown tick about every second of a
    wait (:class:`app.core.retry.RetryWait`); ``retry_sleep`` is what waits between attempts
    (tests swap it)."""

    id = "openai"

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.on_retry: RetryCallback | None = None
        self.on_wait: WaitCallback | None = None
        self.retry_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
        self.list_errors: dict[str, str] = {}
        """Endpoint name -> error text from the last :meth:`list_models` (others still listed)."""
        self._clients: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._no_stream_options: set[str] = set()
        self._no_logprobs: set[str] = set()
        """Endpoints that refused logprobs (asked once, then answers come without them)."""
        self.tokens = ServerTokenCounter()
        """Counts with a server's own tokenizer when it sends no usage (openai_tokens)."""

    # ------------------------------------------------------------------ endpoints and clients
    def endpoint(self, name_or_url: str | None) -> EndpointConfig:
        """The endpoint for a request: by name, an ad-hoc ``http(s)://`` base URL, or the default."""
        return self.context.settings.resolve_endpoint(name_or_url)

    def _key(self, ep: EndpointConfig) -> str:
        """The Bearer key: one written into the base URL (userinfo) first, then the keyring's.
        A key sent as a query parameter (``?api_key=``) counts as the needed key."""
        in_url = url_key(ep.base_url)
        if in_url is not None and in_url.bearer:
            return in_url.bearer
        needs_key = ep.needs_key and in_url is None
        try:
            key = self.context.secrets.get(ep.secret_name)
        except SecretsError:
            if needs_key:
                raise
            key = None
        if key:
            register_secret(key)
            return key
        if needs_key:
            raise AuthError(f"No API key is set for {ep.name}.",
                            hint=f"Set it with: python -m app keys set {ep.secret_name} (or in the Keys dialog).")  # fmt: skip
        return NO_KEY

    async def client(self, ep: EndpointConfig) -> Any:
        """The cached ``AsyncOpenAI`` client of ``ep`` (rebuilt when its key or URL changed)."""
        key = self._key(ep)
        base, query = sdk_base(ep.base_url)
        fingerprint = (ep.base_url, key, tuple(query.items()), ep.timeout_s, ep.connect_timeout_s)
        cached = self._clients.get(ep.name)
        if cached is not None:
            if cached[0] == fingerprint:
                return cached[1]
            await cached[1].close()
        import openai

        client = openai.AsyncOpenAI(
            api_key=key,
            base_url=base,
            default_query=query or None,
            max_retries=0,
            timeout=openai.Timeout(ep.timeout_s, connect=ep.connect_timeout_s),
        )
        self._clients[ep.name] = (fingerprint, client)
        return client

    # ------------------------------------------------------------------ request body
    def build_body(self, request: GenerationRequest, ep: EndpointConfig) -> dict[str, Any]:
        """The ``chat.completions.create`` arguments for ``request`` (without stream_options)."""
        model = request.model.name
        p = request.params
        official = ep.kind == "openai"
        reasoning = is_reasoning_model(model)
        body: dict[str, Any] = {
            "model": model,
            "messages": openai_messages(request.messages),
            "stream": True,
        }
        if not (official and reasoning):  # o-series / gpt-5 reject sampling parameters
            body["temperature"] = p.temperature
            body["top_p"] = p.top_p
        if p.max_tokens is not None:
            body["max_completion_tokens" if official or reasoning else "max_tokens"] = p.max_tokens
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        extra: dict[str, Any] = {}
        if p.top_k is not None:
            extra["top_k"] = p.top_k
        if p.repetition_penalty is not None:
            extra["repetition_penalty"] = p.repetition_penalty
        if official:
            for name in UNSUPPORTED_BY_OPENAI:
                if extra.pop(name, None) is not None:
                    log.debug("%s is not supported by OpenAI's API; not sent", name)
        extra.update(p.extras)
        if extra:
            body["extra_body"] = extra
        add_tools(body, request)
        add_logprobs(body, request)
        add_continuation(body, request, ep)
        if ep.name in self._no_logprobs:
            drop_logprobs(body)
        return body

    # ------------------------------------------------------------------ streaming
    async def _create(self, client: Any, ep: EndpointConfig, body: dict[str, Any]) -> Any:
        """Open the HTTP stream (errors translated); fall back once without stream_options."""
        import openai

        use_options = ep.send_stream_options and ep.name not in self._no_stream_options
        try:
            if use_options:
                return await client.chat.completions.create(
                    **body, stream_options={"include_usage": True}
                )
            return await client.chat.completions.create(**body)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            if use_options and "stream_options" in (server_message(exc) + str(exc.param or "")):
                log.info("%s rejects stream_options; usage will be counted locally", ep.name)
                self._no_stream_options.add(ep.name)
                try:
                    return await client.chat.completions.create(**body)
                except openai.OpenAIError as again:
                    raise translate(again, ep, body["model"]) from again
            raise translate(exc, ep, body["model"]) from exc
        except openai.OpenAIError as exc:
            raise translate(exc, ep, body["model"]) from exc

    async def _open(self, client: Any, ep: EndpointConfig, body: dict[str, Any]) -> _Opened:
        """Open the stream and read up to the first content, reasoning, tool call, finish or usage chunk
        (a retry is possible only up to there: nothing has been yielded yet). The chunks
        before it carry nothing the answer needs (the role)."""
        import openai

        stream = await self._create(client, ep, body)
        chunks = stream.__aiter__()
        seen = False
        try:
            async for chunk in chunks:
                seen = True
                choices = chunk.choices
                if chunk.usage is not None or (
                    choices
                    and (
                        getattr(choices[0].delta, "content", None)
                        or getattr(choices[0].delta, "tool_calls", None)
                        or choices[0].finish_reason
                        or reasoning_text(getattr(choices[0].delta, "__pydantic_extra__", None))
                    )
                ):
                    return _Opened(stream, chunks, chunk)
            kind = stream.response.headers.get("content-type", "")
            if not seen and "text/event-stream" not in kind:
                await _close_quietly(stream)
                raise Unreachable(f"{ep.name} ({ep.base_url}) answered with {kind.split(';')[0] or 'no content type'}, "
                                  "not an event stream, and sent no answer.", retryable=False,
                                  hint="Check the base URL: it should point at the OpenAI-compatible API (it "
                                  "usually ends in /v1), not at a web page; the server must support streaming.")  # fmt: skip
            return _Opened(stream, chunks, None)
        except BaseException as exc:
            await _close_quietly(stream)
            if isinstance(exc, openai.OpenAIError):
                raise translate(exc, ep, body["model"]) from exc
            if isinstance(exc, ValueError | AttributeError | TypeError):
                raise StreamInterrupted(f"{ep.name} sent a malformed chunk before any text: {exc}",
                                        hint="The server does not speak the OpenAI streaming format correctly.") from exc  # fmt: skip
            raise

    async def _open_with_retries(
        self, client: Any, ep: EndpointConfig, body: dict[str, Any]
    ) -> AsyncIterator[_Opened | Retrying]:
        """Open the stream, retrying by the settings' policy; while it waits between attempts
        it yields a :class:`Retrying` about once a second (a countdown the scheduler and the
        user see), then the opened stream. A Retry-After beyond the allowed wait fails at once."""
        policy = self.context.settings.retry
        where = clean_url(ep.name)
        attempt = 1
        while True:
            try:
                opened = await self._open(client, ep, body)
            except ProviderError as exc:
                delay = next_delay(policy, attempt, exc, endpoint=where)
                if self.on_retry is not None:
                    self.on_retry(attempt, exc, delay)
                async for left in countdown(delay, self.retry_sleep):
                    notice = RetryWait(attempt, policy.max_attempts, left, delay, exc, where, exc.retry_after)
                    if self.on_wait is not None:
                        self.on_wait(notice)
                    yield Retrying(attempt, delay, notice.message(), rate_limited=isinstance(exc, RateLimited),
                                   seconds_left=left)
                attempt += 1
                continue
            yield opened
            return

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Stream one answer: Retrying... (failed attempts), ReasoningDelta... (thinking
        models), TextDelta... and ToolCallDelta... (a call's pieces as they come),
        UsageReport, Finished (``tool_calls`` when the answer is calls; errors as app errors)."""
        import openai

        request.params.validated()
        ep = self.endpoint(request.endpoint)
        client = await self.client(ep)
        body = self.build_body(request, ep)
        want_tokens = "logprobs" in body
        if request.params.logprobs is not None and not want_tokens:
            yield Notice(f"{ep.name} does not give token probabilities; the answer comes without them.")
        opened: _Opened | None = None
        while opened is None:  # twice at most: once more without logprobs when they are refused
            try:
                async for step in self._open_with_retries(client, ep, body):
                    if isinstance(step, Retrying):
                        yield step
                    else:
                        opened = step
            except BadRequest as exc:
                if not (want_tokens and is_logprobs_refusal(exc)):
                    raise feature_error(exc, body, ep.name) from exc.__cause__
                self._no_logprobs.add(ep.name)
                drop_logprobs(body)
                want_tokens = False
                yield Notice(f"{ep.name} does not give token probabilities ({exc.message}); the answer comes without them.")
        assert opened is not None
        parts: list[str] = []
        thoughts: list[str] = []
        finish: str | None = None
        usage: Any = None
        chunk = opened.first
        chunks = opened.chunks
        append = parts.append
        got_tokens = False
        calls = ToolDeltas()
        try:
            while chunk is not None:
                choices = chunk.choices
                if choices:
                    choice = choices[0]
                    delta = choice.delta  # None: a bare finish
                    # fields the SDK does not declare (reasoning_content, reasoning) are kept
                    # in the model's extras; an empty dict for plain answer chunks
                    extra = getattr(delta, "__pydantic_extra__", None)
                    if extra:
                        thought = reasoning_text(extra)
                        if thought:
                            thoughts.append(thought)
                            yield ReasoningDelta(thought)
                    content = getattr(delta, "content", None)
                    if content:
                        append(content)
                        if want_tokens:
                            tokens = chunk_tokens(choice)
                            got_tokens = got_tokens or bool(tokens)
                            yield TextDelta(content, tokens)
                        else:
                            yield TextDelta(content)
                    for piece in calls.events(delta):
                        yield piece
                    if choice.finish_reason:
                        finish = choice.finish_reason
                chunk_usage = chunk.usage
                if chunk_usage is not None:
                    usage = chunk_usage
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    chunk = None
        except openai.OpenAIError as exc:
            err = translate(exc, ep, body["model"])
            raise StreamInterrupted(
                f"The stream from {ep.name} was cut: {err.message}", partial_text="".join(parts)
            ) from exc
        except (ValueError, AttributeError, TypeError) as exc:
            raise StreamInterrupted(f"{ep.name} sent a malformed chunk: {exc}", partial_text="".join(parts),
                                    hint="The text received so far was kept. The server does not speak the "
                                    "OpenAI streaming format correctly; try again or another server.") from exc  # fmt: skip
        finally:
            await _close_quietly(opened.stream)
        text = "".join(parts)
        if finish is None:
            raise StreamInterrupted(f"The stream from {ep.name} ended before the answer was finished (no finish reason).",
                                    partial_text=text)  # fmt: skip
        if want_tokens and text and not got_tokens:
            yield Notice(f"{ep.name} sent no token probabilities, although they were asked for.")
        # an estimate counts the reasoning and the calls too: servers bill and limit them as
        # completion tokens
        written = "".join(thoughts) + text + calls.text()
        report = self._usage(request, usage, written)
        if report.estimated:  # no usage from the server: ask its own tokenizer
            report = await self._server_usage(ep, request, written, finish, report)
        yield report
        yield Finished(calls.finish(finish))  # "length" with only reasoning: the budget ran out while thinking

    def _usage(self, request: GenerationRequest, usage: Any, text: str) -> UsageReport:
        if usage is not None and usage.prompt_tokens is not None:
            details = getattr(usage, "prompt_tokens_details", None)
            cached = getattr(details, "cached_tokens", None) or 0
            return UsageReport(
                int(usage.prompt_tokens), int(usage.completion_tokens or 0), int(cached)
            )
        from app.core.tokens import count_text

        model = request.model.name
        prompt = estimate_prompt(model, request.messages, request.tools).tokens
        completion = count_text(model, text).tokens if text else 0
        return UsageReport(prompt, completion, estimated=True)

    async def _server_usage(self, ep: EndpointConfig, request: GenerationRequest, text: str, finish: str,
                            report: UsageReport) -> UsageReport:  # fmt: skip
        """The server's counts (:mod:`app.providers.openai_tokens`), still labelled estimated."""
        try:
            return await asyncio.to_thread(self.tokens.refine, ep, endpoint_key(self.context, ep), request.model.name,
                                           request.messages, text, finish, request.params.max_tokens, report,
                                           request.tools)  # fmt: skip
        except Exception:  # counting is best effort: the local estimate stands
            log.debug("server-side token count failed", exc_info=True)
            return report

    # ------------------------------------------------------------------ models
    def model_info(
        self, model: str, endpoint: str | None = None, state: str = "available"
    ) -> ModelInfo:
        """Static info: context window of known OpenAI models and the tokenizer used to count."""
        from app.core.tokens import encoding_name_for

        enc = encoding_name_for(model)
        return ModelInfo(
            ref=ModelRef("openai", model),
            display_name=model if endpoint in (None, DEFAULT_ENDPOINT) else f"{model} ({endpoint})",
            endpoint=endpoint,
            context_length=context_length(model),
            state=state,  # type: ignore[arg-type]
            description=f"via {endpoint}" if endpoint else "",
            tokenizer=enc or "estimate",
        )

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        """Token count of a chat request (exact for known OpenAI models, else an estimate;
        tool calls in the messages make it an estimate)."""
        return estimate_prompt(model, messages)

    def count_request(self, endpoint: str | None, model: str, messages: Sequence[ChatMessage],
                      tools: Sequence[ToolSpec] = ()) -> TokenCount | None:  # fmt: skip
        """The before-sending count of a request to ``endpoint`` by the server's own tokenizer
        (blocking: call it off the GUI thread), or None (e.g. an unknown endpoint name: the
        request itself will say so). ``tools`` are counted as their JSON (an estimate)."""
        try:
            ep = self.endpoint(endpoint)
        except Exception:
            return None
        return self.tokens.count_prompt(ep, endpoint_key(self.context, ep), model, messages, tools)

    def endpoint_errors(self) -> dict[str, str]:
        """Endpoint name -> why it failed in the last :meth:`list_models`."""
        return dict(self.list_errors)

    async def list_endpoint_models(self, endpoint_name_or_url: str | None) -> list[ModelInfo]:
        """Models served by one endpoint (GET /models); raises translated errors."""
        import json

        import openai

        ep = self.endpoint(endpoint_name_or_url)
        client = await self.client(ep)
        limit = min(ep.timeout_s, LIST_TIMEOUT_S)
        try:
            response = await client.models.with_raw_response.list(
                timeout=openai.Timeout(limit, connect=min(ep.connect_timeout_s, limit))
            )
            raw = response.http_response
            body = await raw.aread()
        except openai.APITimeoutError as exc:
            raise Unreachable(f"{ep.name} ({ep.base_url}) did not list its models within {limit:g} s.",
                              hint="Check that the server is running and not stuck, and that the base URL is right.") from exc  # fmt: skip
        except openai.OpenAIError as exc:
            err = translate(exc, ep, None)
            if isinstance(err, ModelNotFound):
                raise Unreachable(f"{ep.name} ({ep.base_url}) does not list models (404).",
                                  hint="Check the base URL: it usually ends in /v1.") from exc  # fmt: skip
            raise err from exc
        try:
            ids = model_ids(json.loads(body))
        except ValueError:  # not JSON (or not UTF-8): a web page, a proxy's notice, ...
            ids = None
        if ids is None:
            kind = raw.headers.get("content-type", "").split(";")[0].strip() or "no content type"
            sample = " ".join(body[:80].decode("utf-8", "replace").split())
            raise Unreachable(f"{ep.name} ({ep.base_url}) did not answer GET /models with a model list "
                              f"({kind}: {sample!r}).",
                              hint="Check the base URL: it should point at the OpenAI-compatible API "
                              "(it usually ends in /v1), not at a web page.")  # fmt: skip
        if ep.kind == "openai":
            ids = [i for i in ids if not any(word in i for word in NON_CHAT)]
        return [self.model_info(i, ep.name, "ready") for i in ids]

    async def list_models(self) -> list[ModelInfo]:
        """Models of every enabled endpoint, asked at once (one slow or dead endpoint does not
        hold up the others). An endpoint that needs a key and has none lists the priced
        OpenAI chat models as ``needs_key``; failures go to :attr:`list_errors`."""
        errors: dict[str, str] = {}

        async def one(ep: EndpointConfig) -> list[ModelInfo]:
            try:
                self._key(ep)
            except (AuthError, SecretsError):
                return [self.model_info(m, ep.name, "needs_key") for m in _priced_chat_models()]
            try:
                return await self.list_endpoint_models(ep.name)
            except ProviderError as exc:
                errors[ep.name] = str(exc)
                return []

        enabled = [ep for ep in self.context.settings.endpoints if ep.enabled]
        results = await asyncio.gather(*(one(ep) for ep in enabled))
        self.list_errors = {ep.name: errors[ep.name] for ep in enabled if ep.name in errors}
        models = [m for listed in results for m in listed]
        if not models and self.list_errors:
            name, text = next(iter(self.list_errors.items()))
            raise Unreachable(f"No endpoint answered: {name}: {text}")
        return models

    async def test_connection(self, endpoint_name: str) -> str:
        """List the endpoint's models and return a one-line summary (raises translated errors)."""
        ep = self.endpoint(endpoint_name)
        started = time.perf_counter()
        models = await self.list_endpoint_models(endpoint_name)
        ms = (time.perf_counter() - started) * 1000
        sample = ", ".join(m.ref.name for m in models[:3]) + (", ..." if len(models) > 3 else "")
        return f"Connected to {ep.name} in {ms:.0f} ms: {len(models)} models" + (
            f" ({sample})." if models else "."
        )

    async def aclose(self) -> None:
        """Close every client's connection pool."""
        clients, self._clients = self._clients, {}
        for _, client in clients.values():
            await client.close()


def _priced_chat_models() -> Sequence[str]:
    from app.core.pricing import PriceTable

    try:
        names = PriceTable.load().models()
    except Exception:  # a broken price table must not hide the endpoint
        log.warning(
            "price table unreadable; listing no models for endpoints without a key", exc_info=True
        )
        return []
    return sorted(n for n in names if ":" not in n and not any(word in n for word in NON_CHAT))


async def _close_quietly(stream: Any) -> None:
    try:
        await stream.close()
    except Exception:
        log.debug("closing the HTTP stream failed", exc_info=True)
