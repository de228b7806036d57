"""One self-contained GPU check of the local provider's CUDA path (bf16), < 3 minutes.

Run on a GPU machine from the repository root:

    python benchmarks/gpu_check.py PATH [--device cuda] [--tokens 256]

PATH is the bundled SmolLM2's safetensors conversion cache (a folder with config.json,
model.safetensors, tokenizer files), or a .gguf file (converted first; needs ``gguf``).
Make the folder here with ``python benchmarks/gpu_check.py --export DIR``.

It prints which packages are missing, then: load time; a greedy answer to "What is the
capital of France?" (must contain Paris); tokens/s of raw ``model.generate`` and of the
provider's stream on the same model for N new tokens, with the default (dynamic) KV cache
and with ``cache_implementation="static"``. ``--device cpu --tokens 16`` is a dry run.
Exit status: 0 all good, 1 wrong answer, 2 missing packages / no GPU / bad path.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REQUIRED = ("torch", "transformers", "safetensors", "huggingface_hub", "tokenizers", "pydantic")
OPTIONAL = {"gguf": "only to read a .gguf file", "accelerate": "not needed", "peft": "not needed here"}
PROMPT = "What is the capital of France?"
LONG = "Write a long, detailed story about a dragon who learns to bake bread."


def check_packages() -> bool:
    """Print versions / what is missing; False when a required package is missing."""
    import importlib.metadata as md

    ok = True
    print(f"python {platform.python_version()} on {platform.machine()}")
    for name in REQUIRED + tuple(OPTIONAL):
        found = importlib.util.find_spec(name) is not None
        try:
            version = md.version(name.replace("_", "-")) if found else ""
        except md.PackageNotFoundError:
            version = "?"
        note = "" if found or name in REQUIRED else f"  ({OPTIONAL[name]})"
        print(f"  {name:<16} {version or 'MISSING'}{note}")
        ok &= found or name not in REQUIRED
    if not ok:
        print("Install the missing packages (pip install <wheel files>) and run again.")
    return ok


def export(target: Path) -> None:
    """Write the bundled model's safetensors cache folder to ``target`` (run on the dev machine)."""
    from app.core.paths import AppPaths
    from app.providers.bundled import bundled_gguf_path
    from app.providers.local_loading import gguf_folder

    folder, cached = gguf_folder(bundled_gguf_path(), AppPaths.default().ensure().cache_dir)
    shutil.copytree(folder, target, dirs_exist_ok=True)
    import torch
    from safetensors.torch import load_file, save_file

    weights = target / "model.safetensors"  # bf16 halves the copy (the GPU runs bf16 anyway)
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(str(weights)).items()}, str(weights), metadata={"format": "pt"})
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"{'copied' if cached else 'converted and copied'} {folder} -> {target} ({size:.0f} MB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", help="safetensors model folder or .gguf file")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--budget-s", type=float, default=170.0, help="skip later stages past this many seconds")
    ap.add_argument("--export", metavar="DIR", help="write the bundled model's cache folder to DIR and exit")
    args = ap.parse_args()
    started = time.perf_counter()
    if not check_packages():
        return 2
    if args.export:
        export(Path(args.export))
        return 0
    if not args.path:
        ap.error("give the model folder (or .gguf); make one with --export DIR")
    path = Path(args.path).resolve()
    if not path.exists():
        print(f"no model at {path}")
        return 2
    import torch

    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
          + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: use --device cpu for a dry run")
        return 2

    import tempfile

    from app.core.events import TextDelta, UsageReport
    from app.core.paths import AppPaths
    from app.core.provider import ProviderContext
    from app.core.settings import LocalModelSettings, Settings
    from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
    from app.providers.local_prompt import prompt_ids
    from app.providers.transformers import LocalProvider

    home = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    settings = Settings(local=LocalModelSettings(device=args.device, dtype=args.dtype))  # type: ignore[arg-type]
    ctx = ProviderContext(settings=settings, secrets=None, paths=AppPaths(home / "c", home / "d", home / "cache").ensure())  # type: ignore[arg-type]
    provider = LocalProvider(ctx)
    model_name = str(path)

    first_token: list[float] = []  # seconds to the first TextDelta of the last stream

    async def stream(text: str, tokens: int, extras: dict[str, Any]) -> tuple[str, int, float]:
        req = GenerationRequest(ModelRef("local", model_name), (ChatMessage("user", text),),
                                GenerationParams(temperature=0.0, max_tokens=tokens, extras=extras))
        parts: list[str] = []
        n = 0
        first_token.clear()
        t0 = time.perf_counter()
        async for e in provider.stream(req):
            if isinstance(e, TextDelta):
                if not parts:
                    first_token.append(time.perf_counter() - t0)
                parts.append(e.text)
            elif isinstance(e, UsageReport):
                n = e.completion_tokens
        return "".join(parts), n, time.perf_counter() - t0

    def raw(tokens: int, extras: dict[str, Any]) -> tuple[int, float]:
        def job() -> tuple[int, float]:
            loaded = provider._runtime().loaded
            assert loaded is not None
            ids = torch.tensor([prompt_ids(loaded.tokenizer, (ChatMessage("user", LONG),))], device=loaded.model.device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                                            do_sample=False, temperature=None, top_p=None, top_k=None,
                                            pad_token_id=loaded.tokenizer.eos_token_id, **extras)
            n = len(out[0].tolist()) - ids.shape[1]
            return n, time.perf_counter() - t0

        return provider.worker.call(job)

    ok = True
    try:
        t0 = time.perf_counter()
        info = asyncio.run(provider.load(model_name))
        loaded = provider.worker.call(lambda: provider._runtime().loaded)
        print(f"loaded {info.display_name} on {loaded.device} as {loaded.dtype} in {time.perf_counter() - t0:.1f} s")
        answer, _, _ = asyncio.run(stream(PROMPT, 30, {}))
        ok = "Paris" in answer
        print(f"greedy answer: {answer!r} -> {'PASS' if ok else 'FAIL (no Paris)'}")
        for label, extras in (("dynamic cache", {}), ("static cache", {"cache_implementation": "static"})):
            if time.perf_counter() - started > args.budget_s:
                print(f"{label}: skipped (time budget)")
                continue
            t1 = time.perf_counter()
            raw(args.tokens, extras)  # warm-up (the static cache compiles here)
            warm = time.perf_counter() - t1
            n, dt = raw(args.tokens, extras)
            _, m, dt2 = asyncio.run(stream(LONG, args.tokens, extras))
            print(f"{label:<14} raw generate {n / dt:6.1f} tok/s | provider stream {m / dt2:6.1f} tok/s | "
                  f"ratio {(m / dt2) / (n / dt):.2f} | {n} tokens | warm-up {warm:.1f} s")
            if first_token and m > 1:  # split the provider's time: fixed start vs per-token decode
                ttft = first_token[0]
                print(f"{'':<14} provider: first token after {ttft * 1000:.0f} ms, then "
                      f"{(m - 1) / (dt2 - ttft):.1f} tok/s")
    finally:
        ctx.extra.pop("model_worker").close()  # type: ignore[union-attr]
        shutil.rmtree(home, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
