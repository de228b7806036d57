"""Exports of a grid run: JSON (configuration, every cell, column summaries), CSV (one line
per cell) and a self-contained HTML report (inline styles, no scripts, no links out).
Every string goes through :func:`app.core.errors.redact`: keys never reach an export."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError, redact
from app.core.grid import review_export as rx
from app.core.grid.review import RunReview
from app.core.grid.runner import GridRunner
from app.core.history_export import redacted

FORMATS = (".json", ".csv", ".html")
CSV_COLUMNS = ("row", "col", "test", "description", "prompt", "vars", "provider", "label", "status", "pass",
               "text", "tool_calls", "asserts", "error", "prompt_tokens", "completion_tokens", "estimated", "cost_usd",
               "ttft_s", "latency_s", "tokens_per_s", "score", "named_scores", *rx.CSV_COLUMNS)  # fmt: skip





def _cells(runner: GridRunner, review: RunReview | None = None) -> list[dict[str, Any]]:
    out = []
    for key in sorted(runner.cells):
        cell = runner.cells[key]
        data: dict[str, Any] = {"row": cell.row, "col": cell.col, "status": cell.status}
        data.update(runner.cell_dict(cell))
        data.update(rx.cell_fields(runner, rx.review_of(runner, review), *key))
        out.append(data)
    return out


def _columns(runner: GridRunner, review: RunReview | None = None) -> list[dict[str, Any]]:
    cols = []
    for col, variant in enumerate(runner.config.variants):
        s = runner.column_summary(col)
        cols.append({"label": variant.title, "provider": variant.model, "cells": s.cells, "passed": s.passed,
                     "failed": s.failed, "errors": s.errors, "pass_rate": s.pass_rate, "cost_usd": s.cost_json,
                     "unpriced_cells": s.unknown_cost,
                     "mean_latency_s": s.mean_latency_s, "p95_latency_s": s.p95_latency_s,
                     **runner.column_metrics(col).to_dict(),
                     **rx.column_fields(runner, rx.review_of(runner, review), col)})  # fmt: skip
    return cols


def export_json(runner: GridRunner, review: RunReview | None = None) -> dict[str, Any]:
    """The run as a JSON-ready dict (with its human ``review``: reviews, votes, win rates)."""
    data = {"format": "llm-playground.grid-run", "version": 1, "run_id": runner.run_id,
            "description": runner.config.description, "config": runner.config.to_dict(),
            "cells": _cells(runner, review), "columns": _columns(runner, review), "summary": runner.summary_dict(),
            "review": rx.run_fields(runner, rx.review_of(runner, review))}  # fmt: skip
    return dict(redacted(data))


def export_csv(runner: GridRunner, review: RunReview | None = None) -> str:
    """One CSV line per cell (its review, the verdict that counts and who gave it last)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for cell in _cells(runner, review):
        usage = cell["usage"] or {}
        asserts = "; ".join(f"{'PASS' if a['pass'] else 'FAIL'} {a['type']}: {a['reason']}" for a in cell["asserts"])
        values = [cell["row"], cell["col"], cell["test"], cell["description"], cell["prompt"],
                  json.dumps(cell["vars"], ensure_ascii=False, default=str), cell["provider"], cell["label"],
                  cell["status"], cell["pass"], cell["text"],
                  json.dumps(cell["tool_calls"], ensure_ascii=False) if cell["tool_calls"] else None, asserts, cell["error"], usage.get("prompt_tokens"),
                  usage.get("completion_tokens"), usage.get("estimated"), cell["cost_usd"], cell["ttft_s"],
                  cell["latency_s"], cell["tokens_per_s"], cell["score"],
                  json.dumps(cell["named_scores"]) if cell["named_scores"] else None,
                  *rx.csv_values(runner, rx.review_of(runner, review), cell["row"], cell["col"])]  # fmt: skip
        writer.writerow(["" if v is None else redact(str(v)) for v in values])
    return buf.getvalue()


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2430;background:#fff}
h1{font-size:20px;margin:0 0 4px}.muted{color:#687387}table{border-collapse:collapse;margin-top:16px;width:100%}
th,td{border:1px solid #d9dee7;vertical-align:top;padding:8px;text-align:left}th{background:#f3f5f9}
td.case{background:#fafbfc;min-width:140px}.text{white-space:pre-wrap;max-height:18em;overflow:auto;margin:4px 0}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600}
.pass{background:#e3f4e6;color:#1e6b2c}.fail{background:#fde7e4;color:#a3261a}.error{background:#fff1d6;color:#8a5a00}
.stopped{background:#eceff3;color:#4d5668}ul{margin:4px 0;padding-left:18px}.fig{font-size:12px;color:#687387}
tfoot td{background:#f3f5f9;font-size:12px}.calls{font-family:monospace;font-size:12px;color:#4d5668}pre.config{background:#f6f8fa;padding:12px;overflow:auto}
"""


def _badge(cell: dict[str, Any]) -> str:
    if cell["status"] in ("failed", "invalid"):
        return '<span class="badge error">ERROR</span>'
    if cell["status"] == "cancelled":
        return '<span class="badge stopped">STOPPED</span>'
    if cell["pass"] is None:
        return '<span class="badge stopped">NOT RUN</span>'
    if not cell["asserts"]:  # nothing was checked: done, as the grid says, not passed
        return '<span class="badge stopped">DONE</span>'
    return '<span class="badge pass">PASS</span>' if cell["pass"] else '<span class="badge fail">FAIL</span>'


def export_html(runner: GridRunner, review: RunReview | None = None) -> str:
    """A self-contained HTML report: the grid, each cell's answer, checks, figures and human
    review, the column summaries, the win rates and the configuration."""
    review = rx.review_of(runner, review)

    def e(value: object) -> str:
        return html.escape(redact(str(value)))

    cells = {(c["row"], c["col"]): c for c in _cells(runner)}
    variants = runner.config.variants
    summary = runner.summary()
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           f"<title>{e(runner.config.description or 'Workbench run')}</title><style>{_CSS}{rx.CSS}</style></head><body>",
           f"<h1>{e(runner.config.description or 'Workbench run')}</h1>",
           f"<div class='muted'>run {e(runner.run_id)} · {summary.cells} cells · {summary.sentence()}</div>",
           "<table><thead><tr><th>Case</th>"]  # fmt: skip
    out += [f"<th>{e(v.title)}<div class='fig'>{e(v.model)}</div></th>" for v in variants]
    out.append("</tr></thead><tbody>")
    for row in runner.rows:
        variables = "".join(f"<div class='fig'>{e(k)} = {e(v)}</div>" for k, v in row.vars.items())
        out.append(f"<tr><td class='case'><b>{e(row.label)}</b>{variables}</td>")
        for col in range(len(variants)):
            cell = cells.get((row.index, col))
            if cell is None:
                out.append("<td class='muted'>—</td>")
                continue
            checks = "".join(f"<li>{'✔' if a['pass'] else '✘'} {e(a['type'])}: {e(a['reason'])}</li>" for a in cell["asserts"])
            figures = runner.cells[(row.index, col)].figures_line()
            calls = runner.cells[(row.index, col)].calls_line()
            calls_html = f"<div class='text calls'>{e(calls)}</div>" if calls else ""
            error = f"<div class='badge error'>{e(cell['error'])}</div>" if cell["error"] else ""
            out.append(f"<td>{_badge(cell)}<div class='text'>{e(cell['text'])}</div>{calls_html}{error}"
                       f"{'<ul>' + checks + '</ul>' if checks else ''}<div class='fig'>{e(figures)}</div>"
                       f"{rx.html_cell(runner, review, row.index, col)}</td>")  # fmt: skip
        out.append("</tr>")
    out.append("</tbody><tfoot><tr><td>Summary</td>")
    out += [f"<td>{e(rx.html_footer(runner, review, col))}</td>" for col in range(len(variants))]
    cost = summary.cost_text
    config = json.dumps(redacted(runner.config.to_dict()), indent=2, ensure_ascii=False, default=str)
    out.append(f"</tr></tfoot></table><p class='muted'>Total cost {e(cost)}.</p>{rx.html_section(runner, review)}"
               f"<details><summary>Configuration</summary><pre class='config'>{html.escape(config)}</pre></details>"
               "</body></html>\n")  # fmt: skip
    return "".join(out)


def check_export_path(path: Path) -> None:
    """Raise ConfigError when ``path`` has no export format's suffix."""
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"Cannot export to '{path.name}': the file name must end in .json, .csv or .html.",
                          hint="Pick one of those formats, e.g. -o results.html.")  # fmt: skip


def write_export(runner: GridRunner, path: Path, review: RunReview | None = None) -> None:
    """Write the run (and its human ``review``) to ``path`` in the format its suffix names
    (raises ConfigError)."""
    check_export_path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(export_json(runner, review), indent=2, ensure_ascii=False, default=str) + "\n"
    elif suffix == ".csv":
        text = export_csv(runner, review)
    else:
        text = export_html(runner, review)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="" if suffix == ".csv" else None)
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror}.", hint="Pick another folder or file name.") from exc
