"""``grid FILE``: run a grid file (prompts x providers x tests, promptfoo's vocabulary)
headless, through the run scheduler, and keep the run in the Workbench's list of past runs.

Exit codes: 0 every assertion passed, 1 a check failed or a cell errored (100 with
``--exit-code promptfoo``, as promptfoo eval), 2 the file (or an option) is bad - nothing is sent then - and 130 on Ctrl+C (the finished cells are kept,
printed and stored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_PROVIDER, run_with_services, subcommand
from app.cli.grid_output import GridProgress, table
from app.core.errors import InvalidParams
from app.core.grid.config import GridFileError, load_grid
from app.core.grid.export import check_export_path, write_export
from app.core.grid.limits import check_cells
from app.core.grid.model import GridConfig
from app.core.grid.runner import GridRunner, cell_matches
from app.core.grid.store import RunStore, store_path

EXIT_PROMPTFOO_FAILED = 100
"""promptfoo eval's exit code when a test fails (``--exit-code promptfoo``)."""

if TYPE_CHECKING:
    from app.core.services import Services


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``grid`` subcommand."""
    p = subcommand(
        sub, "grid", "run a grid file (prompts x providers x tests) with its assertions",
        "Run a grid file (YAML or JSON in promptfoo's vocabulary: description, prompts, "
        "providers, defaultTest, tests) and print a pass/fail table. Exit 0 when every assertion "
        "passes, 1 when one fails or a cell errors, 2 for a bad file, 130 on Ctrl+C.", run_grid,
    )
    p.add_argument("file", metavar="FILE", help="the grid file (.yaml, .yml or .json)")
    p.add_argument("--json", action="store_true",
                   help='end with one JSON line: {"cells": [...], "summary": {...}} (the table goes to stderr)')  # fmt: skip
    p.add_argument("-o", "--output", metavar="FILE", help="also write the results to FILE (.json, .csv or .html)")
    p.add_argument("--concurrency", type=int, metavar="N",
                   help="requests at once per endpoint (default: the setting, 4)")  # fmt: skip
    p.add_argument("--filter", metavar="TEXT",
                   help="run only the cells whose test (description, variables) or provider (label, id) contains TEXT")  # fmt: skip
    p.add_argument("--repeat", type=int, metavar="N",
                   help="send each cell N times (1-100; as promptfoo's --repeat): mean and spread per cell")  # fmt: skip
    p.add_argument("--exit-code", choices=("app", "promptfoo"), default="app",
                   help="promptfoo: exit 100 when an assertion fails or a cell errors, as promptfoo eval does "
                   "(default: app, exit 1)")  # fmt: skip


def selected(config: GridConfig, needle: str | None) -> list[tuple[int, int]] | None:
    """The cells ``--filter`` keeps (None: all); raises InvalidParams when none match."""
    if not needle:
        return None
    keys = [(row.index, col) for row in config.rows() for col, variant in enumerate(config.variants)
            if cell_matches(row, variant, needle)]  # fmt: skip
    if not keys:
        raise InvalidParams(f"No test or provider matches --filter '{needle}'.",
                            hint="Use part of a test's description or variables, or of a provider's label or id.")  # fmt: skip
    return keys


def stored_key(name: str) -> str | None:
    """The keyring's key ``name`` (for an ``apiKeyEnvar`` that is not set; read only then)."""
    from app.core.secrets import SecretStore

    return SecretStore().get(name)


def run_grid(args: argparse.Namespace) -> int:
    """Run ``grid``; return the exit code."""
    out, err = sys.stdout, sys.stderr
    path = Path(args.file)
    if args.output:
        check_export_path(Path(args.output))
    if args.concurrency is not None and not 1 <= args.concurrency <= 64:
        raise InvalidParams(f"--concurrency must be from 1 to 64 (got {args.concurrency}).", hint="Try --concurrency 4.")
    if args.repeat is not None and not 1 <= args.repeat <= 100:
        raise InvalidParams(f"--repeat must be from 1 to 100 (got {args.repeat}).", hint="Try --repeat 3.")
    config = load_grid(path, stored_key)  # a bad file: GridFileError, exit 2, nothing sent
    if args.repeat is not None:
        config = config.with_(repeat=args.repeat)
        check_cells(len(config.rows()) * len(config.variants), path.name)
    for warning in config.warnings:
        err.write(f"warning: {warning}\n")
    only = selected(config, args.filter)
    holder: list[GridRunner] = []
    progress = GridProgress(err, lambda: holder[0] if holder else None)

    async def body(services: Services) -> tuple[GridRunner, bool]:
        from app.providers.bundled import default_temperature

        if args.concurrency:
            services.settings.max_concurrent_per_endpoint = args.concurrency  # this process only
        store = RunStore(store_path(services.paths.data_dir))
        try:
            runner = GridRunner(services.scheduler, config, sink=store, origin="cli", source=str(path.resolve()),
                                default_temperature=default_temperature, listener=progress.on_cell, only=only)  # fmt: skip
            for warning in runner.warnings():
                err.write(f"warning: {warning}\n")
            problems = runner.problems()
            if problems:
                first = problems[0]
                where = f"{runner.rows[first.row].label} × {config.variants[first.col].title}"
                more = f" ({len(problems) - 1} more cells have problems)" if len(problems) > 1 else ""
                raise GridFileError(f"{path.name}: {where}: {first.error}{more}", hint="Fix the file; nothing was sent.")
            holder.append(runner)
            progress.estimate(await asyncio.to_thread(runner.estimate))
            runner.start()
            interrupted = False
            try:
                await runner.wait()
            except asyncio.CancelledError:  # Ctrl+C: stop the rest, keep what finished
                interrupted = True
                runner.stop()
                await runner.wait()
            return runner, interrupted
        finally:
            store.close()

    try:
        runner, interrupted = run_with_services(body)
    finally:
        progress.clear()
    report = table(runner)
    if args.json:
        err.write(report)
        err.flush()
        cells = [runner.cell_dict(runner.cells[k]) for k in sorted(runner.cells)]
        out.write(json.dumps({"cells": cells, "summary": runner.summary_dict()}, ensure_ascii=False, default=str) + "\n")
    else:
        out.write(report)
    out.flush()
    if args.output:
        write_export(runner, Path(args.output))
        err.write(f"Results written to {args.output}.\n")
    if interrupted:
        err.write("Stopped: the finished cells were kept (they are in the Workbench's past runs).\n")
        return EXIT_INTERRUPTED
    summary = runner.summary()
    if summary.failed == 0 and summary.errors == 0 and summary.cancelled == 0:
        return EXIT_OK
    return EXIT_PROMPTFOO_FAILED if args.exit_code == "promptfoo" else EXIT_PROVIDER
