"""Start-up: process start -> main window shown, against a bare QApplication + QMainWindow
script measured in the same run; plus resident memory at idle.

Each side runs ``--runs`` times (default 9) as a fresh process; the start time is taken just
before the process is spawned, the end is the time the process prints once its window is
shown (``LLM_PLAYGROUND_STARTUP_PROBE=1``). Target: median ratio <= 1.5. The launcher shows
the themed main window frame first, then builds its widgets (reported as "built") and then
attaches settings, keyring, databases and the backend (reported as "usable").

    .venv/bin/python benchmarks/bench_startup.py [--runs 5]

``--screenshot`` times whole processes instead: ``python -m app --screenshot PATH`` (start,
model listing, a 0.2 s settle, grab, shutdown) against a bare script that shows its window and
saves its grab.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BARE = """
import sys, time
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow(); w.setWindowTitle("bare"); w.resize(1360, 860); w.show()
app.processEvents()
print(f"STARTUP_SHOWN {time.time():.6f}", flush=True)
"""


BARE_GRAB = """
import sys
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow(); w.setWindowTitle("bare"); w.resize(1360, 860); w.show()
app.processEvents()
sys.exit(0 if w.grab().save(sys.argv[1], "PNG") else 1)
"""


def _env(home: str, probe: str | None) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LLM_PLAYGROUND_HOME=home)
    env.pop("OPENAI_API_KEY", None)
    # An installed app runs from compiled bytecode (pip compiles it; a checkout writes it on
    # its first run): with PYTHONDONTWRITEBYTECODE set, every run compiled ~65 app modules
    # from source (~130 ms) that the bare side, whose PySide6 is compiled, never paid.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if probe:
        env["LLM_PLAYGROUND_STARTUP_PROBE"] = probe
    return env


def _one(cmd: list[str], env: dict[str, str]) -> tuple[float, dict[str, str]]:
    t0 = time.time()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{out.stderr}")
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    for key in ("READY", "BUILT"):
        if key in lines:
            lines[key.lower() + "_s"] = str(float(lines[key]) - t0)
    return float(lines["STARTUP_SHOWN"]) - t0, lines


def _whole(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.time()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{out.stderr}")
    return time.time() - t0


def screenshot(runs: int) -> int:
    """Whole ``python -m app --screenshot`` processes against a bare grab, interleaved."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as home:
        env, shot = _env(home, None), str(Path(home) / "shot.png")
        app_cmd, bare_cmd = [sys.executable, "-m", "app", "--screenshot", shot], [sys.executable, "-c", BARE_GRAB, shot]
        _whole(app_cmd, env), _whole(bare_cmd, env)  # warm-up, bytecode
        app_t, bare_t = [], []
        for _ in range(runs):
            app_t.append(_whole(app_cmd, env))
            bare_t.append(_whole(bare_cmd, env))
    a, b = statistics.median(app_t), statistics.median(bare_t)
    print(f"app   --screenshot process: median {a * 1000:7.1f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in app_t)})")
    print(f"bare  grab process:         median {b * 1000:7.1f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in bare_t)})")
    print(f"ratio app/bare: {a / b:.2f}x")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--screenshot", action="store_true", help="time whole --screenshot processes instead")
    args = ap.parse_args()
    if args.screenshot:
        return screenshot(args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as home:
        env = _env(home, "1")
        _one([sys.executable, "-m", "app"], env)  # warm the OS file cache for both sides, write bytecode
        _one([sys.executable, "-c", BARE], env)
        app_t, bare_t, ready_t, built_t, heavy = [], [], [], [], set()
        for _ in range(args.runs):  # interleaved, so load changes hit both sides alike
            t, lines = _one([sys.executable, "-m", "app"], env)
            app_t.append(t)
            ready_t.append(float(lines["ready_s"]))
            built_t.append(float(lines["built_s"]))
            heavy.add(lines.get("HEAVY", "?"))
            bare_t.append(_one([sys.executable, "-c", BARE], env)[0])
        _, idle = _one([sys.executable, "-m", "app"], _env(home, "idle"))
    a, b = statistics.median(app_t), statistics.median(bare_t)
    print(f"app   window shown: median {a * 1000:7.1f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in app_t)})")
    print(f"bare  window shown: median {b * 1000:7.1f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in bare_t)})")
    print(f"ratio app/bare: {a / b:.2f}x (target <= 1.5x)")
    w = statistics.median(built_t)
    print(f"app   all widgets built and painted: median {w * 1000:7.1f} ms ({w / b:.2f}x bare)")
    r = statistics.median(ready_t)
    print(f"app   services attached (usable): median {r * 1000:7.1f} ms ({r / b:.2f}x bare)")
    print(f"heavy modules imported when shown: {', '.join(sorted(heavy))}")
    print(f"idle RSS after 3 s (model list loaded): {idle.get('IDLE_RSS_MB', '?')} MiB; "
          f"heavy modules then: {idle.get('IDLE_HEAVY', '?')}")
    return 0 if a / b <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
