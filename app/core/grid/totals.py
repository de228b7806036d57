"""A grid's totals per prompt and column, as promptfoo's results JSON gives them per prompt x
provider (``results.prompts[].metrics``): the summed cell scores, the tests passed, failed and
in error, the assertions passed and failed, the named scores (summed as
:func:`~app.core.grid.scoring.column_metrics` sums them) and the derived metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.core.grid.cells import Cell, summarize
from app.core.grid.model import Row, Variant
from app.core.grid.scoring import column_metrics


def _score(cell: Cell) -> float:
    """What a cell adds to promptfoo's ``score``: its grade's, 1 for a cell without
    assertions, 0 for an error."""
    if cell.grade is not None:
        return cell.grade.score
    return 1.0 if cell.status == "done" else 0.0


def totals(cells: Iterable[Cell], derived: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``{score, passed, failed, errors, assert_passed, assert_failed, named_scores (sums),
    named_score_weights, named_score_counts, derived_metrics}`` over ``cells``' ended ones."""
    ended = [c for c in cells if c.ended]
    s = summarize(ended)
    metrics = column_metrics((c.grade for c in ended), derived)
    out: dict[str, Any] = {
        "score": sum(_score(c) for c in ended), "passed": s.passed, "failed": s.failed, "errors": s.errors,
        "assert_passed": sum(1 for c in ended for a in c.asserts if a.passed),
        "assert_failed": sum(1 for c in ended for a in c.asserts if not a.passed),
        "named_scores": dict(metrics.sums), "named_score_weights": dict(metrics.weights),
        "named_score_counts": dict(metrics.counts), "derived_metrics": dict(metrics.derived),
    }  # fmt: skip
    if metrics.errors:
        out["derived_errors"] = dict(metrics.errors)
    return out


def prompt_columns(rows: Sequence[Row], cells: Mapping[tuple[int, int], Cell], variants: Sequence[Variant],
                   derived: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:  # fmt: skip
    """Per prompt (1-based) and column with cells, in that order: ``{prompt, provider,
    label}`` and its :func:`totals`."""
    groups: dict[tuple[int, int], list[Cell]] = {}
    for (r, col), cell in sorted(cells.items()):
        groups.setdefault((rows[r].prompt_index, col), []).append(cell)
    return [{"prompt": p + 1, "provider": variants[col].model, "label": variants[col].title,
             **totals(group, derived)} for (p, col), group in sorted(groups.items())]  # fmt: skip
