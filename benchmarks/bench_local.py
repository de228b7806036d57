"""Local generation speed and quality with the bundled SmolLM2 on the CPU, in one run.

Prints, all measured in this run (rounds alternate, so background load hits every row alike):
- decode tok/s of raw bf16 ``model.generate``, of the provider on each dtype (bfloat16 on
  transformers' ``generate``; int8, int4 and int4-qkv8 on the fast path) and of the default
  (``dtype: auto``), each with the threads used;
- with ``llama-cpp-python`` importable: llama.cpp on the same GGUF (1 and 2 threads) as the
  anchor against the app's default local path and ``python -m app ask -m local:smollm2
  --json`` (decode tok/s, time to the first token of a ~1,440-token prompt, resident memory;
  see benchmarks/local_anchor.py);
- the same deep in the context: a ~1,900-token prompt (that text four times), 32 new tokens;
- perplexity of each dtype on benchmarks/data/eval_text.txt (~460 tokens);
- greedy answers of each dtype to five fixed questions;
- on the fast path: LoRA switch time and tok/s with one adapter and with two (scaled) / base;
- load times: first (quantize + write the cache) and second (from the quantized cache).

``--schema`` prints only the cost of constrained decoding (llguidance): decode tok/s of the
default (``dtype: auto``) answering with a JSON Schema against without, alternating rounds
(target >= 0.8x), and whether each constrained answer validated.

Usage: python -m benchmarks.bench_local [--tokens 128] [--rounds 3] [--no-anchor] [--anchor-only] [--no-ask] [--schema]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.events import TextDelta, UsageReport  # noqa: E402
from app.core.paths import AppPaths  # noqa: E402
from app.core.provider import ProviderContext  # noqa: E402
from app.core.settings import LocalModelSettings, Settings  # noqa: E402
from app.core.tools import ResponseSchema, validate_answer  # noqa: E402
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef  # noqa: E402
from app.providers.transformers import LocalProvider  # noqa: E402

LONG = (ChatMessage("user", "Write a long, detailed story about a dragon who learns to bake bread."),)
PARIS = (ChatMessage("user", "What is the capital of France?"),)
QUESTIONS = (
    "What is the capital of France?",
    "What is 12 plus 7?",
    "Name three primary colors.",
    "Translate 'good morning' into Spanish.",
    "Who wrote Romeo and Juliet?",
)
EVAL_TEXT = Path(__file__).resolve().parent / "data" / "eval_text.txt"
VARIANTS = ("bfloat16", "int8", "int4", "int4-qkv8")
# a long prompt (the evaluation text four times, ~1,900 tokens): decode speed deep in the context
CONTEXT = (ChatMessage("user", (EVAL_TEXT.read_text() + "\n") * 4 + "Summarise the text above in one sentence."),)
CONTEXT_TOKENS = 32
DRAGON = (ChatMessage("user", "Describe a dragon as JSON: its name, age, colour and a long story about it."),)
DRAGON_SCHEMA = ResponseSchema({"type": "object", "additionalProperties": False,
                                "required": ["name", "age", "colour", "story"],
                                "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                               "colour": {"type": "string"}, "story": {"type": "string"}}})  # fmt: skip


def make(cache: Path, dtype: str, threads: int | None) -> tuple[LocalProvider, ProviderContext]:
    """A local provider on the CPU with ``dtype`` whose folders live under ``cache``."""
    paths = AppPaths.under(cache).ensure()
    settings = Settings(local=LocalModelSettings(device="cpu", dtype=dtype, threads=threads))  # type: ignore[arg-type]
    ctx = ProviderContext(settings=settings, secrets=None, paths=paths)  # type: ignore[arg-type]
    return LocalProvider(ctx), ctx


def close(ctx: ProviderContext) -> None:
    """Stop the context's model worker."""
    worker = ctx.extra.pop("model_worker", None)
    if worker is not None:
        worker.close()  # type: ignore[attr-defined]


async def stream_once(provider: LocalProvider, msgs: Any, tokens: int, extras: dict[str, Any] | None = None) -> tuple[str, int, float]:
    """(text, completion tokens, seconds) of one greedy stream."""
    text, n, total, _ = await stream_timed(provider, msgs, tokens, extras)
    return text, n, total


async def stream_timed(provider: LocalProvider, msgs: Any, tokens: int, extras: dict[str, Any] | None = None,
                       logprobs: int | None = None, schema: ResponseSchema | None = None) -> tuple[str, int, float, float]:
    """(text, completion tokens, total seconds, decode tok/s after the first token)."""
    params = GenerationParams(temperature=0.0, max_tokens=tokens, extras=extras or {}, logprobs=logprobs)
    req = GenerationRequest(ModelRef("local", "smollm2"), msgs, params, response_schema=schema)
    start = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    n = 0
    async for e in provider.stream(req):
        if isinstance(e, TextDelta):
            first = first or time.perf_counter()
            parts.append(e.text)
        elif isinstance(e, UsageReport):
            n = e.completion_tokens
    end = time.perf_counter()
    decode = (n - 1) / (end - first) if first and n > 1 and end > first else 0.0
    return "".join(parts), n, end - start, decode


def raw_generate(provider: LocalProvider, tokens: int, msgs: Any = LONG) -> float:
    """Decode tok/s of plain ``model.generate`` (bf16) on the provider's model: (N-1) / (t(N) - t(1))."""
    import torch

    from app.providers.local_prompt import prompt_ids

    def job() -> float:
        loaded = provider._runtime().loaded
        assert loaded is not None
        ids = torch.tensor([prompt_ids(loaded.tokenizer, msgs)])
        times = []
        for n in (1, tokens):
            start = time.perf_counter()
            with torch.inference_mode():
                loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=loaded.tokenizer.eos_token_id)
            times.append(time.perf_counter() - start)
        return (tokens - 1) / (times[1] - times[0])

    return provider.worker.call(job)


def threads_used(provider: LocalProvider) -> str:
    """The thread count the last generation used (the tuner's choice on the fast path)."""
    def job() -> str:
        import torch

        rt = provider._runtime()
        if rt.tuner is not None and rt.tuner.history:
            last = rt.tuner.history[-1]
            return f"{rt.tuner.best} (tuned: " + ", ".join(f"{c}: {t * 1000:.1f} ms" for c, t in last.items()) + ")"
        return str(torch.get_num_threads())

    return provider.worker.call(job)


def perplexity(provider: LocalProvider) -> float:
    """Perplexity on the shipped text, computed by the code that generates (lean step or forward)."""
    import torch

    text = EVAL_TEXT.read_text(encoding="utf-8")

    def job() -> float:
        loaded = provider._runtime().loaded
        assert loaded is not None
        ids = torch.tensor(loaded.tokenizer(text)["input_ids"])
        with torch.inference_mode():
            if loaded.fast is not None:
                logits = loaded.fast.all_logits(ids)
            else:
                logits = loaded.model(ids[None]).logits[0].float()
        return math.exp(float(torch.nn.functional.cross_entropy(logits[:-1], ids[1:])))

    return provider.worker.call(job)


def answers(provider: LocalProvider) -> list[str]:
    """Greedy answers (24 tokens) to the five questions."""
    return [asyncio.run(stream_once(provider, (ChatMessage("user", q),), 24))[0] for q in QUESTIONS]


def timed_load(provider: LocalProvider) -> float:
    start = time.perf_counter()
    asyncio.run(provider.load("smollm2"))
    return time.perf_counter() - start


# --- the sections ---------------------------------------------------------------------------
def bench_variants(root: Path, tokens: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Load every dtype (and auto), then alternate: raw generate, each provider, in rounds."""
    results: dict[str, dict[str, Any]] = {}
    providers: dict[str, tuple[LocalProvider, ProviderContext]] = {}
    for dtype in (*VARIANTS, "auto"):
        provider, ctx = make(root, dtype, None)
        first = timed_load(provider)
        close(ctx)
        provider, ctx = make(root, dtype, None)  # a new worker: the second load reads the cache
        second = timed_load(provider)
        providers[dtype] = (provider, ctx)
        asyncio.run(stream_once(provider, LONG, 8))  # warm-up
        results[dtype] = {"load": (first, second), "tok_s": [], "raw": [], "lens": [], "context": [], "raw_context": []}
    for _ in range(rounds):
        results["bfloat16"]["raw"].append(raw_generate(providers["bfloat16"][0], tokens))
        results["bfloat16"]["raw_context"].append(raw_generate(providers["bfloat16"][0], CONTEXT_TOKENS, CONTEXT))
        for dtype, (provider, _) in providers.items():
            _, n, _, decode = asyncio.run(stream_timed(provider, LONG, tokens))
            results[dtype]["tok_s"].append(decode)
            results[dtype]["context"].append(asyncio.run(stream_timed(provider, CONTEXT, CONTEXT_TOKENS))[3])
            results[dtype]["threads"] = threads_used(provider)
        default = providers["auto"][0]  # the token lens: logprobs with K = 5, same decoding steps
        results["auto"]["lens"].append(asyncio.run(stream_timed(default, LONG, tokens, logprobs=5))[3])
    for dtype, (provider, ctx) in providers.items():
        if dtype != "auto":
            results[dtype]["ppl"] = perplexity(provider)
            results[dtype]["answers"] = answers(provider)
        else:
            results[dtype]["variant"] = provider.worker.call(lambda p=provider: p._runtime().loaded.dtype)  # type: ignore[misc]
        close(ctx)
    return results


def bench_schema(root: Path, tokens: int, rounds: int) -> None:
    """Decode tok/s of the default with a JSON Schema against without (alternating rounds)."""
    provider, ctx = make(root, "auto", None)
    timed_load(provider)
    asyncio.run(stream_timed(provider, DRAGON, 8, schema=DRAGON_SCHEMA))  # warm-up (llguidance's tokenizer: once)
    plain: list[float] = []
    constrained: list[float] = []
    valid = 0
    for _ in range(rounds):
        plain.append(asyncio.run(stream_timed(provider, DRAGON, tokens))[3])
        text, n, _, decode = asyncio.run(stream_timed(provider, DRAGON, tokens, schema=DRAGON_SCHEMA))
        constrained.append(decode)
        valid += validate_answer(text, DRAGON_SCHEMA) is None or n >= tokens  # cut by max_tokens: not the grammar's fault
    close(ctx)
    a, b = statistics.median(plain), statistics.median(constrained)
    print(f"constrained decoding (the default, greedy, up to {tokens} new tokens, median of {rounds} alternating rounds):")
    print(f"  {'without a schema':<32} {a:6.1f} tok/s  x1.00")
    print(f"  {'with a JSON Schema (llguidance)':<32} {b:6.1f} tok/s  x{b / a:.2f} (target >= 0.80); "
          f"{valid}/{rounds} answers valid or cut by max tokens")


def bench_adapters(root: Path, tokens: int, rounds: int) -> None:
    """LoRA on the fast path (dtype auto): switch time, and tok/s with adapters / base."""
    from benchmarks.bench_lora import activate, make_adapter

    provider, ctx = make(root, "auto", None)
    asyncio.run(provider.load("smollm2"))
    folder = provider.worker.call(lambda: provider._runtime().loaded.folder)
    a = make_adapter(folder, root / "adapter_a", 1)
    b = make_adapter(folder, root / "adapter_b", 2)
    asyncio.run(provider.load_adapter(str(a), "first"))
    asyncio.run(provider.load_adapter(str(b), "second"))
    paths = {"first": a, "second": b}
    switches = []
    for i in range(10):
        start = time.perf_counter()
        activate(provider, paths, {"first" if i % 2 else "second": 1.0})
        switches.append(time.perf_counter() - start)
    combos = {"base": {}, "one adapter": {"first": 1.0}, "two, scaled 0.7 + 0.5": {"first": 0.7, "second": 0.5}}
    speeds: dict[str, list[float]] = {k: [] for k in combos}
    on_fast: dict[str, bool] = {}
    asyncio.run(stream_once(provider, LONG, 4))
    for _ in range(rounds):
        for label, weights in combos.items():
            activate(provider, paths, weights)
            speeds[label].append(asyncio.run(stream_timed(provider, LONG, tokens))[3])
            on_fast[label] = provider.worker.call(lambda: provider._runtime().loaded.fast.ready)  # type: ignore[union-attr]
    med = {k: statistics.median(v) for k, v in speeds.items()}
    print(f"LoRA on the fast path (r=16 on q/k/v/o): switch median {statistics.median(switches) * 1000:.1f} ms "
          f"(max {max(switches) * 1000:.1f} ms, 10 switches, includes rebuilding the lean step's LoRA matrices)")
    print("  " + ", ".join(f"{k} {v:.1f} tok/s (x{v / med['base']:.2f}{'' if on_fast[k] else ', generate fallback'})" for k, v in med.items()))
    close(ctx)


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def other_sections(tokens: int, rounds: int) -> None:
    """Every dtype's speed and quality, deep in the context, LoRA on the fast path."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = bench_variants(root, tokens, rounds)
        base_ppl = results["bfloat16"]["ppl"]
        raw = statistics.median(results["bfloat16"]["raw"])
        print(f"speed ({tokens} new tokens, greedy, decode tok/s, median of {rounds} alternating rounds):")
        print(f"  {'raw bf16 model.generate':<32} {raw:6.1f} tok/s  x1.00")
        for dtype in (*VARIANTS, "auto"):
            r = results[dtype]
            tps = statistics.median(r["tok_s"])
            label = f"provider {dtype}" + (f" (= {r['variant']}, the default)" if dtype == "auto" else "")
            quality = "" if dtype == "auto" else f"  ppl {r['ppl']:.2f} ({(r['ppl'] / base_ppl - 1) * 100:+.1f}% vs bf16)"
            print(f"  {label:<32} {tps:6.1f} tok/s  x{tps / raw:.2f}{quality}  threads {r['threads']}"
                  f"  load {r['load'][0]:.1f} s, then {r['load'][1]:.2f} s")
        raw_context = statistics.median(results["bfloat16"]["raw_context"])
        print(f"deep in the context (a ~1,900-token prompt, {CONTEXT_TOKENS} new tokens, decode tok/s):")
        print(f"  {'raw bf16 model.generate':<32} {raw_context:6.1f} tok/s  x1.00")
        for dtype in (*VARIANTS, "auto"):
            tps = statistics.median(results[dtype]["context"])
            print(f"  {'provider ' + dtype:<32} {tps:6.1f} tok/s  x{tps / raw_context:.2f}")
        plain, lens = statistics.median(results["auto"]["tok_s"]), statistics.median(results["auto"]["lens"])
        print(f"  {'default with logprobs (K = 5)':<32} {lens:6.1f} tok/s  x{lens / plain:.2f} of the default without "
              "(target >= 0.90)")
        print("greedy answers (24 tokens):")
        for i, question in enumerate(QUESTIONS):
            print(f"  {question}")
            for dtype in VARIANTS:
                print(f"    {dtype:>9}: {results[dtype]['answers'][i][:90]!r}")
        bench_adapters(root, tokens, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-anchor", action="store_true", help="skip llama.cpp and the CLI")
    ap.add_argument("--no-ask", action="store_true", help="skip the CLI runs next to llama.cpp")
    ap.add_argument("--anchor-only", action="store_true", help="only llama.cpp against the app (a few minutes)")
    ap.add_argument("--schema", action="store_true", help="only tok/s with a JSON Schema against without")
    args = ap.parse_args()
    if args.schema:
        with tempfile.TemporaryDirectory() as tmp:
            bench_schema(Path(tmp), args.tokens, args.rounds)
        return
    print(f"CPU cores: {os.cpu_count()}, load average: {load()} (other work on the machine skews figures)")
    if not args.anchor_only:
        other_sections(args.tokens, args.rounds)
    if not args.no_anchor:
        from benchmarks.local_anchor import bench_anchor

        bench_anchor(args.tokens, args.rounds, not args.no_ask)
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
