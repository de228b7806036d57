"""Measure the start-up time of an installed app to its first shown window.

    python packaging/measure_startup.py [--runs 5] -- llm-playground

Runs the command with ``LLM_PLAYGROUND_STARTUP_PROBE=1`` (the app prints ``STARTUP_SHOWN
<unix time>`` once the main window is shown, then exits) offscreen, in a temporary app home,
and prints each run's time from process start to the shown window, and the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def measure(command: list[str], runs: int) -> list[tuple[float, float | None]]:
    """Seconds from spawning ``command`` to its ``STARTUP_SHOWN`` time (the window is on
    screen) and to its ``READY`` time (widgets built, services attached; None if not printed)."""
    times: list[tuple[float, float | None]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="llm-playground-startup-") as home:
            env = dict(os.environ, LLM_PLAYGROUND_STARTUP_PROBE="1", LLM_PLAYGROUND_HOME=home)
            env.setdefault("QT_QPA_PLATFORM", "offscreen")
            started = time.time()
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            shown = [ln for ln in proc.stdout.splitlines() if ln.startswith("STARTUP_SHOWN ")]
            if proc.returncode != 0 or not shown:
                raise SystemExit(
                    f"no STARTUP_SHOWN line (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                )
            ready = [ln for ln in proc.stdout.splitlines() if ln.startswith("READY ")]
            ready_s = float(ready[0].split()[1]) - started if ready else None
            times.append((float(shown[0].split()[1]) - started, ready_s))
    return times


def main(argv: list[str]) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    times = measure(args.command, args.runs)
    shown = [t[0] for t in times]
    print("window shown: " + " ".join(f"{t:.2f}s" for t in shown))
    print(
        f"median start-up to first window: {statistics.median(shown):.2f}s ({' '.join(args.command)})"
    )
    ready = [t[1] for t in times if t[1] is not None]
    if ready:
        print(
            f"median start-up to ready (widgets built, services attached): {statistics.median(ready):.2f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
