"""``usage``: request, token and cost totals from the usage ledger."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from app.cli.common import EXIT_OK, output_path, run_with_services
from app.core.errors import ConfigError

if TYPE_CHECKING:
    from app.core.services import Services
    from app.core.usage import UsageTotals


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``usage`` subcommand."""
    p = sub.add_parser(
        "usage", help="usage and cost totals", description="Totals from the usage ledger."
    )
    p.add_argument(
        "--by",
        choices=("model", "day"),
        help="break the totals down by model or by day (last 30 days)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--export-csv",
        metavar="PATH",
        help="also write every ledger row to PATH as CSV (no keys: endpoints without credentials)",
    )
    p.set_defaults(func=run_usage)


def totals_dict(t: UsageTotals) -> dict[str, Any]:
    """JSON-friendly totals (cost as a float of the exact decimal sum)."""
    return {
        "requests": t.requests,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "total_tokens": t.total_tokens,
        "cost_usd": float(t.cost_usd),
        "estimated_requests": t.estimated_requests,
        "unknown_cost_requests": t.unknown_cost_requests,
        "avg_ttft_s": t.avg_ttft_s,
        "avg_tokens_per_s": t.avg_tokens_per_s,
    }


def _row(label: str, t: UsageTotals, width: int) -> str:
    unknown = f"  ({t.unknown_cost_requests} without a price)" if t.unknown_cost_requests else ""
    return (
        f"{label:<{width}}  {t.requests:>6}  {t.prompt_tokens:>10}  {t.completion_tokens:>10}  "
        f"${t.cost_usd:>12.6f}{unknown}"
    )


def run_usage(args: argparse.Namespace) -> int:
    """Run ``usage``; return the exit code."""
    csv_path = output_path(args.export_csv, "--export-csv") if args.export_csv else None  # before anything runs

    async def body(services: Services) -> tuple[UsageTotals, list[tuple[str, UsageTotals]]]:
        ledger = services.ledger
        if args.by == "model":
            rows = list(ledger.totals_by_model().items())
        elif args.by == "day":
            rows = ledger.totals_by_day(30)
        else:
            rows = []
        if csv_path is not None:
            try:
                written = ledger.export_csv(csv_path)
            except OSError as exc:
                raise ConfigError(f"Could not write {args.export_csv}: {exc.strerror or exc}.",
                                  hint="Give a path in a folder you can write to.") from exc  # fmt: skip
            sys.stderr.write(f"wrote {written} rows to {args.export_csv}\n")
        return ledger.totals(), rows

    total, rows = run_with_services(body)
    if args.json:
        payload: dict[str, Any] = {"total": totals_dict(total)}
        if args.by:
            payload["by_" + args.by] = {k: totals_dict(v) for k, v in rows}
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        width = max([5, *(len(k) for k, _ in rows)])
        lines = [
            f"{'':<{width}}  {'reqs':>6}  {'prompt':>10}  {'completion':>10}  {'cost (USD)':>13}"
        ]
        lines += [_row(k, v, width) for k, v in rows]
        lines.append(_row("total", total, width))
        if total.estimated_requests:
            lines.append(f"{total.estimated_requests} request(s) have estimated token counts.")
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return EXIT_OK
