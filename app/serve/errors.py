"""The core's error tree -> OpenAI's error shape (``{"error": {"message", "type", "param",
"code"}}``) with the HTTP status a client expects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app.core.errors import (
    AdapterError,
    AppError,
    AuthError,
    BadRequest,
    ConfigError,
    ContextTooLong,
    InvalidModelId,
    InvalidParams,
    ModelNotFound,
    RateLimited,
    ServerError,
    Unreachable,
    redact,
)


@dataclass(frozen=True, slots=True)
class WireError:
    """An error as the server answers it."""

    status: int
    message: str
    type: str
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        """OpenAI's error object."""
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}


_TABLE: tuple[tuple[type[AppError], int, str, str | None], ...] = (
    (InvalidModelId, 404, "invalid_request_error", "model_not_found"),
    (ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (ContextTooLong, 400, "invalid_request_error", "context_length_exceeded"),
    (InvalidParams, 400, "invalid_request_error", "invalid_value"),
    (BadRequest, 400, "invalid_request_error", None),
    (AdapterError, 400, "invalid_request_error", "adapter_error"),
    (ConfigError, 400, "invalid_request_error", None),  # tool schemas, unknown endpoints
    (RateLimited, 429, "rate_limit_error", "rate_limit_exceeded"),
    (AuthError, 502, "upstream_error", "upstream_auth"),  # the proxied endpoint refused the app's key
    (Unreachable, 502, "upstream_error", "upstream_unreachable"),
    (ServerError, 502, "upstream_error", "upstream_error"),
)


def wire_error(exc: AppError) -> WireError:
    """The answer for ``exc`` (500 for anything not in the table)."""
    message = exc.user_message()
    for kind, status, type_, code in _TABLE:
        if isinstance(exc, kind):
            headers = {}
            if isinstance(exc, RateLimited):
                wait = exc.retry_after if exc.retry_after is not None else 1.0
                headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return WireError(status, message, type_, code, headers)
    return WireError(500, message, "server_error", "internal_error")


def unauthorized() -> WireError:
    """401: no key or a wrong one (the key itself is never echoed)."""
    return WireError(401, "Missing or wrong API key: send it as 'Authorization: Bearer KEY'. "
                     "Get it with: python -m app serve --show-key.", "invalid_request_error", "invalid_api_key")  # fmt: skip


def too_large(limit: int) -> WireError:
    """413: the body is larger than ``limit`` bytes."""
    return WireError(413, f"The request body is larger than {limit:,} bytes.", "invalid_request_error",
                     "request_too_large")  # fmt: skip


def queue_full(limit: int, retry_after_s: int = 1) -> WireError:
    """429: ``limit`` requests are waiting or running already."""
    return WireError(429, f"The server's queue is full ({limit} requests waiting or running). Try again shortly.",
                     "rate_limit_error", "queue_full", {"Retry-After": str(retry_after_s)})  # fmt: skip


def internal(exc: BaseException) -> WireError:
    """500 for a bug (its text redacted)."""
    return WireError(500, redact(f"Internal error: {type(exc).__name__}: {exc}"), "server_error", "internal_error")
