"""The run scheduler against the loopback server, measured in one run.

    .venv/bin/python -m benchmarks.bench_scheduler [--requests 8] [--tokens 200] [--latency 0.3] [--runs 5]

Starts the loopback server (tests/support/openai_server.py) in a separate process; each answer
waits ``--latency`` seconds before its first token (as a real model does), then streams
``--tokens`` one-token chunks. Measured:

- concurrency: the wall time of ``--requests`` requests submitted at once through the
  scheduler, against one request's time - with the default bound of 4 per endpoint (two waves
  for 8 requests: ~2x) and with the bound at the number of requests (~1x); the raw SDK with
  ``asyncio.gather`` is the baseline;
- per-run overhead: one request through the scheduler (engine and events included, no
  ledger) against the raw ``openai`` SDK, on a second server streaming 10k tokens with no
  latency; medians of ``--runs`` alternating rounds after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from benchmarks.bench_openai_overhead import start_server


async def bench(requests: int, tokens: int, latency: float, runs: int) -> None:
    """Run the measurements and print them."""
    import openai

    from app.core.engine import Engine
    from app.core.pricing import PriceTable
    from app.core.provider import ProviderRegistry
    from app.core.runs import RunScheduler
    from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
    from app.providers.openai import OpenAIProvider
    from tests.support.openai_server import provider_context

    slow_proc, slow_url = start_server(tokens, first_delay=latency)
    fast_proc, fast_url = start_server(10_000)
    provider = OpenAIProvider(provider_context([]))
    registry = ProviderRegistry(provider.context, {"openai": lambda ctx: provider})
    engine = Engine(registry, PriceTable.load())
    bound = {"n": 4}
    scheduler = RunScheduler(engine, per_endpoint=lambda: bound["n"])
    messages = [{"role": "user", "content": "Count for me."}]

    def request(url: str) -> GenerationRequest:
        return GenerationRequest(ModelRef("openai", "bench-model"), (ChatMessage("user", "Count for me."),),
                                 GenerationParams(temperature=0.0, max_tokens=None), endpoint=url)

    sdks = {url: openai.AsyncOpenAI(api_key="not-needed", base_url=url, max_retries=0) for url in (slow_url, fast_url)}

    async def raw(url: str) -> None:
        stream = await sdks[url].chat.completions.create(
            model="bench-model", messages=messages, temperature=0.0, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True})
        async for _ in stream:
            pass

    async def timed(fn: Callable[[], Awaitable[object]]) -> float:
        start = time.perf_counter()
        await fn()
        return time.perf_counter() - start

    async def scheduled(url: str, n: int) -> None:
        await asyncio.gather(*(scheduler.submit(request(url)) for _ in range(n)))

    async def raw_many(n: int) -> None:
        await asyncio.gather(*(raw(slow_url) for _ in range(n)))

    try:
        await raw(slow_url)  # warm-up: connections, imports, tokenizer
        await scheduled(slow_url, 1)
        await raw(fast_url)
        await scheduled(fast_url, 1)
        one, sdk_many, sched_default, sched_wide = [], [], [], []
        sdk_fast, sched_fast = [], []
        for _ in range(runs):
            one.append(await timed(lambda: scheduled(slow_url, 1)))
            sdk_many.append(await timed(lambda: raw_many(requests)))
            bound["n"] = 4
            sched_default.append(await timed(lambda: scheduled(slow_url, requests)))
            bound["n"] = requests
            sched_wide.append(await timed(lambda: scheduled(slow_url, requests)))
            bound["n"] = 4
            sdk_fast.append(await timed(lambda: raw(fast_url)))
            sched_fast.append(await timed(lambda: scheduled(fast_url, 1)))
    finally:
        for sdk in sdks.values():
            await sdk.close()
        await scheduler.aclose()
        await registry.aclose()
        for proc in (slow_proc, fast_proc):
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(10)

    med = statistics.median
    t1 = med(one)
    print(f"run scheduler: {requests} requests of {tokens} tokens, {latency * 1000:.0f} ms to the first token, "
          f"{runs} rounds (loopback server)")
    print(f"{'variant':<34} {'wall ms':>9} {'x one request':>14}")
    print(f"{'one request (scheduler)':<34} {t1 * 1000:9.0f} {1.0:14.2f}")
    print(f"{f'raw SDK, {requests} at once (gather)':<34} {med(sdk_many) * 1000:9.0f} {med(sdk_many) / t1:14.2f}")
    print(f"{f'scheduler, {requests} at once, 4 per endpoint':<34} {med(sched_default) * 1000:9.0f} "
          f"{med(sched_default) / t1:14.2f}")
    print(f"{f'scheduler, {requests} at once, {requests} per endpoint':<34} {med(sched_wide) * 1000:9.0f} "
          f"{med(sched_wide) / t1:14.2f}")
    ratio = med(sched_fast) / med(sdk_fast)
    print(f"per-run overhead, 10k tokens: scheduler {med(sched_fast) * 1000:.1f} ms vs raw SDK "
          f"{med(sdk_fast) * 1000:.1f} ms: x{ratio:.3f} (best x{min(sched_fast) / min(sdk_fast):.3f})")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    asyncio.run(bench(args.requests, args.tokens, args.latency, args.runs))


if __name__ == "__main__":
    main()
