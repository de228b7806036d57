"""The human review in the exports of a run (see :mod:`app.core.grid.export`): each cell's
review and the verdict that counts (``verdict_by`` says whether a person or the assertions
gave it), the pair votes and the win rate of every variant, in JSON, CSV and HTML."""

from __future__ import annotations

import html
from typing import Any

from app.core.errors import redact
from app.core.grid.review import RunReview
from app.core.grid.runner import GridRunner

RULE = "A person's pass/fail overrides the automatic verdict of that cell in the summaries; both are kept."
CSV_COLUMNS = ("review_pass", "review_score", "review_comment", "review_blind", "verdict", "verdict_by", "votes",
               "variant_win_rate")  # fmt: skip
CSS = (".review{margin:4px 0;padding:4px 6px;border-left:3px solid #7c3aed;background:#f6f3ff;font-size:12px}"
       ".wins td{font-size:13px}")  # fmt: skip


def _e(value: object) -> str:
    return html.escape(redact(str(value)))


def review_of(runner: GridRunner, review: RunReview | None) -> RunReview:
    """``review``, or an empty one for ``runner``'s run."""
    return review if review is not None else RunReview(runner.run_id)


def cell_fields(runner: GridRunner, review: RunReview, row: int, col: int) -> dict[str, Any]:
    """A cell's ``review``, ``verdict`` and ``verdict_by`` (added to its JSON)."""
    cell = runner.cells[(row, col)]
    own = review.get(row, col)
    verdict, by = review.verdict(cell)
    return {"review": None if own is None else own.to_dict(), "verdict": verdict, "verdict_by": by or None}


def column_fields(runner: GridRunner, review: RunReview, col: int) -> dict[str, Any]:
    """A column's reviewed counts, mean score and win rate (added to its JSON)."""
    win = review.win_rates(len(runner.config.variants))[col]
    s = review.summarize((c for c in runner.cells.values() if c.col == col), win)
    return {"reviewed": {"passed": s.base.passed, "failed": s.base.failed, "errors": s.base.errors,
                         "pass_rate": s.base.pass_rate, "by_hand": s.by_hand, "mean_score": s.mean_score},
            "win_rate": win.to_dict()}  # fmt: skip


def run_fields(runner: GridRunner, review: RunReview) -> dict[str, Any]:
    """The run's ``review`` section: the rule, the reviews, the votes and the win rates."""
    titles = [v.title for v in runner.config.variants]
    rates = review.win_rates(len(titles))
    cells = [{"row": r, "col": c, **rv.to_dict()} for (r, c), rv in sorted(review.cells.items())]
    votes = [v.to_dict() for _k, v in sorted(review.votes.items())]
    return {"rule": RULE, "cells": cells, "votes": votes,
            "win_rates": [{"col": i, "label": titles[i], **w.to_dict()} for i, w in enumerate(rates)]}  # fmt: skip


def _votes_text(runner: GridRunner, review: RunReview, row: int, col: int) -> str:
    titles = [v.title for v in runner.config.variants]
    out = []
    for v in review.votes.values():
        if v.row != row or col not in (v.a, v.b) or max(v.a, v.b) >= len(titles):
            continue
        other = titles[v.b if col == v.a else v.a]
        outcome = "tie with" if v.winner_col is None else ("won over" if v.winner_col == col else "lost to")
        out.append(f"{outcome} {other}")
    return "; ".join(sorted(out))


def csv_values(runner: GridRunner, review: RunReview, row: int, col: int) -> list[Any]:
    """The review columns of a cell's CSV line (:data:`CSV_COLUMNS`)."""
    own = review.get(row, col)
    verdict, by = review.verdict(runner.cells[(row, col)])
    rate = review.win_rates(len(runner.config.variants))[col].rate
    return [None if own is None else own.passed, None if own is None else own.score,
            None if own is None else own.comment, None if own is None else own.blind, verdict, by or None,
            _votes_text(runner, review, row, col) or None, None if rate is None else round(rate, 4)]  # fmt: skip


def html_cell(runner: GridRunner, review: RunReview, row: int, col: int) -> str:
    """A cell's review in the HTML report ("" without one)."""
    own = review.get(row, col)
    votes = _votes_text(runner, review, row, col)
    if own is None and not votes:
        return ""
    parts = []
    if own is not None:
        said = {True: "PASS", False: "FAIL", None: ""}[own.passed]
        parts.append("<b>By hand:</b> " + " ".join(x for x in (said, f"★{own.score}" if own.score else "") if x)
                     + (" (blind)" if own.blind else ""))  # fmt: skip
        if own.comment.strip():
            parts.append(f"<div>{_e(own.comment)}</div>")
    if votes:
        parts.append(f"<div>Pair votes: {_e(votes)}</div>")
    return f"<div class='review'>{''.join(parts)}</div>"


def html_footer(runner: GridRunner, review: RunReview, col: int) -> str:
    """A column's footer with the review (a person's verdict counting instead of the checks)."""
    win = review.win_rates(len(runner.config.variants))[col]
    return review.summarize((c for c in runner.cells.values() if c.col == col), win).sentence()


def html_section(runner: GridRunner, review: RunReview) -> str:
    """The win rates table and the rule ("" when nobody reviewed)."""
    if not review:
        return ""
    rates = review.win_rates(len(runner.config.variants))
    rows = "".join(f"<tr><td>{_e(v.title)}</td><td>{_e(w.sentence() or 'no votes')}</td></tr>"
                   for v, w in zip(runner.config.variants, rates, strict=True))  # fmt: skip
    return (f"<h2>Human review</h2><p class='muted'>{_e(RULE)} {len(review.cells)} cells reviewed, "
            f"{len(review.votes)} pair votes.</p><table class='wins'><thead><tr><th>Variant</th><th>Win rate "
            f"(wins-losses-ties)</th></tr></thead><tbody>{rows}</tbody></table>")
