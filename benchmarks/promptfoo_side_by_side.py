"""Run promptfoo's own example configs (tests/fixtures/promptfoo_examples/*) with the app's
``grid`` and compare each cell's verdict, and each prompt x provider's totals (summed score,
pass and assertion counts, named scores, derived metrics), with promptfoo's, against one deterministic
loopback server (tests/support/promptfoo_examples.py) that both reach through
``OPENAI_BASE_URL``.

    python -m benchmarks.promptfoo_side_by_side                 # app vs the recorded verdicts
    python -m benchmarks.promptfoo_side_by_side --promptfoo /tmp/pf/node_modules/.bin/promptfoo
                                                                # rerun promptfoo and record anew

With ``--promptfoo`` each example is copied to a temporary folder (promptfoo writes its
``outputPath`` there), run with ``promptfoo eval --no-cache --output results.json``
(telemetry and update checks off, a throwaway config dir) and its verdicts are written to
the example's promptfoo_verdicts.json, its column totals to promptfoo_columns.json. Prints a
table: cells, agreeing cells, columns, agreeing columns, and each difference. Exit 1 when a
cell or a column differs.
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
    COLUMNS,
    EXAMPLES_DIR,
    VERDICTS,
    column_differences,
    column_key,
    differences,
    examples,
    key,
    promptfoo_columns,
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


def run_promptfoo(promptfoo: str, name: str, env: dict[str, str], tmp: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """promptfoo's verdicts and column totals for one example (run on a copy of its folder)."""
    work = tmp / name
    shutil.copytree(EXAMPLES_DIR / name, work, ignore=shutil.ignore_patterns(VERDICTS, COLUMNS))
    out = tmp / f"{name}.json"
    proc = subprocess.run([promptfoo, "eval", "-c", "promptfooconfig.yaml", "--no-cache", "--output", str(out)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    if not out.exists():
        raise SystemExit(f"promptfoo failed on {name} (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    results = json.loads(out.read_text(encoding="utf-8"))
    return promptfoo_verdicts(results), promptfoo_columns(results)


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def run_app(name: str, env: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The app's cells and prompt x column totals for one example (``grid --json``), or
    ([], [], why) when it rejects it."""
    config = EXAMPLES_DIR / name / "promptfooconfig.yaml"
    proc = subprocess.run([sys.executable, "-m", "app", "grid", str(config), "--json"], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    data = json.loads(last) if last.startswith("{") else {}
    if "cells" not in data:
        return [], [], str(data.get("error") or (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])
    return data["cells"], data["summary"]["prompt_columns"], ""


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
            verdicts_file, columns_file = EXAMPLES_DIR / name / VERDICTS, EXAMPLES_DIR / name / COLUMNS
            if args.promptfoo:
                recorded, columns = run_promptfoo(args.promptfoo, name, env, Path(tmp))
                _write(verdicts_file, recorded)
                _write(columns_file, columns)
            else:
                recorded = json.loads(verdicts_file.read_text(encoding="utf-8"))
                columns = json.loads(columns_file.read_text(encoding="utf-8"))
            cells, app_columns, rejected = run_app(name, env)
            diffs = {(0, 0, "grid"): [f"the app rejects it: {rejected}"]} if rejected else differences(cells, recorded)
            col_diffs = {} if rejected else column_differences(app_columns, columns)
            agree = 0 if rejected else sum(1 for c in recorded if key(c) not in diffs)
            col_agree = 0 if rejected else sum(1 for c in columns if column_key(c) not in col_diffs)
            rows.append((name, len(recorded), sum(1 for c in recorded if c["pass"]), agree, len(columns), col_agree))
            problems += [f"{name}: prompt {k[0]} test {k[1]} {k[2]}: {'; '.join(d)}" for k, d in diffs.items()]
            problems += [f"{name}: column prompt {k[0]} {k[1]}: {'; '.join(d)}" for k, d in col_diffs.items()]
    width = max(len(r[0]) for r in rows)
    head = ("cells", "promptfoo passes", "agreeing cells", "columns", "agreeing columns")
    print(f"{'example':<{width}}  " + "  ".join(head))
    for name, *figures in [*rows, ("total", *(sum(r[i] for r in rows) for i in range(1, 6)))]:
        print(f"{name:<{width}}  " + "  ".join(f"{n:>{len(h)}}" for n, h in zip(figures, head, strict=True)))
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
