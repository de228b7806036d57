"""One retry policy for remote providers: exponential backoff with jitter that honours
``Retry-After``. Only errors marked ``retryable`` are retried (rate limits, unreachable
servers, 408/409/5xx); auth, bad requests, unknown models and too-long contexts never are.

Providers wrap only "open the stream and read until the first chunk" in :func:`with_retries`:
once text has been shown to the user, a failure is reported, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from app.core.errors import ProviderError
from app.core.settings import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")


class UniformSource(Protocol):
    """What :func:`compute_delay` needs from a random source (``random.Random`` fits)."""

    def uniform(self, a: float, b: float) -> float:
        """A number between ``a`` and ``b``."""
        ...


RetryCallback = Callable[[int, ProviderError, float], None]
"""Called before each wait with (attempt that failed, its error, seconds about to wait)."""


def compute_delay(
    policy: RetryPolicy,
    attempt: int,
    retry_after: float | None = None,
    rng: UniformSource | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    A server's ``Retry-After`` wins when the policy respects it (capped at
    ``max_retry_after_s``); otherwise ``base_delay_s * 2**(attempt-1)`` capped at
    ``max_delay_s``, spread by +-``jitter`` (a fraction) and kept within ``[0, max_delay_s]``.
    """
    if retry_after is not None and policy.respect_retry_after:
        return max(0.0, min(float(retry_after), policy.max_retry_after_s))
    delay = min(policy.base_delay_s * (2.0 ** max(0, attempt - 1)), policy.max_delay_s)
    if policy.jitter > 0 and delay > 0:
        source = rng if rng is not None else random
        delay *= 1.0 + source.uniform(-policy.jitter, policy.jitter)
    return max(0.0, min(delay, policy.max_delay_s))


def next_delay(policy: RetryPolicy, attempt: int, exc: ProviderError, rng: UniformSource | None = None) -> float:
    """Seconds to wait before retrying after failed attempt ``attempt`` with ``exc``; raises
    ``exc`` itself when it must not be retried (not retryable, or no attempts left)."""
    if not exc.retryable or attempt >= policy.max_attempts:
        raise exc
    delay = compute_delay(policy, attempt, exc.retry_after, rng)
    log.info("attempt %d/%d failed (%s); retrying in %.2f s", attempt, policy.max_attempts, type(exc).__name__, delay)
    return delay


async def with_retries(
    policy: RetryPolicy,
    start: Callable[[], Awaitable[T]],
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_retry: RetryCallback | None = None,
    rng: UniformSource | None = None,
) -> T:
    """Await ``start()``; on a retryable :class:`ProviderError` wait and try again, up to
    ``policy.max_attempts`` attempts in all. The last error (or any non-retryable one) is
    raised unchanged. Other exceptions and cancellation propagate at once.
    """
    attempt = 1
    while True:
        try:
            return await start()
        except ProviderError as exc:
            delay = next_delay(policy, attempt, exc, rng)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await sleep(delay)
            attempt += 1
