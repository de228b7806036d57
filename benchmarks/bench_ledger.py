"""Cost of the usage ledger's data safety, measured against baselines in the same run.

    .venv/bin/python -m benchmarks.bench_ledger [--tokens 20000] [--runs 7] [--rows 100000]

- generation: ``Engine.run`` on ``mock:tokens`` (as fast as possible) with the real ledger
  (row opened at the start, progress at most ~1/s, closed at the end) against the same
  engine without a ledger; median total time ratio and the time-to-first-token difference.
- open: ``UsageLedger(path)`` on a ledger of ``--rows`` rows (WAL, ``PRAGMA quick_check``,
  the interrupted-rows sweep) against a bare ``sqlite3.connect`` + one read of the same file.
- tick: :meth:`RowProgress.tick` per streamed token against an empty loop.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from app.core.engine import Engine
from app.core.paths import AppPaths
from app.core.pricing import PriceTable
from app.core.provider import ProviderContext, ProviderRegistry
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import Settings
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.core.usage import RowFigures, RowProgress, UsageLedger


async def _generation(tokens: int, runs: int, home: Path) -> dict[str, list[tuple[float, float]]]:
    paths = AppPaths.under(home).ensure()
    ctx = ProviderContext(Settings(), SecretStore(MemoryKeyring(), environ={}), paths)
    registry = ProviderRegistry(ctx)
    ledger = UsageLedger(paths.usage_db)
    engines = {"no ledger": Engine(registry, PriceTable.load()), "ledger": Engine(registry, PriceTable.load(), ledger)}
    request = GenerationRequest(ModelRef("mock", f"tokens?n={tokens}"), (ChatMessage("user", "go"),),
                                GenerationParams(max_tokens=None))  # fmt: skip
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
    names = list(engines)
    for name in names:  # warm-up
        await engines[name].run(request)
    for i in range(runs):
        for name in names[i % 2 :] + names[: i % 2]:
            start = time.perf_counter()
            result = await engines[name].run(request)
            out[name].append((result.ttft_s or 0.0, time.perf_counter() - start))
    await registry.aclose()
    ledger.close()
    return out


def _open(rows: int, runs: int, folder: Path) -> tuple[float, float]:
    path = folder / "big.sqlite3"
    led = UsageLedger(path)
    db = sqlite3.connect(path)
    db.execute("BEGIN")
    cols = "started_at, provider, model, endpoint, prompt_tokens, completion_tokens, cost_usd, duration_s, finish_reason, conversation_id"
    db.executemany(f"INSERT INTO generations ({cols}) VALUES (?, 'openai', 'gpt-4o-mini', 'OpenAI', 120, 60, '0.000054', 1.2, 'stop', ?)",
                   [(1_700_000_000.0 + i, f"c{i % 300}") for i in range(rows)])  # fmt: skip
    db.execute("COMMIT")
    db.close()
    led.close()
    bare, ours = [], []
    for _ in range(runs):
        t = time.perf_counter()
        con = sqlite3.connect(path)
        con.execute("PRAGMA user_version").fetchone()
        con.close()
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        UsageLedger(path).close()
        ours.append(time.perf_counter() - t)
    return statistics.median(bare), statistics.median(ours)


class _Sink:
    def progress(self, row_id: int | None, figures: RowFigures) -> None:
        return None


def _tick(n: int) -> tuple[float, float]:
    """Per-token cost inside a running loop (as in the engine)."""

    async def measure() -> tuple[float, float]:
        live = RowProgress(_Sink(), 1, lambda: RowFigures(0))
        t = time.perf_counter()
        for _ in range(n):
            pass
        empty = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(n):
            live.tick()
        ticks = time.perf_counter() - t
        live.cancel()
        return empty, ticks

    return asyncio.run(measure())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rows", type=int, default=100000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        gen = asyncio.run(_generation(args.tokens, args.runs, Path(tmp)))
        base_ttft = statistics.median(r[0] for r in gen["no ledger"])
        base_total = statistics.median(r[1] for r in gen["no ledger"])
        print(f"generation: mock, {args.tokens} tokens, {args.runs} runs each (medians)")
        for name, rows in gen.items():
            ttft = statistics.median(r[0] for r in rows)
            total = statistics.median(r[1] for r in rows)
            print(f"  {name:<10} ttft {ttft * 1000:7.2f} ms ({(ttft - base_ttft) * 1000:+.2f})  "
                  f"total {total * 1000:8.1f} ms  x{total / base_total:.3f}")  # fmt: skip
        bare, ours = _open(args.rows, args.runs, Path(tmp))
        print(f"open: {args.rows} rows: bare connect+read {bare * 1000:.2f} ms, UsageLedger {ours * 1000:.2f} ms "
              f"(x{ours / bare:.1f}; +{(ours - bare) * 1000:.1f} ms)")  # fmt: skip
    empty, ticks = _tick(1_000_000)
    print(f"tick: {(ticks - empty) / 1e6 * 1e9:.0f} ns per token over an empty loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
