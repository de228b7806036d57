"""Human review of a grid run (the Workbench's Review tab): a person's pass/fail, 1-5 score
and comment per cell, and pair votes ("which of these two answers is better, or a tie") that
give each variant a win rate, as in Open WebUI's arena. Kept with the run in the run store.

How a manual verdict combines with the assertions: in the column summaries a person's
pass/fail **overrides** the automatic verdict of that cell (an error or a stopped cell that
a person judged counts as they said); both are kept, and the exports say which verdict came
from whom (``verdict_by``: ``person`` or ``assertions``).

Also here, Qt-free: the row filters ("only failures", "only rows where variants differ")
and the blind mode's seeded column order and neutral labels."""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.core.errors import ConfigError
from app.core.grid.cells import Cell, ColumnSummary, summarize

Winner = Literal["a", "b", "tie"]
WINNERS: tuple[Winner, ...] = ("a", "b", "tie")
SCORES = range(1, 6)


@dataclass(frozen=True, slots=True)
class CellReview:
    """A person's verdict on one cell: pass/fail (None: not said), a 1-5 score (None: not
    given) and a comment; ``blind`` when it was given with the variant labels hidden."""

    passed: bool | None = None
    score: int | None = None
    comment: str = ""
    blind: bool = False
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        if self.score is not None and self.score not in SCORES:
            raise ConfigError(f"A score is 1 to 5, not {self.score}.", hint="Pick 1 (bad) to 5 (great), or clear it.")

    @property
    def empty(self) -> bool:
        """True when nothing was said (such a review is removed)."""
        return self.passed is None and self.score is None and not self.comment.strip()

    def badge(self) -> str:
        """``✔ ★4`` / ``✘`` / ``★2`` / ``💬`` for the grid (what the person said, compactly)."""
        parts = []
        if self.passed is not None:
            parts.append("✔" if self.passed else "✘")
        if self.score is not None:
            parts.append(f"★{self.score}")
        if not parts and self.comment.strip():
            parts.append("note")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The export's and the store's fields."""
        return {"pass": self.passed, "score": self.score, "comment": self.comment, "blind": self.blind,
                "updated_at": self.updated_at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PairVote:
    """Which of two cells of a row is better: columns ``a < b``, ``winner`` a, b or tie."""

    row: int
    a: int
    b: int
    winner: Winner
    blind: bool = False
    updated_at: float = 0.0

    @classmethod
    def of(cls, row: int, left: int, right: int, winner: Winner, *, blind: bool = False) -> PairVote:
        """A vote between columns ``left`` and ``right`` (any order; ``winner`` a = left)."""
        if left == right or winner not in WINNERS:
            raise ConfigError("A vote compares two different cells of a row: a, b or tie.",
                              hint="Select two cells of the same row (Ctrl+click).")  # fmt: skip
        if left > right:
            left, right = right, left
            winner = {"a": "b", "b": "a", "tie": "tie"}[winner]  # type: ignore[assignment]
        return cls(row, left, right, winner, blind, time.time())

    @property
    def winner_col(self) -> int | None:
        """The winning column (None for a tie)."""
        return None if self.winner == "tie" else (self.a if self.winner == "a" else self.b)

    def to_dict(self) -> dict[str, Any]:
        """The export's fields."""
        return {"row": self.row, "a": self.a, "b": self.b, "winner": self.winner, "winner_col": self.winner_col,
                "blind": self.blind, "updated_at": self.updated_at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class WinRate:
    """A variant's record over the pair votes it took part in."""

    wins: int = 0
    losses: int = 0
    ties: int = 0

    @property
    def games(self) -> int:
        """Votes the variant took part in."""
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float | None:
        """(wins + ties / 2) / games; None before any vote."""
        return None if not self.games else (self.wins + self.ties / 2) / self.games

    def sentence(self) -> str:
        """``wins 75% (2-0-1)`` (wins-losses-ties), or "" before any vote."""
        rate = self.rate
        return "" if rate is None else f"wins {rate * 100:.0f}% ({self.wins}-{self.losses}-{self.ties})"

    def to_dict(self) -> dict[str, Any]:
        """The export's fields."""
        return {"wins": self.wins, "losses": self.losses, "ties": self.ties, "games": self.games, "rate": self.rate}


@dataclass(frozen=True, slots=True)
class ReviewedSummary:
    """A column's footer with the reviews: ``base`` counts a person's verdict instead of the
    automatic one; ``by_hand`` cells were judged by a person; the mean score; the win rate."""

    base: ColumnSummary
    by_hand: int = 0
    mean_score: float | None = None
    win: WinRate = field(default_factory=WinRate)

    def sentence(self) -> str:
        """``$0 · mean 0.4 s · p95 0.8 s · 2/3 pass (1 by hand) · ★4.0 · wins 75% (2-0-1)``."""
        text = self.base.sentence()
        if self.by_hand:
            text += f" ({self.by_hand} by hand)"
        if self.mean_score is not None:
            text += f" · ★{self.mean_score:.1f}"
        if self.win.games:
            text += f" · {self.win.sentence()}"
        return text


def _category(cell: Cell) -> str | None:
    """How :func:`summarize` counts an ended cell."""
    if cell.status in ("failed", "invalid"):
        return "errors"
    if cell.status == "cancelled":
        return "cancelled"
    if cell.status == "done":
        return "passed" if cell.passed else "failed"
    return None


class RunReview:
    """The reviews and pair votes of one run (see the module doc)."""

    def __init__(self, run_id: str, cells: dict[tuple[int, int], CellReview] | None = None,
                 votes: Iterable[PairVote] = ()) -> None:  # fmt: skip
        self.run_id = run_id
        self.cells: dict[tuple[int, int], CellReview] = dict(cells or {})
        self.votes: dict[tuple[int, int, int], PairVote] = {(v.row, v.a, v.b): v for v in votes}

    def __bool__(self) -> bool:
        return bool(self.cells or self.votes)

    def get(self, row: int, col: int) -> CellReview | None:
        """The review of a cell (None: none)."""
        return self.cells.get((row, col))

    def put(self, row: int, col: int, review: CellReview) -> CellReview | None:
        """Keep ``review`` (an empty one removes it); returns what is kept."""
        if review.empty:
            self.cells.pop((row, col), None)
            return None
        review = replace(review, updated_at=review.updated_at or time.time())
        self.cells[(row, col)] = review
        return review

    def vote(self, vote: PairVote) -> None:
        """Keep a pair vote (replacing an earlier vote on the same pair)."""
        self.votes[(vote.row, vote.a, vote.b)] = vote

    def unvote(self, row: int, left: int, right: int) -> bool:
        """Forget the vote on a pair; True when there was one."""
        return self.votes.pop((row, min(left, right), max(left, right)), None) is not None

    def vote_on(self, row: int, left: int, right: int) -> PairVote | None:
        """The vote on a pair (None: none)."""
        return self.votes.get((row, min(left, right), max(left, right)))

    def win_rates(self, variants: int) -> list[WinRate]:
        """One :class:`WinRate` per column."""
        tally = [[0, 0, 0] for _ in range(variants)]
        for v in self.votes.values():
            if v.a >= variants or v.b >= variants:
                continue
            if v.winner == "tie":
                tally[v.a][2] += 1
                tally[v.b][2] += 1
            else:
                win, lose = (v.a, v.b) if v.winner == "a" else (v.b, v.a)
                tally[win][0] += 1
                tally[lose][1] += 1
        return [WinRate(*t) for t in tally]

    def verdict(self, cell: Cell) -> tuple[bool | None, str]:
        """The cell's pass/fail and who said it: a person's verdict, else the automatic one
        (``("person" | "assertions" | "")``; "" while the cell has none)."""
        review = self.get(cell.row, cell.col)
        if review is not None and review.passed is not None and cell.ended:
            return review.passed, "person"
        auto = cell.passed
        return auto, "" if auto is None else "assertions"

    def summarize(self, cells: Iterable[Cell], win: WinRate | None = None) -> ReviewedSummary:
        """A column's footer, a person's verdict counting instead of the automatic one."""
        items = list(cells)
        base = summarize(items)
        counts = {"passed": base.passed, "failed": base.failed, "errors": base.errors, "cancelled": base.cancelled}
        by_hand = 0
        scores = []
        for cell in items:
            review = self.get(cell.row, cell.col)
            if review is None or not cell.ended:
                continue
            if review.score is not None:
                scores.append(review.score)
            auto = _category(cell)
            if review.passed is None or auto is None:
                continue
            by_hand += 1
            counts[auto] -= 1
            counts["passed" if review.passed else "failed"] += 1
        adjusted = replace(base, passed=counts["passed"], failed=counts["failed"], errors=counts["errors"],
                           cancelled=counts["cancelled"])  # fmt: skip
        return ReviewedSummary(adjusted, by_hand, sum(scores) / len(scores) if scores else None,
                               win or WinRate())  # fmt: skip


def row_fails(cells: Iterable[Cell], review: RunReview) -> bool:
    """True when a cell of the row failed (by a person's verdict, its checks or an error)."""
    return any(c.ended and review.verdict(c)[0] is False for c in cells)


def row_differs(cells: Iterable[Cell], review: RunReview) -> bool:
    """True when the row's ended cells differ: in their answers (spacing aside) or verdicts."""
    ended = [c for c in cells if c.ended]
    texts = {" ".join(c.text.split()) for c in ended}
    verdicts = {review.verdict(c)[0] for c in ended}
    return len(ended) > 1 and (len(texts) > 1 or len(verdicts) > 1)


def blind_order(variants: int, seed: int) -> list[int]:
    """The blind mode's column order: position -> variant, a permutation fixed by ``seed``."""
    order = list(range(variants))
    random.Random(seed).shuffle(order)
    return order


def blind_label(position: int) -> str:
    """``Variant A``, ``Variant B``, … ``Variant AA`` for the column shown at ``position``."""
    letters = string.ascii_uppercase
    name = ""
    n = position
    while True:
        name = letters[n % 26] + name
        n = n // 26 - 1
        if n < 0:
            return f"Variant {name}"
