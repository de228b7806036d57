"""Prefix reuse on the bundled model (dtype auto: the lean step), in one process.

Prints time to first token (TTFT) for:
- the same ~1,440-token prompt again (target <= 0.1 s), and that prompt plus three words;
- a 10-turn conversation, ~150 new tokens per turn (target: turn 10 <= 1.5x turn 1);
- a branch from token ~300 of an answer (the request's ``prefix``; target <= 0.2 s);
with the prompt tokens served from the cache, beside the same request with reuse off; then
decode tok/s with reuse on against off (alternating rounds; target >= 0.98x) and the cache's
memory against its bound. Every warm answer is compared with the cold one (greedy: equal).

A user reads an answer before the next turn or a branch: in those rows the benchmark waits
for the model worker to be idle (``ModelWorker.wait_idle``: the idle warm-up of the answer's
rows is done) before the timed request. The "at once" figures are the same requests sent
straight after the previous answer, with no idle time (a second provider; every provider is
idle before a timed request, so no warm-up competes for the cores).

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
    """One provider with its own model worker; ``entries`` 0 is reuse off."""

    def __init__(self, root: Path, entries: int) -> None:
        settings = Settings(local=LocalModelSettings(device="cpu", dtype="auto", prefix_cache_entries=entries))
        self.ctx = ProviderContext(settings=settings, secrets=None, paths=AppPaths.under(root).ensure())  # type: ignore[arg-type]
        self.provider = LocalProvider(self.ctx)
        self.peak = 0  # the most bytes the prefix cache held after a request

    def ask(self, messages: tuple[ChatMessage, ...], tokens: int, prefix: str = "") -> dict[str, Any]:
        """One greedy request: text, ttft, cached and prompt tokens, decode tok/s."""
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
        self.peak = max(self.peak, self.provider.worker.call(lambda: self.provider._runtime().prefix_cache.nbytes))
        return result

    def runtime(self) -> Any:
        """The model worker's runtime (its prefix cache)."""
        return self.provider.worker.call(lambda: self.provider._runtime())

    def forget(self) -> None:
        """Drop the kept entries: Regenerate set the earlier, warmed copy of the answer aside
        there, which an answer that comes at once would not have."""
        self.provider.worker.call(lambda: self.provider._runtime().prefix_cache.clear())

    def close(self) -> None:
        """Stop the worker."""
        self.provider.worker.close()


class Benches:
    """Reuse on, waiting for idle (``idle``); reuse on, asked at once (``now``); reuse off."""

    def __init__(self) -> None:
        self.idle, self.now, self.off = (Bench(Path(tempfile.mkdtemp(prefix="bench-prefix-")), n) for n in (4, 4, 0))
        self.waited = 0.0  # seconds spent waiting for the warm-ups

    def settle(self) -> None:
        """Wait until every worker is idle (its warm-up done): the user read the answer."""
        start = time.perf_counter()
        for bench in (self.idle, self.now, self.off):
            if not bench.provider.worker.wait_idle(300):
                raise SystemExit("the model worker did not become idle within 300 s")
        self.waited += time.perf_counter() - start

    def ask(self, bench: Bench, messages: tuple[ChatMessage, ...], tokens: int, prefix: str = "") -> dict[str, Any]:
        """``bench.ask`` after every worker became idle."""
        self.settle()
        return bench.ask(messages, tokens, prefix)


def row(name: str, warm: dict[str, Any], cold: dict[str, Any], target: str = "", now: dict[str, Any] | None = None) -> None:
    """One printed line: warm vs cold TTFT, cached tokens, equal text (and the at-once request)."""
    same = "equal" if warm["text"] == cold["text"] and (now is None or now["text"] == cold["text"]) else "DIFFERENT"
    also = "" if now is None else f"  at once {now['ttft']:6.3f} s (cached {now['cached']:>5})"
    print(f"  {name:<28} prompt {warm['prompt']:>5}  cached {warm['cached']:>5}  TTFT {warm['ttft']:6.3f} s{also}"
          f"  (reuse off {cold['ttft']:6.3f} s)  {same}  {target}")  # fmt: skip


def main() -> None:
    """Run every row and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    b = Benches()
    long = (ChatMessage("user", LONG_PROMPT),)
    for bench in (b.idle, b.now, b.off):
        bench.ask((ChatMessage("user", "Hi"),), 4)  # load the model
    print("prefix reuse on the bundled model (greedy; 'reuse off' is the same request with the cache off).")
    print("TTFT: after the worker became idle (wait_idle: the user reads the answer first); 'at once': the request")
    print("sent straight after the previous answer, with no idle time.")
    cold = b.ask(b.off, long, 1)
    b.ask(b.idle, long, 1)
    row("same prompt again", b.ask(b.idle, long, 1), cold, "(target <= 0.1 s)")
    plus = (ChatMessage("user", LONG_PROMPT + " Be brief please."),)
    row("same prompt + 3 words", b.ask(b.idle, plus, 1), b.ask(b.off, plus, 1))
    history: tuple[ChatMessage, ...] = ()
    before: tuple[ChatMessage, ...] = ()
    first = first_now = None
    for i in range(args.turns):
        history += (ChatMessage("user", TURNS[i % len(TURNS)]),)
        warm = b.ask(b.idle, history, args.tokens)
        b.settle()
        if before:
            b.now.ask(before, args.tokens)  # the previous turn's answer, then at once this turn
            b.now.forget()
        now = b.now.ask(history, args.tokens)
        off = b.ask(b.off, history, args.tokens)
        first, first_now = first or warm, first_now or now
        row(f"chat turn {i + 1}", warm, off, f"({warm['ttft'] / first['ttft']:.2f}x turn 1, at once "
            f"{now['ttft'] / first_now['ttft']:.2f}x; target turn {args.turns} <= 1.5x)", now)  # fmt: skip
        before = history
        history += (ChatMessage("assistant", warm["text"]),)
    story = (ChatMessage("user", "Write a long story about a dragon who learns to bake bread."),)
    answer = b.ask(b.idle, story, 400)
    loaded = b.idle.runtime().loaded
    ids = loaded.tokenizer(answer["text"], add_special_tokens=False)["input_ids"]
    prefix = loaded.tokenizer.decode(ids[:300], skip_special_tokens=True)
    warm = b.ask(b.idle, story, 20, prefix)
    b.ask(b.now, story, 400)
    b.now.forget()
    now = b.now.ask(story, 20, prefix)
    row("branch at answer token 300", warm, b.ask(b.off, story, 20, prefix), "(target <= 0.2 s)", now)
    on: list[float] = []
    off_rates: list[float] = []
    decode = (ChatMessage("user", "Write a long, detailed story about a dragon who learns to bake bread."),)
    local = b.idle.ctx.settings.local  # one runtime (one thread tuner), reuse switched on and off
    for _ in range(args.rounds):
        local.prefix_cache_entries = 4
        on.append(b.ask(b.idle, decode, 128)["tok_s"])
        local.prefix_cache_entries = 0
        off_rates.append(b.ask(b.idle, decode, 128)["tok_s"])
    local.prefix_cache_entries = 4
    ratio = statistics.median(on) / statistics.median(off_rates)
    print(f"  decode tok/s: reuse on {statistics.median(on):.1f}, off {statistics.median(off_rates):.1f}: {ratio:.3f}x (target >= 0.98x)")
    bound = b.idle.ctx.settings.local.prefix_cache_mb
    peak = max(b.idle.peak, b.now.peak)
    fast = loaded.fast
    saved = fast.saved
    aside = 0 if saved is None else saved.k.nbytes + saved.v.nbytes + saved.logits.nbytes
    print(f"  cache memory: at most {peak / MB:.1f} MB after a request (bound {bound} MB, "
          f"{LocalModelSettings().prefix_cache_entries} entries; within: {peak <= bound * MB}); "
          f"the lean step's own static cache: {(fast.k_cache.nbytes * 2) / MB:.1f} MB, "
          f"the last prompt's tail set aside: {aside / MB:.2f} MB")  # fmt: skip
    print(f"  waited {b.waited:.1f} s in all for idle workers (the warm-ups) before the timed requests")
    for bench in (b.idle, b.now, b.off):
        bench.close()


if __name__ == "__main__":
    main()
