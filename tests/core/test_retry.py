"""The retry policy: backoff arithmetic, Retry-After, and which errors are retried."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from app.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ModelNotFound,
    ProviderError,
    RateLimited,
    RetryAfterTooLong,
    ServerError,
    Unreachable,
)
from app.core.retry import (
    RetryWait,
    check_retry_after,
    compute_delay,
    countdown,
    format_wait,
    with_retries,
)
from app.core.settings import RetryPolicy


class FakeSleep:
    """Records requested waits instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Flaky:
    """Fails with the given errors in order, then returns ``result``."""

    def __init__(self, errors: list[BaseException], result: str = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


NO_JITTER = RetryPolicy(max_attempts=5, base_delay_s=0.5, max_delay_s=3.0, jitter=0.0)


def test_backoff_doubles_and_caps() -> None:
    delays = [compute_delay(NO_JITTER, n) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_fraction_and_varies() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=100.0, jitter=0.25)
    rng = random.Random(7)
    values = [compute_delay(policy, 3, rng=rng) for _ in range(200)]
    assert all(3.0 <= v <= 5.0 for v in values)
    assert len(set(values)) > 100


def test_jitter_never_exceeds_max_delay() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=2.0, jitter=0.5)
    rng = random.Random(1)
    assert all(0.0 <= compute_delay(policy, 6, rng=rng) <= 2.0 for _ in range(100))


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_retry_after_s=10.0, jitter=0.25)
    assert compute_delay(policy, 1, retry_after=4.0) == 4.0
    assert compute_delay(policy, 1, retry_after=120.0) == 10.0
    assert compute_delay(policy, 1, retry_after=-3.0) == 0.0


def test_retry_after_ignored_when_policy_says_so() -> None:
    policy = RetryPolicy(base_delay_s=0.5, jitter=0.0, respect_retry_after=False)
    assert compute_delay(policy, 2, retry_after=30.0) == 1.0


def test_retries_retryable_errors_then_succeeds(run: Callable[..., Any]) -> None:
    sleep = FakeSleep()
    seen: list[tuple[int, str, float]] = []
    start = Flaky([ServerError("boom"), Unreachable("down"), RateLimited("slow", retry_after=7.0)])
    result = run(
        with_retries(
            NO_JITTER,
            start,
            sleep=sleep,
            on_retry=lambda n, exc, d: seen.append((n, type(exc).__name__, d)),
        )
    )
    assert result == "ok"
    assert start.calls == 4
    assert sleep.delays == [0.5, 1.0, 7.0]
    assert seen == [(1, "ServerError", 0.5), (2, "Unreachable", 1.0), (3, "RateLimited", 7.0)]


def test_gives_up_after_max_attempts_with_last_error(run: Callable[..., Any]) -> None:
    sleep = FakeSleep()
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, jitter=0.0)
    start = Flaky(
        [ServerError("one"), ServerError("two"), ServerError("three"), ServerError("four")]
    )
    with pytest.raises(ServerError, match="three"):
        run(with_retries(policy, start, sleep=sleep))
    assert start.calls == 3
    assert sleep.delays == [0.1, 0.2]


@pytest.mark.parametrize(
    "error",
    [
        AuthError("bad key"),
        BadRequest("bad"),
        ModelNotFound("nope"),
        ContextTooLong("long"),
        ProviderError("x"),
    ],
)
def test_never_retries_non_retryable(run: Callable[..., Any], error: ProviderError) -> None:
    sleep = FakeSleep()
    start = Flaky([error])
    with pytest.raises(type(error)):
        run(with_retries(NO_JITTER, start, sleep=sleep))
    assert start.calls == 1
    assert sleep.delays == []


def test_other_exceptions_propagate_untouched(run: Callable[..., Any]) -> None:
    sleep = FakeSleep()
    start = Flaky([ValueError("bug")])
    with pytest.raises(ValueError):
        run(with_retries(NO_JITTER, start, sleep=sleep))
    assert start.calls == 1


def test_single_attempt_policy_does_not_retry(run: Callable[..., Any]) -> None:
    sleep = FakeSleep()
    start = Flaky([Unreachable("down")])
    with pytest.raises(Unreachable):
        run(with_retries(RetryPolicy(max_attempts=1), start, sleep=sleep))
    assert sleep.delays == []


def test_cancel_during_wait_stops_retrying(run: Callable[..., Any]) -> None:
    """Cancelling while waiting between attempts ends the loop (no further attempt)."""
    start = Flaky([ServerError("boom"), ServerError("boom")])
    policy = RetryPolicy(max_attempts=3, base_delay_s=60.0, max_delay_s=60.0, jitter=0.0)

    async def scenario() -> None:
        waiting = asyncio.Event()

        async def sleep(delay: float) -> None:
            waiting.set()
            await asyncio.Event().wait()  # never set: only cancellation ends it

        task = asyncio.create_task(with_retries(policy, start, sleep=sleep))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario(), timeout=5)
    assert start.calls == 1


def test_a_retry_after_beyond_the_maximum_fails_at_once_saying_how_long(run: Callable[..., Any]) -> None:
    sleep = FakeSleep()
    waits: list[RetryWait] = []
    start = Flaky([RateLimited("Rate limit reached.", retry_after=3600.0)])
    policy = RetryPolicy(max_attempts=3, max_retry_after_s=60.0)
    with pytest.raises(RetryAfterTooLong) as info:
        run(with_retries(policy, start, sleep=sleep, on_wait=waits.append, endpoint="OpenAI"))
    assert start.calls == 1 and sleep.delays == [] and waits == []
    assert "OpenAI asked to wait 1 h 0 min before retrying" in str(info.value)
    assert "60 s the retry settings allow" in str(info.value)
    assert info.value.retry_after == 3600.0 and not info.value.retryable
    assert "Settings > Retries" in info.value.hint


def test_a_retry_after_within_the_maximum_is_waited(run: Callable[..., Any]) -> None:
    sleep = FakeSleep()
    start = Flaky([RateLimited("slow", retry_after=60.0)])
    assert run(with_retries(RetryPolicy(max_retry_after_s=60.0), start, sleep=sleep)) == "ok"
    assert sleep.delays == [60.0]


def test_the_wait_counts_down_each_second(run: Callable[..., Any]) -> None:
    sleep = FakeSleep()
    waits: list[RetryWait] = []
    start = Flaky([RateLimited("slow", retry_after=3.0), ServerError("boom")])
    policy = RetryPolicy(max_attempts=3, base_delay_s=1.25, jitter=0.0)  # 2nd wait: 2.5 s
    assert run(with_retries(policy, start, sleep=sleep, on_wait=waits.append, endpoint="Local")) == "ok"
    assert sleep.delays == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    assert [(w.attempt, w.seconds_left) for w in waits] == [
        (1, 3.0), (1, 2.0), (1, 1.0), (1, 0.0), (2, 2.5), (2, 1.5), (2, 0.5), (2, 0.0),
    ]  # fmt: skip
    first = waits[0]
    assert (first.endpoint, first.max_attempts, first.delay_s, first.retry_after_s) == ("Local", 3, 3.0, 3.0)
    assert first.message() == "Local: rate limited; retrying in 3 s (attempt 2 of 3)"
    assert waits[5].message() == "Local: server error; retrying in 2 s (attempt 3 of 3)"


def test_a_failing_countdown_display_does_not_stop_the_retry(run: Callable[..., Any]) -> None:
    def broken(_: RetryWait) -> None:
        raise RuntimeError("display gone")

    start = Flaky([ServerError("boom")])
    assert run(with_retries(NO_JITTER, start, sleep=FakeSleep(), on_wait=broken)) == "ok"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (12.2, "13 s"), (119, "119 s"), (150, "2 min 30 s"), (600, "10 min"),
     (3600, "1 h 0 min"), (5400, "1 h 30 min"), (86400 * 3, "3 d 0 h")],
)  # fmt: skip
def test_format_wait(seconds: float, text: str) -> None:
    assert format_wait(seconds) == text


def test_the_pieces_for_other_retry_loops(run: Callable[..., Any]) -> None:
    """check_retry_after and countdown are what a retry loop of its own (a provider's or the
    scheduler's) uses to fail fast and to tick."""
    policy = RetryPolicy(max_retry_after_s=30.0)
    check_retry_after(policy, RateLimited("ok", retry_after=30.0))  # within: no error
    check_retry_after(policy, RateLimited("no header"))
    with pytest.raises(RetryAfterTooLong, match="Local asked to wait 2 min before retrying"):
        check_retry_after(policy, RateLimited("slow", retry_after=120.0), "Local")
    sleep = FakeSleep()

    async def ticks() -> list[float]:
        return [left async for left in countdown(2.5, sleep)]

    assert run(ticks()) == [2.5, 1.5, 0.5, 0.0]
    assert sleep.delays == [1.0, 1.0, 0.5]
