"""The CLI's streaming path: ``ask`` printing N tokens, at 50k and 200k tokens.

``mock:tokens?n=N`` streams N one-token deltas as fast as the provider can, through the real
CLI (``app.cli.main``: services, engine, ledger row, ``StreamPrinter``), with stdout and
stderr on the null device (a file: the printer writes and flushes every delta, as on a pipe).
Baseline in the same run: a bare loop writing and flushing the same deltas to the same file.
``printer`` is ``StreamPrinter`` alone, fed N deltas. ``--old`` adds the printer as it was
(``printed += text``, quadratic) for reference.

Target: 200k total <= ~4x the 50k total (linear). Each size runs ``--repeat`` times (default
3); the table shows the medians.

    .venv/bin/python -m benchmarks.bench_cli_stream [--sizes 50000,200000] [--repeat 3] [--old]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cli import main as cli_main  # noqa: E402
from app.cli.ask import StreamPrinter  # noqa: E402
from app.core.engine import LiveStats  # noqa: E402
from app.core.events import TextDelta  # noqa: E402


def deltas(n: int) -> list[str]:
    """The mock's ``tokens`` answer, split as it streams it."""
    return ["tok0", *(f" tok{i}" for i in range(1, n))]


@contextlib.contextmanager
def quiet() -> Iterator[TextIO]:
    """stdout and stderr on the null device for the block (yields the stream)."""
    with open(os.devnull, "w", encoding="utf-8") as null:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = null
        try:
            yield null
        finally:
            sys.stdout, sys.stderr = saved


def time_cli(n: int) -> float:
    """``python -m app ask -m mock:tokens?n=N`` in-process."""
    argv = ["ask", "-m", f"mock:tokens?n={n}", "--max-tokens", str(n), "go"]
    with quiet():
        t0 = time.perf_counter()
        code = cli_main(argv)
        elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"ask failed with exit code {code}")
    return elapsed


def time_printer(n: int, factory: Callable[[TextIO, TextIO], object] = StreamPrinter) -> float:
    """The printer alone, fed N deltas."""
    events = [TextDelta(d) for d in deltas(n)]
    stats = LiveStats()
    with quiet() as null:
        printer = factory(null, null)
        t0 = time.perf_counter()
        for event in events:
            printer(event, stats)  # type: ignore[operator]
        return time.perf_counter() - t0


def time_raw(n: int) -> float:
    """Baseline: write and flush each delta to the null device."""
    parts = deltas(n)
    with quiet() as null:
        t0 = time.perf_counter()
        for text in parts:
            null.write(text)
            null.flush()
        return time.perf_counter() - t0


class OldPrinter:
    """The printer's text handling before the fix, for reference: ``printed += text``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.printed = ""

    def __call__(self, event: TextDelta, stats: LiveStats) -> None:
        self.out.write(event.text)
        self.out.flush()
        self.printed += event.text


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="50000,200000", help="token counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", action="store_true", help="also time the old `+=` printer")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    home = tempfile.TemporaryDirectory(prefix="bench-cli-stream-")
    os.environ["LLM_PLAYGROUND_HOME"] = home.name  # a throwaway ledger
    time_cli(1000)  # warm-up: imports, database creation
    columns: dict[str, Callable[[int], float]] = {
        "raw write+flush": time_raw,
        "printer": time_printer,
        "ask (CLI)": time_cli,
    }
    if args.old:
        columns["old printer (+=)"] = lambda n: time_printer(n, OldPrinter)
    table: dict[int, dict[str, float]] = {}
    for n in sizes:
        table[n] = {name: statistics.median(fn(n) for _ in range(args.repeat)) for name, fn in columns.items()}
    print(f"{'tokens':>8}  " + "  ".join(f"{name:>16}" for name in columns) + "  ask/raw")
    for n, row in table.items():
        cells = "  ".join(f"{row[name]:>14.3f} s" for name in columns)
        print(f"{n:>8}  {cells}  {row['ask (CLI)'] / row['raw write+flush']:>6.1f}x")
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        print(f"\n{hi // 1000}k / {lo // 1000}k ({hi / lo:g}x the tokens; linear = {hi / lo:g}x):")
        for name in columns:
            ratio = table[hi][name] / table[lo][name]
            print(f"  {name:<18} {ratio:5.2f}x")
        cli = table[hi]["ask (CLI)"] / table[lo]["ask (CLI)"]
        target = 1.0 * hi / lo
        print(f"\nask: {cli:.2f}x (target <= ~{target:g}x): {'OK' if cli <= target * 1.15 else 'SLOWER THAN LINEAR'}")
    home.cleanup()


if __name__ == "__main__":
    main()
