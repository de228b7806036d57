"""The local server's overhead, measured in one run.

    .venv/bin/python -m benchmarks.bench_serve [--tokens 10000] [--local-tokens 64] [--runs 3]

- mock: ``mock:tokens?n=N`` through the server read with the ``openai`` SDK (streamed, every
  chunk consumed) vs ``Engine.run`` directly (target: total time <= 1.15x);
- single: the bundled model (greedy, N tokens) through server + SDK vs the run scheduler
  directly in the same process (target: decode tok/s >= 0.95x);
- four: four concurrent SDK clients on the bundled model: aggregate tok/s, each one's TTFT.

The server runs on its own loop thread (as in the window: the SDK client is elsewhere).
Medians of ``--runs`` after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from typing import Any

PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]


def start(tmp: str) -> tuple[Any, Any, asyncio.AbstractEventLoop]:
    """Services + LocalServer (no auth, loopback, free port) on a loop thread."""
    os.environ["LLM_PLAYGROUND_HOME"] = tmp
    from app.core.services import Services
    from app.serve.server import LocalServer

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def boot() -> tuple[Any, Any]:
        services = Services.create()
        server = LocalServer(services, port=0, no_auth=True)
        await server.start()
        return services, server

    services, server = asyncio.run_coroutine_threadsafe(boot(), loop).result(60)
    return services, server, loop


async def via_sdk(url: str, model: str, max_tokens: int | None, warm: bool = True) -> tuple[float, float, int]:
    """(ttft, total, chunks) of one streamed answer read with the SDK (on a client that has
    made a request already, when ``warm``: its set-up is not the server's time)."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    if warm:
        await client.models.list()
    t0 = time.perf_counter()
    ttft, n = 0.0, 0
    extra: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
    stream = await client.chat.completions.create(model=model, messages=PROMPT, stream=True, temperature=0, **extra)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if not n:
                ttft = time.perf_counter() - t0
            n += 1
    total = time.perf_counter() - t0
    await client.close()
    return ttft, total, n


def direct(services: Any, loop: asyncio.AbstractEventLoop, model: str, max_tokens: int | None) -> tuple[float, float]:
    """(ttft, total) of the same request through the scheduler, on the server's loop."""
    from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef

    req = GenerationRequest(ModelRef.parse(model), (ChatMessage("user", PROMPT[0]["content"]),),
                            GenerationParams(temperature=0, max_tokens=max_tokens))

    async def go() -> tuple[float, float]:
        t0 = time.perf_counter()
        result = await services.scheduler.run(req)
        return (result.ttft_s or 0.0), time.perf_counter() - t0

    return asyncio.run_coroutine_threadsafe(go(), loop).result(600)


def decode_rate(ttft: float, total: float, tokens: int) -> float:
    return (tokens - 1) / max(total - ttft, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--local-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    services, server, loop = start(tempfile.mkdtemp(prefix="bench-serve-"))
    url = server.address
    mock = f"mock:tokens?n={args.tokens}"
    sdk_totals, eng_totals = [], []
    for i in range(args.runs + 1):
        _, eng = direct(services, loop, mock, None)
        _, sdk, _ = asyncio.run(via_sdk(url, mock, None))
        if i:
            eng_totals.append(eng)
            sdk_totals.append(sdk)
    e, s = statistics.median(eng_totals), statistics.median(sdk_totals)
    print(f"mock {args.tokens} tokens: engine {e * 1000:.1f} ms, server+SDK {s * 1000:.1f} ms, x{s / e:.2f} (target <= 1.15)")
    if args.skip_local:
        return
    model, n = "local:smollm2", args.local_tokens
    direct(services, loop, model, 4)  # load once
    d_rates, s_rates = [], []
    for _ in range(args.runs):
        ttft, total = direct(services, loop, model, n)
        d_rates.append(decode_rate(ttft, total, n))
        sttft, stotal, _chunks = asyncio.run(via_sdk(url, model, n))
        s_rates.append(decode_rate(sttft, stotal, n))
    d, s2 = statistics.median(d_rates), statistics.median(s_rates)
    print(f"bundled model, {n} tokens: scheduler {d:.1f} tok/s, server+SDK {s2:.1f} tok/s, x{s2 / d:.3f} (target >= 0.95)")

    async def four() -> list[tuple[float, float, int]]:
        return list(await asyncio.gather(*(via_sdk(url, model, n) for _ in range(4))))

    t0 = time.perf_counter()
    results = asyncio.run(four())
    wall = time.perf_counter() - t0
    print(f"four clients, {n} tokens each: aggregate {4 * n / wall:.1f} tok/s over {wall:.2f} s; TTFT "
          + ", ".join(f"{r[0]:.2f} s" for r in results))
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    asyncio.run_coroutine_threadsafe(services.aclose(), loop).result(30)


if __name__ == "__main__":
    main()
