"""LoRA costs with the bundled SmolLM2 on CPU, all measured in this run:

- time to validate + load an r=16 adapter (q/k/v/o projections, made on the fly with
  ``init_lora_weights=False`` and saved) through the provider;
- time to switch between two loaded adapters (``set_active_adapters``);
- generation tokens/s with the base model, one adapter unmerged, and the same adapter merged
  into the weights (peft ``merge_adapter``), each as a ratio to the base.

Usage: python benchmarks/bench_lora.py [--tokens 128] [--dtype bfloat16] [--threads 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_local import LONG, close, make, stream_once  # noqa: E402

from app.providers.transformers import LocalProvider  # noqa: E402


def make_adapter(folder: str, out: Path, seed: int) -> Path:
    """An r=16 LoRA on q/k/v/o with small non-zero weights (a plausible trained adapter)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    torch.manual_seed(seed)
    cfg = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.01)
    model.save_pretrained(out)
    return out


REPEATS = 3


def tps(provider: LocalProvider, tokens: int) -> tuple[float, str]:
    """Median tokens/s of REPEATS greedy generations (after a warm-up) and the text."""
    asyncio.run(stream_once(provider, LONG, 4))  # warm-up
    speeds = []
    for _ in range(REPEATS):
        text, n, dt = asyncio.run(stream_once(provider, LONG, tokens))
        speeds.append(n / dt)
    return statistics.median(speeds), text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16", help="float32 or bfloat16 (the CPU default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    global REPEATS
    REPEATS = args.repeats
    print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}; dtype {args.dtype}, threads {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        provider, ctx = make(root, args.dtype, args.threads)
        asyncio.run(provider.load("smollm2"))
        folder = provider.worker.call(lambda: provider._runtime().loaded.folder)
        a = make_adapter(folder, root / "adapter_a", 1)
        b = make_adapter(folder, root / "adapter_b", 2)

        loads = []
        for path, name in ((a, "first"), (b, "second")):
            start = time.perf_counter()
            asyncio.run(provider.load_adapter(str(path), name))
            loads.append(time.perf_counter() - start)
        print(f"load r=16 adapter (validate + peft): first {loads[0] * 1000:.0f} ms (wraps the model), second {loads[1] * 1000:.0f} ms")

        switches = []
        for i in range(10):
            start = time.perf_counter()
            asyncio.run(provider.set_active_adapters({"first" if i % 2 else "second": 1.0}))
            switches.append(time.perf_counter() - start)
        print(f"switch between loaded adapters: median {statistics.median(switches) * 1000:.1f} ms (10 switches)")

        asyncio.run(provider.set_active_adapters({}))
        base, _ = tps(provider, args.tokens)
        asyncio.run(provider.set_active_adapters({"first": 1.0}))
        unmerged, text_unmerged = tps(provider, args.tokens)

        def merge() -> float:
            start = time.perf_counter()
            provider._runtime().adapters.peft.merge_adapter()  # type: ignore[union-attr]
            return time.perf_counter() - start

        merge_s = provider.worker.call(merge)
        merged, text_merged = tps(provider, args.tokens)
        provider.worker.call(lambda: provider._runtime().adapters.peft.unmerge_adapter())  # type: ignore[union-attr]
        asyncio.run(provider.set_active_adapters({"first": 0.5, "second": 0.5}))
        combo, _ = tps(provider, args.tokens)
        print(f"generation ({args.tokens} tokens, greedy, median of {REPEATS}): base {base:.1f} tok/s; adapter unmerged {unmerged:.1f} "
              f"(x{unmerged / base:.2f}); merged {merged:.1f} (x{merged / base:.2f}, merge took {merge_s * 1000:.0f} ms, "
              f"same text as unmerged: {text_merged == text_unmerged}); cat of two {combo:.1f} (x{combo / base:.2f})")
        close(ctx)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")




if __name__ == "__main__":
    main()
