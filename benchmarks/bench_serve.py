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
- single: the bundled model (greedy, N tokens), decode tok/s: ``python -m app serve`` read
  with the SDK vs ``python -m app ask`` (each in its own process, both timed from here by
  when the first and the last piece of text arrive; target >= 0.95x); and, in this process,
  the server on a loop thread read with the SDK vs the run scheduler with no client at all
  (the strict figure: the client's parsing competes with the decode for the 2 cores and the
  GIL). Alternating, each after the machine settles (see ``settle``);
- four: four concurrent SDK clients of the server process: aggregate tok/s, each one's TTFT.

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
                  meter: CpuMeter | None = None) -> tuple[float, float, float, int]:
    """(ttft, last text, total, tokens) of one streamed answer read with the SDK (on a client
    that has made a request already, when ``warm``: its set-up is not the server's time): when
    the first and the last piece of text arrived and the stream ended; the tokens from the
    usage (else the pieces)."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    if warm:
        await client.models.list()
    if meter is not None:
        meter.start()
    t0 = time.perf_counter()
    ttft, last, n = 0.0, 0.0, 0
    extra: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
    extra["stream_options"] = {"include_usage": True}
    stream = await client.chat.completions.create(model=model, messages=PROMPT, stream=True, temperature=0, **extra)
    tokens = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if not n:
                ttft = time.perf_counter() - t0
            n += 1
            last = time.perf_counter()
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    last_text, total = (last if n else time.perf_counter()) - t0, time.perf_counter() - t0
    if meter is not None:
        meter.stop()
    await client.close()
    return ttft, last_text, total, n if tokens is None else tokens


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


def via_ask(tmp: str, model: str, max_tokens: int) -> tuple[float, float, int]:
    """(ttft, total, tokens) of ``python -m app ask --json`` in its own process, timed from
    outside as the SDK client times the server: the first and the last byte of the answer
    as they reach this process (the process's start and the model's load are not counted)."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "LLM_PLAYGROUND_HOME": os.path.join(tmp, "ask")}
    cmd = [sys.executable, "-m", "app", "ask", "-m", model, "--temperature", "0", "--max-tokens", str(max_tokens),
           "--json", PROMPT[0]["content"]]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    t0 = time.perf_counter()
    reads: list[tuple[float, bytes]] = []
    while chunk := os.read(proc.stdout.fileno(), 65536):
        reads.append((time.perf_counter() - t0, chunk))
    proc.wait(60)
    out = b"".join(c for _, c in reads)
    answer_end = out.rstrip(b"\n").rfind(b"\n") + 1  # the JSON line is the last one
    figures = json.loads(out[answer_end:])
    seen, last = 0, 0.0
    for at, chunk in reads:  # the read that brought the answer's last byte
        if seen < answer_end:
            last = at
        seen += len(chunk)
    return reads[0][0], last, int(figures["usage"]["completion_tokens"])


def settle(limit_s: float = 3.0) -> None:
    """Wait until the machine is idle (under 0.3 busy cores over 0.1 s, at most ``limit_s``):
    what one measurement leaves running (a process's exit, OpenMP threads spinning after a
    generation) must not fall into the next one's first steps, where the thread tuner probes."""
    from app.providers.local_threads import OtherLoad

    load = OtherLoad(own=lambda: 0.0)
    load.MIN_WINDOW = 0.1
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        time.sleep(0.1)
        if load() < 0.3:
            return


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
    try:
        mock_stream(args, services, loop, server.address, proc, proc_url)
        if not args.skip_local:
            local(args, tmp, services, loop, server.address, proc_url)
    finally:
        proc.terminate()
        proc.wait(30)
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        asyncio.run_coroutine_threadsafe(services.aclose(), loop).result(30)


def mock_stream(args: argparse.Namespace, services: Any, loop: asyncio.AbstractEventLoop, url: str, proc: Any,
                proc_url: str) -> None:
    """``mock:tokens?n=N`` through the server (its own process and a loop thread of this one)
    and the engine directly, alternating; wall and server CPU against the engine's."""
    mock = f"mock:tokens?n={args.tokens}"
    times: dict[str, list[float]] = {k: [] for k in ("engine", "process+SDK", "process+httpx", "thread+SDK", "thread+httpx")}
    meters = {"engine": CpuMeter(), "process+SDK": CpuMeter(proc.pid), "process+httpx": CpuMeter(proc.pid)}
    for i in range(args.runs + 1):  # alternating; the first round warms up
        if i == 1:
            meters = {k: CpuMeter(m.pid) for k, m in meters.items()}
        got = {"engine": direct(services, loop, mock, None, meters["engine"])[1],
               "process+SDK": asyncio.run(via_sdk(proc_url, mock, None, meter=meters["process+SDK"]))[2],
               "process+httpx": asyncio.run(via_http(proc_url, mock, meters["process+httpx"])),
               "thread+SDK": asyncio.run(via_sdk(url, mock, None))[2],
               "thread+httpx": asyncio.run(via_http(url, mock))}  # fmt: skip
        for k, v in got.items():
            if i:
                times[k].append(v)
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


def local(args: argparse.Namespace, tmp: str, services: Any, loop: asyncio.AbstractEventLoop, url: str,
          proc_url: str) -> None:
    """The bundled model: one stream through ``ask`` and through the server (its own process,
    as clients meet it, and on a loop thread of this process), alternating; four clients."""
    model, n = "local:smollm2", args.local_tokens
    direct(services, loop, model, 4)  # load once in this process and in the server's
    asyncio.run(via_sdk(proc_url, model, 4))
    rates: dict[str, list[float]] = {k: [] for k in ("ask", "process+SDK", "scheduler", "thread+SDK")}
    for _ in range(args.runs):
        settle()
        ttft, total, tokens = via_ask(tmp, model, n)
        rates["ask"].append(decode_rate(ttft, total, tokens))
        settle()
        sttft, slast, _end, tokens = asyncio.run(via_sdk(proc_url, model, n))
        rates["process+SDK"].append(decode_rate(sttft, slast, tokens))
        settle()
        ttft, total = direct(services, loop, model, n)
        rates["scheduler"].append(decode_rate(ttft, total, n))
        settle()
        sttft, slast, _end, tokens = asyncio.run(via_sdk(url, model, n))
        rates["thread+SDK"].append(decode_rate(sttft, slast, tokens))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("decode tok/s by run: " + "; ".join(f"{k} " + " ".join(f"{r:.0f}" for r in v) for k, v in rates.items()))
    print(f"bundled model, {n} tokens, decode medians of {args.runs}: ask {med['ask']:.1f} tok/s; "
          f"server process+SDK {med['process+SDK']:.1f} tok/s x{med['process+SDK'] / med['ask']:.3f} of ask (target >= 0.95)")
    print(f"  in this process: scheduler {med['scheduler']:.1f} tok/s; server on a loop thread + SDK "
          f"{med['thread+SDK']:.1f} tok/s x{med['thread+SDK'] / med['scheduler']:.3f} of the scheduler (client competes for the GIL)")

    async def four() -> list[tuple[float, float, float, int]]:
        return list(await asyncio.gather(*(via_sdk(proc_url, model, n) for _ in range(4))))

    settle()
    t0 = time.perf_counter()
    results = asyncio.run(four())
    wall = time.perf_counter() - t0
    print(f"four clients (server process), {n} tokens each: aggregate {4 * n / wall:.1f} tok/s over {wall:.2f} s; TTFT "
          + ", ".join(f"{r[0]:.2f} s" for r in results))


if __name__ == "__main__":
    main()
