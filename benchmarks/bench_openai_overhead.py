"""Overhead of the openai provider over the raw SDK, measured in one run.

    .venv/bin/python -m benchmarks.bench_openai_overhead [--tokens 10000] [--runs 5]

Starts the loopback server (tests/support/openai_server.py) in a separate process, streaming
N one-token chunks as fast as it can, then measures time to first token and total time for:

- sdk:      the raw ``openai`` SDK (AsyncOpenAI, stream=True, every chunk consumed) - the baseline
- provider: ``OpenAIProvider.stream`` (TextDelta events, usage, finish)
- engine:   ``Engine.run`` through the provider (timing, usage, cost; no ledger)

Variants alternate within each round (the order rotates), after one warm-up round; medians
are printed with ratios against the SDK. Target: provider total / sdk total <= 1.05 at 10k.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Measure = Callable[[], Awaitable[tuple[float, float, int]]]


def start_server(tokens: int, *, first_delay: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    """The loopback server in a child process; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", "--tokens", str(tokens),
         "--first-delay", str(first_delay)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise SystemExit(f"the loopback server did not start (got {line!r})")
    return proc, line


async def bench(tokens: int, runs: int) -> dict[str, list[tuple[float, float, int]]]:
    """Run every variant ``runs`` times (plus a warm-up); return (ttft, total, chunks) lists."""
    import openai

    from app.core.engine import Engine
    from app.core.events import TextDelta
    from app.core.pricing import PriceTable
    from app.core.provider import ProviderRegistry
    from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
    from app.providers.openai import OpenAIProvider
    from tests.support.openai_server import provider_context

    proc, base_url = start_server(tokens)
    messages = [{"role": "user", "content": "Count for me."}]
    request = GenerationRequest(
        ModelRef("openai", "bench-model"),
        (ChatMessage("user", "Count for me."),),
        GenerationParams(temperature=0.0, max_tokens=None),
        endpoint=base_url,
    )
    sdk = openai.AsyncOpenAI(api_key="not-needed", base_url=base_url, max_retries=0)
    provider = OpenAIProvider(provider_context([]))
    registry = ProviderRegistry(provider.context, {"openai": lambda ctx: provider})
    engine = Engine(registry, PriceTable.load())

    async def raw_sdk() -> tuple[float, float, int]:
        start = time.perf_counter()
        first = None
        n = 0
        stream = await sdk.chat.completions.create(
            model="bench-model",
            messages=messages,  # type: ignore[arg-type]
            temperature=0.0,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if first is None:
                    first = time.perf_counter()
                n += 1
        end = time.perf_counter()
        return (first or end) - start, end - start, n

    async def through_provider() -> tuple[float, float, int]:
        start = time.perf_counter()
        first = None
        n = 0
        async for event in provider.stream(request):
            if type(event) is TextDelta:
                if first is None:
                    first = time.perf_counter()
                n += 1
        end = time.perf_counter()
        return (first or end) - start, end - start, n

    async def through_engine() -> tuple[float, float, int]:
        start = time.perf_counter()
        result = await engine.run(request)
        end = time.perf_counter()
        return result.ttft_s or 0.0, end - start, result.usage.completion_tokens

    variants: dict[str, Measure] = {
        "sdk": raw_sdk,
        "provider": through_provider,
        "engine": through_engine,
    }
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
    names = list(variants)
    try:
        for name in names:  # warm-up: connections, imports, tokenizer
            await variants[name]()
        for i in range(runs):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                results[name].append(await variants[name]())
    finally:
        await sdk.close()
        await registry.aclose()
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def report(results: dict[str, list[tuple[float, float, int]]], tokens: int, runs: int) -> float:
    """Print the table (medians, and best runs, which suffer least from a busy machine);
    return the provider/sdk median total-time ratio."""
    med = {
        name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        for name, rows in results.items()
    }
    best = {name: min(r[1] for r in rows) for name, rows in results.items()}
    base_ttft, base_total = med["sdk"]
    print(f"openai provider overhead: {tokens} tokens, {runs} runs each (loopback server)")
    print(
        f"{'variant':<10} {'ttft ms':>9} {'total ms':>10} {'tok/s':>8} {'ttft x':>7} {'total x':>8}"
        f" {'best ms':>9} {'best x':>7}"
    )
    for name, (ttft, total) in med.items():
        chunks = results[name][0][2]
        print(
            f"{name:<10} {ttft * 1000:9.2f} {total * 1000:10.1f} {chunks / total:8.0f}"
            f" {ttft / base_ttft:7.3f} {total / base_total:8.3f}"
            f" {best[name] * 1000:9.1f} {best[name] / best['sdk']:7.3f}"
        )
    ratio = med["provider"][1] / base_total
    verdict = "OK" if ratio <= 1.05 else "ABOVE TARGET"
    print(f"provider/sdk median total-time ratio: {ratio:.3f} (target <= 1.05: {verdict})")
    return ratio


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    results = asyncio.run(bench(args.tokens, args.runs))
    report(results, args.tokens, args.runs)


if __name__ == "__main__":
    main()
