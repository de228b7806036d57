"""Run promptfoo's own example configs (tests/fixtures/promptfoo_examples/*) with the app's
``grid`` and compare each cell's verdict with promptfoo's, against one deterministic
loopback server (tests/support/promptfoo_examples.py) that both reach through
``OPENAI_BASE_URL``.

    python -m benchmarks.promptfoo_side_by_side                 # app vs the recorded verdicts
    python -m benchmarks.promptfoo_side_by_side --promptfoo /tmp/pf/node_modules/.bin/promptfoo
                                                                # rerun promptfoo and record anew

With ``--promptfoo`` each example is copied to a temporary folder (promptfoo writes its
``outputPath`` there), run with ``promptfoo eval --no-cache --output results.json``
(telemetry and update checks off, a throwaway config dir) and its verdicts are written to
the example's promptfoo_verdicts.json. Prints a table: cells, agreeing cells, and each
difference. Exit 1 when a cell differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.promptfoo_examples import (
    EXAMPLES_DIR,
    VERDICTS,
    differences,
    examples,
    key,
    promptfoo_verdicts,
    server,
)

KEY = "sk-loopback-side-by-side-0123456789"


def _env(base_url: str, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PROMPTFOO_"))}
    env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=KEY, LLM_PLAYGROUND_HOME=os.path.join(home, "app"),
               PYTHON_KEYRING_BACKEND="app.core.secrets.MemoryKeyring", PROMPTFOO_DISABLE_TELEMETRY="1",
               PROMPTFOO_DISABLE_UPDATE="1", PROMPTFOO_CONFIG_DIR=os.path.join(home, "promptfoo"),
               QT_QPA_PLATFORM="offscreen")  # fmt: skip
    return env


def run_promptfoo(promptfoo: str, name: str, env: dict[str, str], tmp: Path) -> list[dict[str, Any]]:
    """promptfoo's verdicts for one example (run on a copy of its folder)."""
    work = tmp / name
    shutil.copytree(EXAMPLES_DIR / name, work, ignore=shutil.ignore_patterns(VERDICTS))
    out = tmp / f"{name}.json"
    proc = subprocess.run([promptfoo, "eval", "-c", "promptfooconfig.yaml", "--no-cache", "--output", str(out)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    if not out.exists():
        raise SystemExit(f"promptfoo failed on {name} (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return promptfoo_verdicts(json.loads(out.read_text(encoding="utf-8")))


def run_app(name: str, env: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
    """The app's cells for one example (``grid --json``), or ([], why) when it rejects it."""
    config = EXAMPLES_DIR / name / "promptfooconfig.yaml"
    proc = subprocess.run([sys.executable, "-m", "app", "grid", str(config), "--json"], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    data = json.loads(last) if last.startswith("{") else {}
    if "cells" not in data:
        return [], str(data.get("error") or (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])
    return data["cells"], ""


def main(argv: list[str] | None = None) -> int:
    """Compare (and with --promptfoo, record) every example; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--promptfoo", metavar="PATH", help="promptfoo's CLI: rerun it and record its verdicts")
    parser.add_argument("names", nargs="*", help="examples to run (default: all)")
    args = parser.parse_args(argv)
    rows, problems = [], []
    with tempfile.TemporaryDirectory() as tmp, server() as srv:
        env = _env(srv.base_url, tmp)
        for name in args.names or examples():
            verdicts_file = EXAMPLES_DIR / name / VERDICTS
            if args.promptfoo:
                recorded = run_promptfoo(args.promptfoo, name, env, Path(tmp))
                verdicts_file.write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            else:
                recorded = json.loads(verdicts_file.read_text(encoding="utf-8"))
            cells, rejected = run_app(name, env)
            diffs = {(0, 0, "grid"): [f"the app rejects it: {rejected}"]} if rejected else differences(cells, recorded)
            agree = 0 if rejected else sum(1 for c in recorded if key(c) not in diffs)
            rows.append((name, len(recorded), sum(1 for c in recorded if c["pass"]), agree))
            problems += [f"{name}: prompt {k[0]} test {k[1]} {k[2]}: {'; '.join(d)}" for k, d in diffs.items()]
    width = max(len(r[0]) for r in rows)
    print(f"{'example':<{width}}  cells  promptfoo passes  agreeing cells")
    for name, cells_n, passed, agree in rows:
        print(f"{name:<{width}}  {cells_n:>5}  {passed:>16}  {agree:>14}")
    total = sum(r[1] for r in rows)
    print(f"{'total':<{width}}  {total:>5}  {sum(r[2] for r in rows):>16}  {sum(r[3] for r in rows):>14}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
