"""llama.cpp as the anchor of ``bench_local``: the same GGUF in llama-cpp-python against the app.

Every measurement runs in its own process (llama.cpp and torch bring their own OpenMP), in
alternating rounds: llama.cpp on 1 thread, 2 threads (and all cores when there are more), the
app's default local path (``dtype: auto``, the shipped settings, a provider in a fresh
process) and ``python -m app ask -m local:smollm2 --json``. Each process reports:

- decode tok/s after the first token (``LONG``, greedy, ``tokens`` new tokens);
- prefill: the time to the first token of a ~1,440-token prompt with one new token. Every
  prompt starts with its own tag (``Document r2-b``), so no process has seen it: llama.cpp
  runs it after ``llm.reset()`` (no KV reuse, no prompt cache), the app with its prefix reuse
  on (the default) and reports the prompt tokens it reused (0: cold). The first of two
  prompts warms the batch kernels; the second is timed;
- its resident memory (``/proc/self/status``) with the model loaded, after those generations.

Run alone: ``python -m benchmarks.bench_local --anchor-only``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.core.events import UsageReport
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from benchmarks.bench_local import (
    EVAL_TEXT,
    LONG,
    PARIS,
    ROOT,
    close,
    make,
    stream_timed,
    threads_used,
)

GOAL_DECODE = 1.2  # the app's decode tok/s over llama.cpp's best
GOAL_PREFILL = 0.8  # the app's time to the first token over llama.cpp's best


def prefill_prompt(tag: str) -> str:
    """A ~1,440-token prompt (SmolLM2's tokenizer, with the chat template) that starts with ``tag``."""
    return f"Document {tag}.\n\n" + (EVAL_TEXT.read_text(encoding="utf-8") + "\n") * 3 + "Summarise the text above in one sentence."


def rss_mib() -> tuple[float, float]:
    """(resident, anonymous resident) memory of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024


LLAMA_WORKER = r"""
import json, sys, time
from pathlib import Path
from llama_cpp import Llama
path, tokens, threads, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
kw = {"n_threads": threads, "n_threads_batch": threads} if threads > 0 else {}
if batch > 0:
    kw.update(n_batch=batch, n_ubatch=batch)
llm = Llama(model_path=path, n_ctx=2048, verbose=False, **kw)
msgs = [{"role": "user", "content": sys.argv[5]}]
llm.create_chat_completion(msgs, max_tokens=8, temperature=0.0)
llm.reset()
first = None; n = 0; start = time.perf_counter()
for chunk in llm.create_chat_completion(msgs, max_tokens=tokens, temperature=0.0, stream=True):
    if chunk["choices"][0]["delta"].get("content"):
        n += 1; first = first or time.perf_counter()
end = time.perf_counter()
out = {"tok_s": (n - 1) / (end - first), "n": n, "threads": llm.n_threads, "threads_batch": llm.n_threads_batch}
for prompt in json.loads(sys.argv[6]):  # the first warms the batch kernels; the last is timed
    llm.reset()
    start = time.perf_counter()
    res = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=1, temperature=0.0)
    out["prefill_s"] = time.perf_counter() - start
    out["prompt_tokens"] = res["usage"]["prompt_tokens"]
st = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines() if ":" in l)
out["rss_mib"] = int(st["VmRSS"].split()[0]) / 1024
out["anon_mib"] = int(st["RssAnon"].split()[0]) / 1024
print(json.dumps(out))
"""


def llama_cpp(gguf: Path, tokens: int, threads: int, batch: int, prompts: list[str]) -> dict[str, Any] | None:
    """llama.cpp's decode, prefill and memory (llama-cpp-python in a subprocess); None when it failed."""
    out = subprocess.run([sys.executable, "-c", LLAMA_WORKER, str(gguf), str(tokens), str(threads), str(batch), LONG[0].content,
                          json.dumps(prompts)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return None
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


async def first_token(provider: Any, prompt: str) -> tuple[float, int, int]:
    """(seconds to the end of a one-token answer, prompt tokens, prompt tokens reused)."""
    req = GenerationRequest(ModelRef("local", "smollm2"), (ChatMessage("user", prompt),),
                            GenerationParams(temperature=0.0, max_tokens=1))
    start = time.perf_counter()
    usage: UsageReport | None = None
    async for e in provider.stream(req):
        if isinstance(e, UsageReport):
            usage = e
    elapsed = time.perf_counter() - start
    assert usage is not None
    return elapsed, usage.prompt_tokens, usage.cached_prompt_tokens


def app_worker(root: Path, tokens: int, prompts: list[str]) -> dict[str, Any]:
    """The app's default local path in this process: decode, prefill and memory (as LLAMA_WORKER)."""
    provider, ctx = make(root, "auto", None)
    asyncio.run(provider.load("smollm2"))
    asyncio.run(stream_timed(provider, LONG, 8))  # warm-up
    out: dict[str, Any] = {"tok_s": asyncio.run(stream_timed(provider, LONG, tokens))[3], "threads": threads_used(provider)}
    for prompt in prompts:
        out["prefill_s"], out["prompt_tokens"], out["reused"] = asyncio.run(first_token(provider, prompt))
    out["rss_mib"], out["anon_mib"] = rss_mib()
    close(ctx)
    return out


def app_run(root: Path, tokens: int, prompts: list[str]) -> dict[str, Any]:
    """:func:`app_worker` in a fresh process (quantized weights cached under ``root``)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.local_anchor", str(root), str(tokens), json.dumps(prompts)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"the app's run failed ({out.returncode}): {out.stderr[-500:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ask_cli(home: Path, tokens: int, prompt: str) -> dict[str, Any]:
    """``python -m app ask -m local:smollm2 --json`` with the shipped defaults in profile ``home``."""
    env = dict(os.environ, LLM_PLAYGROUND_HOME=str(home))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "app", "ask", "-m", "local:smollm2", "--json", "--max-tokens", str(tokens), prompt],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"ask failed ({out.returncode}): {out.stderr[-500:]}")
    data = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    data["wall_s"] = wall
    return data


def _med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r.get(key, float("nan"))) for r in runs)


def _each(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> str:
    return ", ".join(f"{float(r.get(key, float('nan'))) * scale:.0f}" for r in runs)


def bench_anchor(tokens: int, rounds: int, ask: bool) -> None:
    """llama.cpp at 1 and 2 threads against the app's default local path and ``ask --json``."""
    import importlib.util

    from app.providers.bundled import bundled_gguf_path

    if importlib.util.find_spec("llama_cpp") is None:
        print("llama.cpp anchor: llama-cpp-python is not installed (pip install llama-cpp-python)")
        return
    gguf = bundled_gguf_path()
    batch = 0
    if llama_cpp(gguf, 4, 0, 0, []) is None:  # some native builds crash in batched prompt processing
        batch = 1
        print("  (llama.cpp crashed with batched prompt processing; measuring with n_batch=1: decode is unchanged, "
              "prefill is not comparable)")
    counts = sorted({1, 2, os.cpu_count() or 1})
    runs: dict[str, list[dict[str, Any]]] = {f"llama.cpp {n} thread{'s' * (n > 1)}": [] for n in counts}
    runs["app (default local path)"] = []
    asks: list[float] = []
    home = Path(tempfile.mkdtemp(prefix="bench-ask-"))
    root = Path(tempfile.mkdtemp(prefix="bench-anchor-"))
    if ask:
        first_ask = ask_cli(home, 30, PARIS[0].content)  # a fresh profile: the first answer
        second = ask_cli(home, 30, PARIS[0].content)
        print(f"ask on a fresh profile: first answer {first_ask['wall_s']:.1f} s, second {second['wall_s']:.1f} s "
              f"(x{first_ask['wall_s'] / second['wall_s']:.2f}); answer {first_ask['text']!r}")
    for r in range(rounds):
        prompts = [prefill_prompt(f"r{r + 1}-a"), prefill_prompt(f"r{r + 1}-b")]
        for label, values in runs.items():
            if label.startswith("app"):
                values.append(app_run(root, tokens, prompts))
            else:
                values.append(llama_cpp(gguf, tokens, int(label.split()[1]), batch, prompts) or {})
        if ask:
            asks.append(float(ask_cli(home, tokens, LONG[0].content)["tokens_per_s"] or 0.0))
    llamas = {k: v for k, v in runs.items() if k.startswith("llama")}
    best_decode = max(llamas, key=lambda k: _med(llamas[k], "tok_s"))
    best_prefill = min(llamas, key=lambda k: _med(llamas[k], "prefill_s"))
    top, fast = _med(llamas[best_decode], "tok_s"), _med(llamas[best_prefill], "prefill_s")
    print(f"anchor (median of {rounds} alternating rounds, each run a fresh process; llama.cpp: n_threads = "
          "n_threads_batch, no prompt cache):")
    print(f"  decode: {tokens} new tokens, greedy, tok/s after the first token; x vs {best_decode} (best)")
    for label, values in runs.items():
        med = _med(values, "tok_s")
        extra = f"  threads {values[-1].get('threads')}" if label.startswith("app") else ""
        print(f"    {label:<28} {med:6.1f} tok/s  x{med / top:.2f}   ({_each(values, 'tok_s')}){extra}")
    if ask:
        med = statistics.median(asks)
        print(f"    {'ask --json (defaults)':<28} {med:6.1f} tok/s  x{med / top:.2f}   ({', '.join(f'{v:.0f}' for v in asks)})")
    app = runs["app (default local path)"]
    decode = _med(app, "tok_s") / top
    print(f"  prefill: time to the first token of a {int(_med(app, 'prompt_tokens'))}-token prompt (llama.cpp counts "
          f"{int(_med(llamas[best_prefill], 'prompt_tokens'))}), 1 new token; x vs {best_prefill} (best)")
    for label, values in runs.items():
        med = _med(values, "prefill_s")
        extra = f"  prompt tokens reused {max(int(v['reused']) for v in values)}" if label.startswith("app") else ""
        print(f"    {label:<28} {med * 1000:6.0f} ms  x{med / fast:.2f}   ({_each(values, 'prefill_s', 1000)})"
              f"  {_med(values, 'prompt_tokens') / med:,.0f} tok/s{extra}")
    prefill = _med(app, "prefill_s") / fast
    print("  resident memory with the model loaded, after the generations (RSS; anonymous in brackets):")
    for label, values in runs.items():
        print(f"    {label:<28} {_med(values, 'rss_mib'):6.0f} MiB  ({_med(values, 'anon_mib'):.0f} MiB)")
    print(f"  the app / llama.cpp at its best (medians): {_verdict(decode, prefill)}")
    every = [r for values in llamas.values() for r in values]  # best single runs: the least disturbed by other load
    decode = max(float(r.get("tok_s", 0)) for r in app) / max(float(r.get("tok_s", 0)) for r in every)
    prefill = min(float(r.get("prefill_s", 0)) for r in app) / min(float(r.get("prefill_s", float("inf"))) for r in every)
    print(f"  the app / llama.cpp at its best (best single runs): {_verdict(decode, prefill)}")


def _verdict(decode: float, prefill: float) -> str:
    return (f"decode x{decode:.2f} (goal >= {GOAL_DECODE}: {'met' if decode >= GOAL_DECODE else 'MISSED'}), prefill time "
            f"x{prefill:.2f} (goal <= {GOAL_PREFILL}: {'met' if prefill <= GOAL_PREFILL else 'MISSED'})")


if __name__ == "__main__":
    print(json.dumps(app_worker(Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]))))
