"""Local generation speed with the bundled SmolLM2 (CPU): provider vs raw ``generate``.

Prints, all measured in this run:
- the bundled model's first load (GGUF -> safetensors conversion) and later loads, in seconds;
- tokens/s of plain ``model.generate`` and of the provider's stream on the same model object
  with the same settings (greedy, N new tokens), and their ratio (target >= 0.95);
- variants: float32 vs bfloat16 weights, int8 dynamic quantisation (per tensor, and per
  channel = the ``dtype: int8`` setting), static KV cache, 1 vs 2 torch threads - each with
  an answer-quality check ("Paris"); ``--quality`` adds five prompts per dtype.

Usage: python benchmarks/bench_local.py [--tokens 256] [--repeats 3] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.events import TextDelta, UsageReport  # noqa: E402
from app.core.paths import AppPaths  # noqa: E402
from app.core.provider import ProviderContext  # noqa: E402
from app.core.settings import LocalModelSettings, Settings  # noqa: E402
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef  # noqa: E402
from app.providers.transformers import LocalProvider  # noqa: E402

LONG = (ChatMessage("user", "Write a long, detailed story about a dragon who learns to bake bread."),)
PARIS = (ChatMessage("user", "What is the capital of France?"),)


def make(cache: Path, dtype: str, threads: int) -> tuple[LocalProvider, ProviderContext]:
    paths = AppPaths(cache / "config", cache / "data", cache / "cache").ensure()
    settings = Settings(local=LocalModelSettings(device="cpu", dtype=dtype, threads=threads))  # type: ignore[arg-type]
    ctx = ProviderContext(settings=settings, secrets=None, paths=paths)  # type: ignore[arg-type]
    return LocalProvider(ctx), ctx


def close(ctx: ProviderContext) -> None:
    worker = ctx.extra.pop("model_worker", None)
    if worker is not None:
        worker.close()  # type: ignore[attr-defined]


async def stream_once(provider: LocalProvider, msgs: Any, tokens: int, extras: dict[str, Any] | None = None) -> tuple[str, int, float]:
    req = GenerationRequest(ModelRef("local", "smollm2"), msgs, GenerationParams(temperature=0.0, max_tokens=tokens, extras=extras or {}))
    start = time.perf_counter()
    parts: list[str] = []
    n = 0
    async for e in provider.stream(req):
        if isinstance(e, TextDelta):
            parts.append(e.text)
        elif isinstance(e, UsageReport):
            n = e.completion_tokens
    return "".join(parts), n, time.perf_counter() - start


def raw_once(provider: LocalProvider, msgs: Any, tokens: int, extras: dict[str, Any] | None = None) -> tuple[int, float]:
    import torch

    from app.providers.local_generation import prompt_ids

    def job() -> tuple[int, float]:
        loaded = provider._runtime().loaded
        assert loaded is not None
        ids = torch.tensor([prompt_ids(loaded.tokenizer, msgs)])
        start = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                                        do_sample=False, temperature=None, top_p=None, top_k=None,
                                        pad_token_id=loaded.tokenizer.eos_token_id, **(extras or {}))
        return out.shape[1] - ids.shape[1], time.perf_counter() - start

    return provider.worker.call(job)


def bench_loads(root: Path) -> None:
    times = []
    for i in range(4):
        provider, ctx = make(root, "float32", 1)
        start = time.perf_counter()
        asyncio.run(provider.load("smollm2"))
        times.append(time.perf_counter() - start)
        close(ctx)
        print(f"  load {i + 1}: {times[-1]:.2f} s" + ("  (GGUF parse + conversion)" if i == 0 else "  (safetensors cache)"), flush=True)
    print(f"bundled load: first {times[0]:.1f} s, later median {statistics.median(times[1:]):.2f} s "
          f"({times[0] / statistics.median(times[1:]):.0f}x faster)")


def bench_ratio(root: Path, dtype: str, threads: int, tokens: int, repeats: int) -> float:
    provider, ctx = make(root, dtype, threads)
    asyncio.run(provider.load("smollm2"))
    raw_once(provider, LONG, 8)  # warm-up
    raw, prov = [], []
    for _ in range(repeats):
        n, dt = raw_once(provider, LONG, tokens)
        raw.append(n / dt)
        _, m, dt2 = asyncio.run(stream_once(provider, LONG, tokens))
        prov.append(m / dt2)
    close(ctx)
    r, p = statistics.median(raw), statistics.median(prov)
    print(f"{dtype:>9} threads={threads}: raw generate {r:5.1f} tok/s, provider stream {p:5.1f} tok/s, "
          f"ratio {p / r:.3f}  ({n} tokens, median of {repeats})", flush=True)
    return r


def quality(provider: LocalProvider) -> str:
    text, _, _ = asyncio.run(stream_once(provider, PARIS, 30))
    return ("OK  " if "Paris" in text else "BAD ") + repr(text[:50])


def bench_variants(root: Path, tokens: int, base_tps: float) -> None:
    import torch

    for label, dtype, threads, extras, quant in [
        ("float32", "float32", 1, None, ""),
        ("bfloat16", "bfloat16", 1, None, ""),
        ("int8 dynamic per-tensor", "float32", 1, None, "tensor"),
        ("int8 per-channel (dtype=int8)", "int8", 1, None, ""),
        ("float32 + static cache", "float32", 1, {"cache_implementation": "static"}, ""),
        ("bfloat16, 2 threads", "bfloat16", 2, None, ""),
    ]:
        provider, ctx = make(root, dtype, threads)
        asyncio.run(provider.load("smollm2"))
        if quant:
            def q(provider: LocalProvider = provider) -> None:
                from torch.ao.quantization import quantize_dynamic

                rt = provider._runtime()
                rt.loaded.model = quantize_dynamic(rt.loaded.model, {torch.nn.Linear}, dtype=torch.qint8)
            provider.worker.call(q)
        asyncio.run(stream_once(provider, LONG, 8, extras))  # warm-up
        _, n, dt = asyncio.run(stream_once(provider, LONG, tokens, extras))
        tps = n / dt
        print(f"  {label:<26} {tps:5.1f} tok/s  x{tps / base_tps:.2f} vs fp32 raw  quality {quality(provider)}", flush=True)
        close(ctx)


QUALITY_PROMPTS = (
    "What is the capital of France?",
    "What is 12 plus 7?",
    "Name three primary colors.",
    "Translate 'good morning' into Spanish.",
    "Who wrote Romeo and Juliet?",
)


def bench_quality(root: Path) -> None:
    """Greedy answers (40 tokens) of each dtype to the same five prompts, side by side."""
    answers: dict[str, list[str]] = {}
    for dtype in ("float32", "bfloat16", "int8"):
        provider, ctx = make(root, dtype, 1)
        answers[dtype] = [asyncio.run(stream_once(provider, (ChatMessage("user", p),), 40))[0] for p in QUALITY_PROMPTS]
        close(ctx)
    for i, prompt in enumerate(QUALITY_PROMPTS):
        print(f"  {prompt}")
        for dtype, texts in answers.items():
            same = "" if dtype == "float32" else ("  (= float32)" if texts[i] == answers["float32"][i] else "  (differs)")
            print(f"    {dtype:>8}: {texts[i][:80]!r}{same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="skip the variants")
    ap.add_argument("--quality", action="store_true", help="also compare answers of each dtype")
    args = ap.parse_args()
    print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f} (other work on the machine skews figures)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_loads(root)
        base = bench_ratio(root, "float32", args.threads, args.tokens, args.repeats)
        bench_ratio(root, "bfloat16", args.threads, args.tokens, args.repeats)
        if not args.quick:
            print(f"variants ({args.tokens} new tokens, greedy, provider stream):")
            bench_variants(root, args.tokens, base)
        if args.quality:
            print("answer quality (greedy, 40 tokens):")
            bench_quality(root)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
