"""Prefix reuse on the bundled model through ``LLMModel``, in one process (issue 21's check).

A ~1,440-token prompt twice, then the prompt plus a few words, then a multi-turn chat, all
greedy: prints each time to first token with the prompt tokens that came from the cache, and
checks the targets (the same prompt again <= 0.1 s; the chat's last turn <= 1.5x its first)
and that every text equals a cold run's (the same requests with the prefix cache off).
Exits 1 when a check fails. Before each request it waits for the model worker to be idle
(``ModelWorker.wait_idle``: the answer's rows were warmed up), as a user reading the answer.

Usage: python -m benchmarks.check_prefix_reuse [--turns 6] [--tokens 150]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.paths import HOME_ENV  # noqa: E402
from app.core.types import ChatMessage, GenerationParams, GenerationRequest  # noqa: E402

EVAL_TEXT = Path(__file__).resolve().parent / "data" / "eval_text.txt"
LONG_PROMPT = (EVAL_TEXT.read_text() + "\n") * 3 + "Summarise the text above in one sentence."
TURNS = ("Tell me a story about a lighthouse keeper.", "What happened next?", "Describe the storm.",
         "Who came to help?", "How did it end?", "Write a short poem about it.", "Now a haiku.",
         "What is the moral?", "Give the story a title.", "Summarise it in two sentences.")  # fmt: skip


def run_all(llm: Any, turns: int, tokens: int) -> list[tuple[str, str, float, int, int]]:
    """(step, text, ttft_s, prompt tokens, cached tokens) of every request of the scenario."""
    out: list[tuple[str, str, float, int, int]] = []

    def ask(step: str, messages: tuple[ChatMessage, ...], max_tokens: int) -> str:
        request = GenerationRequest(llm.ref, messages, GenerationParams(temperature=0.0, max_tokens=max_tokens))
        worker = getattr(llm._provider(), "worker", None)
        if worker is not None and not worker.wait_idle(300):
            raise SystemExit("the model worker did not become idle within 300 s")
        result = llm._run(llm.scheduler.run(request))
        out.append((step, result.text, result.ttft_s or 0.0, result.usage.prompt_tokens,
                    result.usage.cached_prompt_tokens))  # fmt: skip
        return str(result.text)

    long = (ChatMessage("user", LONG_PROMPT),)
    ask("long prompt", long, 1)
    ask("long prompt again", long, 1)
    ask("long prompt + 3 words", (ChatMessage("user", LONG_PROMPT + " Be brief please."),), 1)
    history: tuple[ChatMessage, ...] = ()
    for i in range(turns):
        history += (ChatMessage("user", TURNS[i % len(TURNS)]),)
        history += (ChatMessage("assistant", ask(f"chat turn {i + 1}", history, tokens)),)
    return out


def main() -> int:
    """Run the scenario warm (cache on) and cold (cache off); print and check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=150)
    args = parser.parse_args()
    os.environ[HOME_ENV] = tempfile.mkdtemp(prefix="prefix-check-")
    from app.llm import LLMModel

    with LLMModel("smollm2", "local") as llm:
        llm.load_model()
        warm = run_all(llm, args.turns, args.tokens)
        llm.services.settings.local.prefix_cache_entries = 0  # off: nothing reused (nor kept)
        cold = run_all(llm, args.turns, args.tokens)
    failures = []
    print(f"{'step':<22} {'prompt':>6} {'cached':>6} {'TTFT warm':>10} {'TTFT cold':>10}  text equal")
    for (step, text, ttft, prompt, cached), (_, cold_text, cold_ttft, _, _) in zip(warm, cold, strict=True):
        same = text == cold_text
        print(f"{step:<22} {prompt:>6} {cached:>6} {ttft:>9.3f}s {cold_ttft:>9.3f}s  {'yes' if same else 'NO'}")
        if not same:
            failures.append(f"{step}: the text differs from the cold run's")
    again = warm[1][2]
    chat = [row for row in warm if row[0].startswith("chat")]
    ratio = chat[-1][2] / chat[0][2]
    print(f"same prompt again: {again:.3f} s (target <= 0.1 s); chat turn {len(chat)} / turn 1: {ratio:.2f}x (target <= 1.5x)")
    if again > 0.1:
        failures.append(f"the same prompt again took {again:.3f} s")
    if ratio > 1.5:
        failures.append(f"the last chat turn's first token took {ratio:.2f}x the first's")
    for f in failures:
        print("FAIL:", f)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
