"""Prefix reuse on the bundled model (dtype auto: the lean step), in one process.

Prints time to first token (TTFT) for:
- the same ~1,440-token prompt again (target <= 0.1 s), and that prompt plus three words;
- a 10-turn conversation, ~150 new tokens per turn (target: turn 10 <= 1.5x turn 1);
- a branch from token ~300 of an answer (the request's ``prefix``; target <= 0.2 s);
with the prompt tokens served from the cache, beside the same request with reuse off; then
decode tok/s with reuse on against off (alternating rounds; target >= 0.98x) and the cache's
memory against its bound. Every warm answer is compared with the cold one (greedy: equal).

Usage: python -m benchmarks.bench_prefix [--turns 10] [--tokens 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
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
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef  # noqa: E402
from app.providers.local_prefix_cache import MB  # noqa: E402
from app.providers.transformers import LocalProvider  # noqa: E402
from benchmarks.check_prefix_reuse import LONG_PROMPT, TURNS  # noqa: E402


class Bench:
    """One provider; ``on`` switches reuse (prefix_cache_entries 4 / 0)."""

    def __init__(self, root: Path) -> None:
        settings = Settings(local=LocalModelSettings(device="cpu", dtype="auto"))
        self.ctx = ProviderContext(settings=settings, secrets=None, paths=AppPaths.under(root).ensure())  # type: ignore[arg-type]
        self.provider = LocalProvider(self.ctx)
        self.peak = 0  # the most bytes the prefix cache held after a request with reuse on

    def ask(self, messages: tuple[ChatMessage, ...], tokens: int, on: bool, prefix: str = "") -> dict[str, Any]:
        """One greedy request: text, ttft, cached and prompt tokens, decode tok/s."""
        self.ctx.settings.local.prefix_cache_entries = 4 if on else 0
        req = GenerationRequest(ModelRef("local", "smollm2"), messages, GenerationParams(temperature=0.0, max_tokens=tokens),
                                prefix=prefix)  # fmt: skip

        async def go() -> dict[str, Any]:
            start = time.perf_counter()
            first = last = None
            parts: list[str] = []
            usage = UsageReport(0, 0)
            async for e in self.provider.stream(req):
                if isinstance(e, TextDelta) and e.text:
                    last = time.perf_counter()
                    first = first or last
                    parts.append(e.text)
                elif isinstance(e, UsageReport):
                    usage = e
            ttft = (first or time.perf_counter()) - start
            rate = (usage.completion_tokens - 1) / (last - first) if first and last and last > first else None
            return {"text": "".join(parts), "ttft": ttft, "cached": usage.cached_prompt_tokens,
                    "prompt": usage.prompt_tokens, "tok_s": rate}  # fmt: skip

        result = asyncio.run(go())
        if on:
            self.peak = max(self.peak, self.provider.worker.call(lambda: self.provider._runtime().prefix_cache.nbytes))
        return result

    def runtime(self) -> Any:
        """The model worker's runtime (its prefix cache)."""
        return self.provider.worker.call(lambda: self.provider._runtime())


def row(name: str, warm: dict[str, Any], cold: dict[str, Any], target: str = "") -> None:
    """One printed line: warm vs cold TTFT, cached tokens, equal text."""
    same = "equal" if warm["text"] == cold["text"] else "DIFFERENT"
    print(f"  {name:<30} prompt {warm['prompt']:>5}  cached {warm['cached']:>5}  TTFT {warm['ttft']:6.3f} s"
          f"  (reuse off {cold['ttft']:6.3f} s)  {same}  {target}")  # fmt: skip


def main() -> None:
    """Run every row and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bench = Bench(Path(tempfile.mkdtemp(prefix="bench-prefix-")))
    long = (ChatMessage("user", LONG_PROMPT),)
    bench.ask((ChatMessage("user", "Hi"),), 4, True)  # load the model
    print("prefix reuse on the bundled model (greedy; 'reuse off' is the same request with the cache off):")
    cold = bench.ask(long, 1, False)
    bench.ask(long, 1, True)
    row("same prompt again", bench.ask(long, 1, True), cold, "(target <= 0.1 s)")
    plus = (ChatMessage("user", LONG_PROMPT + " Be brief please."),)
    row("same prompt + 3 words", bench.ask(plus, 1, True), bench.ask(plus, 1, False))
    history: tuple[ChatMessage, ...] = ()
    first = None
    for i in range(args.turns):
        history += (ChatMessage("user", TURNS[i % len(TURNS)]),)
        warm = bench.ask(history, args.tokens, True)
        off = bench.ask(history, args.tokens, False)
        first = first or warm
        row(f"chat turn {i + 1}", warm, off, f"({warm['ttft'] / first['ttft']:.2f}x turn 1; target turn {args.turns} <= 1.5x)")
        history += (ChatMessage("assistant", warm["text"]),)
    story = (ChatMessage("user", "Write a long story about a dragon who learns to bake bread."),)
    answer = bench.ask(story, 400, True)
    loaded = bench.runtime().loaded
    ids = loaded.tokenizer(answer["text"], add_special_tokens=False)["input_ids"]
    prefix = loaded.tokenizer.decode(ids[:300], skip_special_tokens=True)
    row("branch at answer token 300", bench.ask(story, 20, True, prefix), bench.ask(story, 20, False, prefix), "(target <= 0.2 s)")
    on: list[float] = []
    off_rates: list[float] = []
    decode = (ChatMessage("user", "Write a long, detailed story about a dragon who learns to bake bread."),)
    for _ in range(args.rounds):
        on.append(bench.ask(decode, 128, True)["tok_s"])
        off_rates.append(bench.ask(decode, 128, False)["tok_s"])
    ratio = statistics.median(on) / statistics.median(off_rates)
    print(f"  decode tok/s: reuse on {statistics.median(on):.1f}, off {statistics.median(off_rates):.1f}: {ratio:.3f}x (target >= 0.98x)")
    bound = bench.ctx.settings.local.prefix_cache_mb
    print(f"  cache memory: at most {bench.peak / MB:.1f} MB after a request (bound {bound} MB, "
          f"{LocalModelSettings().prefix_cache_entries} entries; within: {bench.peak <= bound * MB}); "
          f"the lean step's own static cache: {(loaded.fast.k_cache.nbytes * 2) / MB:.1f} MB")  # fmt: skip
    worker = bench.ctx.extra.get("model_worker")
    if worker is not None:
        worker.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
