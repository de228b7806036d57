"""The Workbench's grid against the loopback server: concurrency gain and UI smoothness.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.bench_grid [--repeat 3]

The loopback server (tests/support/openai_server.py, in its own process) streams every answer
as 30 chunks 10 ms apart (~300 ms per answer). The grid is 3 cases x 4 remote variants (four
models on the one endpoint) = 12 cells, run through the real GridRunner and run scheduler:

- headless: the grid's wall time against the sum of its cells' own times (what running the
  cells one after another would take) - the concurrency gain - at the default of 4 requests
  per endpoint and at 12;
- in the window: the real Workbench (offscreen) runs the same grid while a 5 ms QTimer probe
  measures how late the GUI event loop runs (lag = interval - 5 ms), from the first streamed
  cell until the last one ended: p50 / p99 / max, against the same probe on an idle loop for
  the same time (the baseline). Target: p99 <= 16 ms (the transcript's streaming target).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_streaming import LagProbe  # noqa: E402

MODELS = ("gpt-4o-mini", "model-b", "model-c", "model-d")


def start_server(chunks: int, delay: float) -> tuple[subprocess.Popen[str], str]:
    """The loopback server in a child process; returns it and its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.openai_server", "--tokens", str(chunks),
                             "--chunk-delay", str(delay)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def grid(base_url: str) -> Any:
    from app.core.grid.model import GridConfig, Prompt, TestCase, Variant

    return GridConfig(description="bench", prompts=(Prompt("Tell me about {{topic}}"),),
                      variants=tuple(Variant(f"openai:{m}", endpoint=base_url, temperature=0.0) for m in MODELS),
                      tests=tuple(TestCase({"topic": t}) for t in ("cats", "dogs", "birds")))  # fmt: skip


def services() -> Any:
    from app.core.secrets import MemoryKeyring, SecretStore
    from app.core.services import Services

    return Services.create(secrets=SecretStore(backend=MemoryKeyring()))


async def headless(base_url: str, per_endpoint: int) -> tuple[float, float]:
    """(wall, sum of cell times) of one run."""
    from app.core.grid.runner import GridRunner

    svc = services()
    svc.settings.max_concurrent_per_endpoint = per_endpoint
    try:
        runner = GridRunner(svc.scheduler, grid(base_url))
        runner.start()
        await runner.wait()
        assert all(c.status == "done" for c in runner.cells.values()), [c.error for c in runner.cells.values()]
        return runner.wall_s() or 0.0, sum(c.latency_s or 0.0 for c in runner.cells.values())
    finally:
        await svc.aclose()


async def windowed(base_url: str, probe: LagProbe) -> tuple[float, float, float, float]:
    """(wall, p50, p99, max lag) of one run in the Workbench window."""
    from app.ui.backend_manager import BackendManager
    from app.ui.main_window import MainWindow

    svc = services()
    backend = BackendManager(svc, model_id="mock:echo")
    win = MainWindow(svc, backend=backend, restore=False)
    win.show()
    win.show_workbench()
    bench = win._dialogs["workbench"]
    bench.resize(1024, 700)
    bench.load_config(grid(base_url), None)
    await asyncio.sleep(0.3)
    started: list[float] = []

    def on_flush(keys: Any) -> None:
        if not started and any(bench.runner.cells[k].current_text for k in keys):
            started.append(time.perf_counter())
            probe.start()

    bench.model.cells_flushed.connect(on_flush)
    task = bench.run()
    assert task is not None
    await asyncio.wait_for(task, 120)
    probe.stop()
    wall = time.perf_counter() - started[0] if started else 0.0
    assert all(c.status == "done" for c in bench.runner.cells.values())
    p50, p99, mx = probe.summary()
    win.close()
    await bench.aclose()
    await backend.aclose()
    await svc.aclose()
    win.deleteLater()
    await asyncio.sleep(0.05)
    return wall, p50, p99, mx


async def idle(seconds: float, probe: LagProbe) -> tuple[float, float, float]:
    probe.start()
    await asyncio.sleep(seconds)
    probe.stop()
    return probe.summary()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are reported")
    ap.add_argument("--chunks", type=int, default=30)
    ap.add_argument("--chunk-ms", type=float, default=10.0)
    args = ap.parse_args()
    home = tempfile.TemporaryDirectory(prefix="bench-grid-")
    os.environ["LLM_PLAYGROUND_HOME"] = home.name
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)  # type: ignore[attr-defined]
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    proc, base_url = start_server(args.chunks, args.chunk_ms / 1000)
    probe = LagProbe()
    results: dict[str, list[Any]] = {"4": [], "12": [], "window": [], "idle": []}

    async def all_runs() -> None:
        await headless(base_url, 4)  # warm-up (imports, first connections)
        for _ in range(args.repeat):
            results["4"].append(await headless(base_url, 4))
            results["12"].append(await headless(base_url, 12))
            window = await windowed(base_url, probe)
            results["window"].append(window)
            results["idle"].append(await idle(window[0], probe))

    try:
        with loop:
            loop.run_until_complete(all_runs())
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(10)
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    print(f"grid: 3 cases x 4 remote variants = 12 cells, {args.chunks} chunks x {args.chunk_ms:g} ms per answer "
          f"(medians of {args.repeat})")
    for key, label in (("4", "4 per endpoint (default)"), ("12", "12 per endpoint")):
        wall, total = med(results[key], 0), med(results[key], 1)
        print(f"  {label:<26} wall {wall:5.2f} s · sum of cells {total:5.2f} s · concurrency gain {total / wall:4.1f}x")
    w = results["window"]
    i = results["idle"]
    p99, mx = med(w, 2), med(w, 3)
    print(f"  window (Workbench, 1024x700) wall {med(w, 0):5.2f} s · event-loop lag p50 {med(w, 1):.1f} / "
          f"p99 {p99:.1f} / max {mx:.1f} ms · idle loop p99 {med(i, 1):.1f} / max {med(i, 2):.1f} ms")
    ok = p99 <= 16
    print(f"lag p99 {p99:.1f} ms (target <= 16): {'TARGET MET' if ok else 'TARGET MISSED'}")
    home.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
