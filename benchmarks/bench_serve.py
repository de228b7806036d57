"""The local server's overhead, measured in one run.

    .venv/bin/python -m benchmarks.bench_serve [--tokens 10000] [--local-tokens 64] [--runs 3]

- mock: ``mock:tokens?n=N`` through the server read with the ``openai`` SDK (streamed, every
  chunk consumed) vs the engine directly (target: total time <= 1.15x). Printed for the
  server in its own process (``python -m app serve``, as every real client meets it) and on a
  loop thread of this process (where the SDK's parsing competes with the server for the
  GIL), with the raw HTTP read (httpx, no SDK) beside each; all alternating in one run. Also
  the CPU time the server's process spends on a request (the timed part only) against the
  engine's run, which a loaded machine distorts less than the wall clock (Linux: the
  scheduler's per-thread run time, summed over the runs);
- single: the bundled model (greedy, N tokens) through server + SDK vs the run scheduler
  directly in the same process (target: decode tok/s >= 0.95x);
- four: four concurrent SDK clients on the bundled model: aggregate tok/s, each one's TTFT.

The server runs on its own loop thread (as in the window: the SDK client is elsewhere).
Medians of ``--runs`` after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import time
from typing import Any


class CpuMeter:
    """CPU seconds of process ``pid`` (this one: None) over the measured parts, summed."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.total = 0.0
        self._at: float | None = None

    def now(self) -> float | None:
        if self.pid is None:
            return time.process_time()
        try:  # the scheduler's run time of each thread, in ns (Linux; /proc/PID/stat counts 10 ms ticks)
            total = 0
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                        total += int(f.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        self._at = self.now()

    def stop(self) -> None:
        end = self.now()
        if self._at is not None and end is not None:
            self.total += end - self._at


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


async def via_sdk(url: str, model: str, max_tokens: int | None, warm: bool = True,
                  meter: CpuMeter | None = None) -> tuple[float, float, int]:
    """(ttft, total, chunks) of one streamed answer read with the SDK (on a client that has
    made a request already, when ``warm``: its set-up is not the server's time)."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    if warm:
        await client.models.list()
    if meter is not None:
        meter.start()
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
    if meter is not None:
        meter.stop()
    await client.close()
    return ttft, total, n


def spawn_server(tmp: str) -> tuple[Any, str]:
    """``python -m app serve --no-auth --port 0`` on its own profile; (process, base URL)."""
    import subprocess
    import sys

    env = {**os.environ, "LLM_PLAYGROUND_HOME": os.path.join(tmp, "served")}
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--no-auth", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # "Serving on http://127.0.0.1:PORT/v1" comes first
        if line.startswith("Serving on "):
            return proc, line.split()[-1]
    raise RuntimeError("python -m app serve did not start")


async def via_http(url: str, model: str, meter: CpuMeter | None = None) -> float:
    """Total time of one streamed answer read as raw SSE bytes with httpx (no SDK parsing)."""
    import httpx2 as httpx  # the HTTP client the openai SDK uses here

    body = {"model": model, "messages": PROMPT, "stream": True, "temperature": 0}
    async with httpx.AsyncClient(timeout=600) as client:
        await client.get(url + "/models")  # a warm connection, as via_sdk
        if meter is not None:
            meter.start()
        t0 = time.perf_counter()
        async with client.stream("POST", url + "/chat/completions", json=body) as response:
            async for _chunk in response.aiter_bytes():
                pass
        total = time.perf_counter() - t0
        if meter is not None:
            meter.stop()
        return total


def direct(services: Any, loop: asyncio.AbstractEventLoop, model: str, max_tokens: int | None,
           meter: CpuMeter | None = None) -> tuple[float, float]:
    """(ttft, total) of the same request through the scheduler, on the server's loop."""
    from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef

    req = GenerationRequest(ModelRef.parse(model), (ChatMessage("user", PROMPT[0]["content"]),),
                            GenerationParams(temperature=0, max_tokens=max_tokens))

    async def go() -> tuple[float, float]:
        if meter is not None:
            meter.start()
        t0 = time.perf_counter()
        result = await services.scheduler.run(req)
        total = time.perf_counter() - t0
        if meter is not None:
            meter.stop()
        return (result.ttft_s or 0.0), total

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
    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    proc, proc_url = spawn_server(tmp)
    services, server, loop = start(tmp)
    url = server.address
    mock = f"mock:tokens?n={args.tokens}"
    times: dict[str, list[float]] = {k: [] for k in ("engine", "process+SDK", "process+httpx", "thread+SDK", "thread+httpx")}
    meters = {"engine": CpuMeter(), "process+SDK": CpuMeter(proc.pid), "process+httpx": CpuMeter(proc.pid)}
    try:
        for i in range(args.runs + 1):  # alternating; the first round warms up
            if i == 1:
                meters = {k: CpuMeter(m.pid) for k, m in meters.items()}
            got = {"engine": direct(services, loop, mock, None, meters["engine"])[1],
                   "process+SDK": asyncio.run(via_sdk(proc_url, mock, None, meter=meters["process+SDK"]))[1],
                   "process+httpx": asyncio.run(via_http(proc_url, mock, meters["process+httpx"])),
                   "thread+SDK": asyncio.run(via_sdk(url, mock, None))[1],
                   "thread+httpx": asyncio.run(via_http(url, mock))}  # fmt: skip
            for k, v in got.items():
                if i:
                    times[k].append(v)
    finally:
        proc.terminate()
        proc.wait(30)
    for name, pick in (("medians", statistics.median), ("minimums", min)):  # minimums: the least disturbed runs
        e = pick(times["engine"])
        print(f"mock {args.tokens} tokens, {name} of {args.runs}: engine {e * 1000:.1f} ms; "
              + "; ".join(f"{k} {pick(v) * 1000:.1f} ms x{pick(v) / e:.2f}"
                          for k, v in times.items() if k != "engine") + " (target <= 1.15)")  # fmt: skip
    e_cpu = meters["engine"].total
    if e_cpu > 0 and meters["process+httpx"].total > 0:
        print(f"mock {args.tokens} tokens, CPU per request (mean of {args.runs}): engine {e_cpu / args.runs * 1000:.1f} ms; "
              + "; ".join(f"server process ({k.split('+')[1]} client) {meters[k].total / args.runs * 1000:.1f} ms"
                          f" x{meters[k].total / e_cpu:.2f}" for k in ("process+SDK", "process+httpx")))  # fmt: skip
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
