"""Pure helpers of the openai provider: model facts (context windows, reasoning models),
``Retry-After`` parsing and the translation of SDK exceptions into :mod:`app.core.errors`.

No top-level ``openai`` import: :func:`translate` imports it when called.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

from app.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ModelNotFound,
    ProviderError,
    RateLimited,
    ServerError,
    Unreachable,
)
from app.core.settings import EndpointConfig

# Context windows of well-known OpenAI chat models (longest prefix wins).
KNOWN_CONTEXT: dict[str, int] = {
    "gpt-5": 400_000, "gpt-5-chat": 128_000, "gpt-4.1": 1_047_576, "gpt-4o": 128_000,
    "chatgpt-4o": 128_000, "gpt-4-turbo": 128_000, "gpt-4": 8_192, "gpt-3.5-turbo": 16_385,
    "o1": 200_000, "o3": 200_000, "o4-mini": 200_000,
}  # fmt: skip
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
NON_CHAT = ("embedding", "tts", "whisper", "dall-e", "moderation", "davinci", "babbage",
             "transcribe", "realtime", "audio", "image", "sora", "search", "computer-use")  # fmt: skip
UNSUPPORTED_BY_OPENAI = ("top_k", "repetition_penalty")


REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Delta fields carrying a thinking model's reasoning: ``reasoning_content`` (vLLM, llama.cpp
``--reasoning-format``, DeepSeek), ``reasoning`` (Ollama, OpenRouter, gpt-oss servers)."""


def reasoning_text(extra: Any) -> str | None:
    """The reasoning in a delta's undeclared fields (the SDK keeps them in the pydantic model's
    ``__pydantic_extra__`` dict), or None. Only non-empty strings count."""
    if not extra:
        return None
    for name in REASONING_FIELDS:
        value = extra.get(name)
        if value and isinstance(value, str):
            return value
    return None


def model_ids(payload: Any) -> list[str] | None:
    """The model ids in a GET /models answer, sorted and without duplicates; None when the
    payload has no list of models at all. Besides OpenAI's ``{"data": [{"id": ...}]}`` this
    takes a bare list, ``{"models": [...]}``, a single model object, entries that are plain
    strings or name themselves ``name``/``model``; entries without a usable name are skipped."""
    items: Any = None
    if isinstance(payload, list):
        items = payload
    elif isinstance(payload, dict):
        items = payload.get("data")
        if not isinstance(items, list):
            items = payload.get("models")
        if not isinstance(items, list) and isinstance(payload.get("id"), str):
            items = [payload]
        if items is None and "data" in payload:  # Go servers (Ollama) send "data": null for none
            items = []
    if not isinstance(items, list):
        return None
    ids: set[str] = set()
    for item in items:
        name = item
        if isinstance(item, dict):
            name = next((item[k] for k in ("id", "name", "model") if isinstance(item.get(k), str) and item[k].strip()), None)  # fmt: skip
        if isinstance(name, str) and name.strip():
            ids.add(name.strip())
    return sorted(ids)


def _base_model(model: str) -> str:
    name = model.strip().lower()
    return name[3:] if name.startswith("ft:") else name


def is_reasoning_model(model: str) -> bool:
    """True for o-series and gpt-5 models (max_completion_tokens; no temperature/top_p)."""
    name = _base_model(model)
    return any(
        name == p or name.startswith(p + "-") or name.startswith(p + ".")
        for p in _REASONING_PREFIXES
    ) and not name.startswith("gpt-5-chat")


def context_length(model: str) -> int | None:
    """The context window of a known OpenAI model, else None."""
    name = _base_model(model)
    best = max(
        (p for p in KNOWN_CONTEXT if name == p or name.startswith(p + "-")), key=len, default=None
    )
    return KNOWN_CONTEXT[best] if best else None


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(msg, str) and msg:
            return msg[:400]
    if isinstance(body, str) and body.strip():  # {"error": "text"} sent inside a stream
        return body.strip()[:400]
    return str(getattr(exc, "message", "") or exc)[:400]


def _error_type(exc: Any) -> str:
    body = getattr(exc, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    value = inner.get("type") if isinstance(inner, dict) else None
    return value if isinstance(value, str) else ""


def _status(exc: Any, code: str) -> int | None:
    """The HTTP status, or for an error event inside a 200 stream (no status) the numeric
    ``code`` that llama.cpp and vLLM put in it."""
    status = getattr(exc, "status_code", None)
    if status is None and code.isdigit() and 400 <= int(code) < 600:
        return int(code)
    return status


_DROPPED = frozenset({"ReadError", "WriteError", "RemoteProtocolError", "ConnectionResetError",
                      "ConnectionAbortedError", "BrokenPipeError", "BrokenResourceError",
                      "IncompleteRead"})  # fmt: skip
"""Causes meaning an open connection was cut (reset, closed mid-body), not a failed connect."""
_NOT_CONNECTED = frozenset({"ConnectError", "ConnectTimeout", "ConnectionRefusedError", "gaierror"})


def _causes(exc: BaseException) -> list[BaseException]:
    """The exceptions behind ``exc`` (``__cause__``, else ``__context__``), nearest first."""
    chain: list[BaseException] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and cause not in chain and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def translate(
    exc: BaseException, endpoint: EndpointConfig, model: str | None = None
) -> ProviderError:
    """The :mod:`app.core.errors` error for an ``openai`` SDK exception (keys redacted)."""
    import openai

    # an ad-hoc --base-url endpoint is named by its URL: say it once
    same = endpoint.name.rstrip("/") == endpoint.base_url.rstrip("/")
    where = endpoint.base_url if same else f"{endpoint.name} ({endpoint.base_url})"
    keys_hint = (
        f"Check the key: python -m app keys set {endpoint.secret_name} (or the Keys dialog)."
    )
    if isinstance(exc, openai.APITimeoutError):
        cause = exc.__cause__ or exc.__context__
        kinds = {k.__name__ for k in type(cause).__mro__} if cause is not None else set()
        if kinds & {"ConnectTimeout", "PoolTimeout"}:  # never got through (httpx/httpx2): retry
            return Unreachable(f"Could not connect to {where} within {endpoint.connect_timeout_s:g} s.",
                               hint="Check that the server is running, the base URL is right and your network.")  # fmt: skip
        # the server took the request and then sent nothing for the whole timeout: a retry
        # would wait that long again (3 attempts of 600 s = 30 minutes), so it is not retried
        return Unreachable(f"{where} did not answer within {endpoint.timeout_s:g} s.", retryable=False,
                           hint="Check that the server is running and not overloaded, or raise the endpoint's timeout in Settings.")  # fmt: skip
    if isinstance(exc, openai.APIConnectionError):
        chain = _causes(exc)
        kinds = {k.__name__ for c in chain for k in type(c).__mro__}
        said = next((c for c in chain if str(c).strip()), None)  # httpx's ReadError says nothing
        detail = f": {type(said).__name__}: {said}" if said is not None else ""
        if kinds & _DROPPED and not kinds & _NOT_CONNECTED:
            return Unreachable(f"The connection to {where} was dropped{detail}.",
                               hint="The server closed or reset the connection (it may have crashed or restarted, "
                               "or a proxy cut it). Check the server, then try again.")  # fmt: skip
        return Unreachable(f"Could not connect to {where}{detail}.",
                           hint="Check that the server is running, the base URL is right (it usually ends in /v1) and your network.")  # fmt: skip
    if not isinstance(exc, openai.APIError):
        return ServerError(f"{where} failed: {type(exc).__name__}: {exc}")
    msg = server_message(exc)
    code = str(getattr(exc, "code", "") or "")
    status = _status(exc, code)
    low = msg.lower()
    if (
        code == "context_length_exceeded"
        or _error_type(exc) == "exceed_context_size_error"  # llama.cpp server
        or "context length" in low
        or "context_length" in low
        or "maximum context" in low
        or "context size" in low  # llama.cpp, LM Studio: "...exceeds the available context size"
    ):
        return ContextTooLong(
            f"The request does not fit the context window of {model or 'the model'}: {msg}"
        )
    if status == 403 and code == "model_not_found":  # the key is fine; its project may not use the model
        return ModelNotFound(f"{where} does not give access to the model '{model}' ({status}): {msg}",
                             hint=f"List the models it serves with: python -m app models --endpoint \"{endpoint.name}\"; "
                             "for OpenAI, check the model is allowed in the project's limits.")  # fmt: skip
    if status in (401, 403):
        return AuthError(f"{where} refused the request ({status}): {msg}", hint=keys_hint)
    if status == 404 or code == "model_not_found":
        return ModelNotFound(f"{where} has no model '{model}' ({status}): {msg}",
                             hint=f"List the models it serves with: python -m app models --endpoint \"{endpoint.name}\"; "
                             "also check that the base URL ends in /v1.")  # fmt: skip
    retry_after = parse_retry_after(getattr(getattr(exc, "response", None), "headers", None))
    if status == 429:
        if code == "insufficient_quota":
            return RateLimited(f"{where} is rate limiting requests (429): {msg}", retryable=False, retry_after=retry_after,
                               hint="Your quota is used up: check your plan and billing details.")  # fmt: skip
        return RateLimited(f"{where} is rate limiting requests (429): {msg}", retry_after=retry_after)
    if status in (400, 422) or (
        status is not None and 400 <= status < 500 and status not in (408, 409)
    ):
        return BadRequest(f"{where} rejected the request ({status}): {msg}")
    # 503 / 408 with Retry-After (vLLM, proxies, overloaded servers): with_retries honours it
    return ServerError(f"{where} failed ({status or 'error event'}): {msg}", retry_after=retry_after)
