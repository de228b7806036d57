"""LoRA costs with the bundled SmolLM2 on CPU, all measured in this run:

- time to validate + load an r=16 adapter (q/k/v/o projections, made on the fly with
  ``init_lora_weights=False`` and saved) through the provider;
- time to switch between two loaded adapters (the request path: ``apply_request_adapters``);
- generation tokens/s with the base model, one adapter unmerged, and the same adapter merged
  into the weights (peft ``merge_adapter``; not on the quantized fast path), each as a ratio
  to the base.

Usage: python benchmarks/bench_lora.py [--tokens 128] [--dtype auto|bfloat16] [--threads 1]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_local import LONG, close, make, stream_once  # noqa: E402


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



def activate(provider: Any, paths: dict[str, Path], weights: dict[str, float]) -> None:
    """Make exactly ``weights`` (adapter name -> scale; {} = the base model) active, the way a
    request with those adapters does it (on the model worker)."""
    from app.core.types import AdapterSpec

    specs = [AdapterSpec(str(paths[name]), scale, name) for name, scale in weights.items()]
    provider.worker.call(lambda: provider._runtime().apply_request_adapters(specs))

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--dtype", default="auto", help="auto (the CPU default: the quantized fast path), float32 or bfloat16")
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
        paths = {"first": a, "second": b}

        loads = []
        for path, name in ((a, "first"), (b, "second")):
            start = time.perf_counter()
            asyncio.run(provider.load_adapter(str(path), name))
            loads.append(time.perf_counter() - start)
        print(f"load r=16 adapter (validate + peft): first {loads[0] * 1000:.0f} ms (wraps the model), second {loads[1] * 1000:.0f} ms")

        switches = []
        for i in range(10):
            start = time.perf_counter()
            activate(provider, paths, {"first" if i % 2 else "second": 1.0})
            switches.append(time.perf_counter() - start)
        print(f"switch between loaded adapters: median {statistics.median(switches) * 1000:.1f} ms (10 switches)")

        peft = provider.worker.call(lambda: provider._runtime().adapters.peft)  # type: ignore[union-attr]
        fast = provider.worker.call(lambda: provider._runtime().loaded.fast is not None)  # type: ignore[union-attr]
        speeds: dict[str, list[float]] = {"base": [], "unmerged": [], "merged": [], "cat of two": []}
        if fast:  # quantized weights cannot take a merge; the lean step runs adapters unmerged
            del speeds["merged"]
        texts: dict[str, str] = {}
        merge_ms: list[float] = []

        def merge() -> None:
            t0 = time.perf_counter()
            peft.merge_adapter()
            merge_ms.append((time.perf_counter() - t0) * 1000)

        asyncio.run(stream_once(provider, LONG, 4))  # warm-up
        for _ in range(REPEATS):  # interleaved, so background load hits every variant alike
            for label in speeds:
                if label == "base":
                    activate(provider, paths, {})
                elif label == "cat of two":
                    activate(provider, paths, {"first": 0.5, "second": 0.5})
                else:
                    activate(provider, paths, {"first": 1.0})
                    if label == "merged":
                        provider.worker.call(merge)
                text, n, dt = asyncio.run(stream_once(provider, LONG, args.tokens))
                if label == "merged":
                    provider.worker.call(peft.unmerge_adapter)
                speeds[label].append(n / dt)
                texts[label] = text
        med = {k: statistics.median(v) for k, v in speeds.items()}
        print(f"generation ({args.tokens} tokens, greedy, median of {REPEATS}, interleaved): "
              + ", ".join(f"{k} {v:.1f} tok/s (x{v / med['base']:.2f})" for k, v in med.items()))
        if merge_ms:
            print(f"merge took {statistics.median(merge_ms):.0f} ms; merged text == unmerged text: {texts['merged'] == texts['unmerged']}")
        close(ctx)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")




if __name__ == "__main__":
    main()
