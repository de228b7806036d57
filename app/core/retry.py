"""One retry policy for remote providers: exponential backoff with jitter that honours
``Retry-After``. Only errors marked ``retryable`` are retried (rate limits, unreachable
servers, 408/409/5xx); auth, bad requests, unknown models and too-long contexts never are.

Providers wrap only "open the stream and read until the first chunk" in :func:`with_retries`:
once text has been shown to the user, a failure is reported, not retried.

A ``Retry-After`` longer than the policy's ``max_retry_after_s`` fails at once with
:class:`RetryAfterTooLong` ("OpenAI asked to wait 1 h 0 min before retrying") instead of
waiting a shorter time and being refused again. Waits are announced through ``on_wait``
once a second (:class:`RetryWait`: seconds left, attempt, endpoint), for a countdown.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from app.core.errors import ProviderError, RetryAfterTooLong
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


@dataclass(frozen=True, slots=True)
class RetryWait:
    """One tick of a wait between attempts: what a countdown ("retrying in 12 s...") shows.

    Sent when the wait starts (``seconds_left == delay_s``), then about once a second, and
    once more at 0 just before the next attempt."""

    attempt: int
    """The attempt that failed (1-based); the next one is ``attempt + 1``."""
    max_attempts: int
    seconds_left: float
    delay_s: float
    """The whole wait."""
    error: ProviderError
    endpoint: str | None = None
    """The endpoint's name (or cleaned base URL) as given to :func:`with_retries`."""
    retry_after_s: float | None = None
    """What the server asked for (``Retry-After``), if it did."""

    @property
    def next_attempt(self) -> int:
        """The attempt about to be made."""
        return self.attempt + 1

    def message(self) -> str:
        """``OpenAI: rate limited; retrying in 12 s (attempt 2 of 3)``."""
        where = f"{self.endpoint}: " if self.endpoint else ""
        return (f"{where}{_reason(self.error)}; retrying in {math.ceil(self.seconds_left - 1e-9):.0f} s "
                f"(attempt {self.next_attempt} of {self.max_attempts})")  # fmt: skip


WaitCallback = Callable[[RetryWait], None]
"""Called when a wait starts, about every second of it, and at its end (see :class:`RetryWait`)."""


def _reason(error: ProviderError) -> str:
    from app.core.errors import RateLimited, ServerError, Unreachable

    if isinstance(error, RateLimited):
        return "rate limited"
    if isinstance(error, ServerError):
        return "server error"
    if isinstance(error, Unreachable):
        return "not reachable"
    return type(error).__name__


def format_wait(seconds: float) -> str:
    """``45 s``, ``2 min 30 s``, ``1 h 0 min``, ``2 d 3 h``: how long, for people."""
    s = max(0, math.ceil(seconds - 1e-9))
    if s < 120:
        return f"{s} s"
    minutes, sec = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _too_long(exc: ProviderError, policy: RetryPolicy, retry_after: float, endpoint: str | None) -> RetryAfterTooLong:
    who = endpoint or "The server"
    return RetryAfterTooLong(
        f"{who} asked to wait {format_wait(retry_after)} before retrying, longer than the "
        f"{format_wait(policy.max_retry_after_s)} the retry settings allow, so the request was "
        f"not retried ({exc.message.rstrip('.')}).",
        retry_after=retry_after,
    )


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


def next_delay(
    policy: RetryPolicy,
    attempt: int,
    exc: ProviderError,
    rng: UniformSource | None = None,
    endpoint: str | None = None,
) -> float:
    """Seconds to wait before retrying after failed attempt ``attempt`` with ``exc``; raises
    ``exc`` itself when it must not be retried (not retryable, or no attempts left), and
    :class:`RetryAfterTooLong` at once when the server asked for a longer wait than allowed."""
    check_retry_after(policy, exc, endpoint)
    if not exc.retryable or attempt >= policy.max_attempts:
        raise exc
    delay = compute_delay(policy, attempt, exc.retry_after, rng)
    log.info("attempt %d/%d failed (%s); retrying in %.2f s", attempt, policy.max_attempts, type(exc).__name__, delay)
    return delay


def check_retry_after(policy: RetryPolicy, exc: ProviderError, endpoint: str | None = None) -> None:
    """Raise :class:`RetryAfterTooLong` (at once, nothing retried) when ``exc`` is retryable
    and its ``retry_after`` is beyond ``policy.max_retry_after_s`` (a policy that respects
    Retry-After). Every retry loop calls this before it computes a delay."""
    retry_after = exc.retry_after
    if (
        exc.retryable
        and retry_after is not None
        and policy.respect_retry_after
        and float(retry_after) > policy.max_retry_after_s
    ):
        raise _too_long(exc, policy, float(retry_after), endpoint) from exc


async def countdown(
    delay_s: float, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, tick_s: float = 1.0
) -> AsyncIterator[float]:
    """Wait ``delay_s`` in ticks of ``tick_s``: yields the seconds left when the wait starts,
    after each tick, and 0 at its end (a caller shows "retrying in 12 s..." on each)."""
    left = max(0.0, delay_s)
    yield left
    while left > 1e-9:
        step = min(tick_s, left) if tick_s > 0 else left
        await sleep(step)
        left = max(0.0, left - step)
        yield left


async def with_retries(
    policy: RetryPolicy,
    start: Callable[[], Awaitable[T]],
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_retry: RetryCallback | None = None,
    rng: UniformSource | None = None,
    on_wait: WaitCallback | None = None,
    endpoint: str | None = None,
    tick_s: float = 1.0,
) -> T:
    """Await ``start()``; on a retryable :class:`ProviderError` wait and try again, up to
    ``policy.max_attempts`` attempts in all. The last error (or any non-retryable one) is
    raised unchanged. Other exceptions and cancellation propagate at once.

    A ``retry_after`` beyond ``policy.max_retry_after_s`` (when the policy respects it)
    raises :class:`RetryAfterTooLong` at once, naming ``endpoint`` and the wait asked for
    (:func:`check_retry_after`). ``on_retry`` hears of each retry once; ``on_wait`` gets a
    :class:`RetryWait` when the wait starts, every ``tick_s`` of it and at 0 (the wait is
    then slept in ticks, :func:`countdown`).
    """
    attempt = 1
    while True:
        try:
            return await start()
        except ProviderError as exc:
            delay = next_delay(policy, attempt, exc, rng, endpoint)
            retry_after = exc.retry_after
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            if on_wait is None:
                await sleep(delay)
            else:
                async for left in countdown(delay, sleep, tick_s):
                    _tell(on_wait, RetryWait(attempt, policy.max_attempts, left, delay, exc, endpoint, retry_after))
            attempt += 1


def _tell(on_wait: WaitCallback, notice: RetryWait) -> None:
    try:
        on_wait(notice)
    except Exception:  # a display problem must not stop the retry
        log.debug("retry countdown callback failed", exc_info=True)
