"""Human review of a run: a person's verdicts and scores, pair votes and win rates, the row
filters, the blind order, kept in the run store (an older store opens) and exported."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ConfigError, register_secret
from app.core.grid.export import export_csv, export_html, export_json
from app.core.grid.model import Assertion, GridConfig, Prompt, TestCase, Variant
from app.core.grid.review import (
    CellReview,
    PairVote,
    RunReview,
    WinRate,
    blind_label,
    blind_order,
    row_differs,
    row_fails,
)
from app.core.grid.runner import GridRunner
from app.core.grid.store import SCHEMA_VERSION, RunStore, reopen

KEY = "sk-reviewleak1234567890abcdef"
CONFIG = GridConfig(description="Capitals", prompts=(Prompt("Capital of {{c}}?"),),
                    variants=(Variant("mock:echo"), Variant("mock:fixed?text=Paris", label="fixed"),
                              Variant("mock:fixed?text=Paris", label="same")),
                    tests=(TestCase({"c": "France"}, (Assertion("icontains", "paris"),)),
                           TestCase({"c": "Spain"}, (Assertion("icontains", "madrid"),))))  # fmt: skip


@pytest.fixture
def finished(services: Any, run: Callable[..., Any], tmp_path: Path) -> tuple[GridRunner, RunStore]:
    store = RunStore(tmp_path / "runs.sqlite3")
    runner = GridRunner(services.scheduler, CONFIG, sink=store)

    async def scenario() -> None:
        runner.start()
        await runner.wait()

    run(scenario())
    yield runner, store
    store.close()


def test_a_review_validates_its_score_and_an_empty_one_is_removed() -> None:
    with pytest.raises(ConfigError, match="1 to 5"):
        CellReview(score=6)
    review = RunReview("r")
    assert review.put(0, 0, CellReview(True, 4, "good")) is not None and review.get(0, 0).badge() == "✔ ★4"
    assert review.put(0, 0, CellReview(comment="  ")) is None and review.get(0, 0) is None and not review


def test_pair_votes_give_win_rates_whatever_the_order_of_the_pair() -> None:
    review = RunReview("r")
    review.vote(PairVote.of(0, 1, 0, "a"))  # column 1 (left) beats column 0
    review.vote(PairVote.of(1, 0, 2, "tie"))
    review.vote(PairVote.of(1, 2, 1, "b"))  # column 1 beats column 2
    assert review.vote_on(0, 0, 1).winner_col == 1
    rates = review.win_rates(3)
    assert rates == [WinRate(0, 1, 1), WinRate(2, 0, 0), WinRate(0, 1, 1)]
    assert rates[1].rate == 1.0 and rates[0].rate == 0.25 and rates[1].sentence() == "wins 100% (2-0-0)"
    review.vote(PairVote.of(0, 0, 1, "a"))  # a vote on the same pair replaces the first
    assert review.win_rates(3)[0] == WinRate(1, 0, 1)
    assert review.unvote(0, 1, 0) and review.win_rates(3)[0] == WinRate(0, 0, 1)
    with pytest.raises(ConfigError):
        PairVote.of(0, 1, 1, "a")


def test_a_persons_verdict_overrides_the_checks_in_the_summary(finished: tuple[GridRunner, RunStore]) -> None:
    runner, _store = finished
    col0 = [c for c in runner.cells.values() if c.col == 1]  # "Paris": passes France, fails Spain
    review = RunReview(runner.run_id)
    auto = review.summarize(col0)
    assert (auto.base.passed, auto.base.failed, auto.by_hand) == (1, 1, 0)
    review.put(1, 1, CellReview(True, 2))  # a person passes the failed cell
    review.put(0, 1, CellReview(None, 5))  # a score alone does not change the verdict
    s = review.summarize(col0, WinRate(1, 0, 0))
    assert (s.base.passed, s.base.failed, s.by_hand, s.mean_score) == (2, 0, 1, 3.5)
    assert s.sentence().endswith("2/2 pass (1 by hand) · ★3.5 · wins 100% (1-0-0)")
    assert review.verdict(runner.cells[(1, 1)]) == (True, "person")
    assert review.verdict(runner.cells[(0, 1)]) == (True, "assertions")


def test_the_row_filters(finished: tuple[GridRunner, RunStore]) -> None:
    runner, _store = finished
    review = RunReview(runner.run_id)

    def row(r: int) -> list[Any]:
        return [c for c in runner.cells.values() if c.row == r]

    assert row_fails(row(1), review) and row_fails(row(0), review)  # echo fails France (no "paris")
    review.put(0, 0, CellReview(True))
    assert not row_fails(row(0), review) and row_differs(row(0), review)  # the answers still differ
    only_same = [runner.cells[(0, 1)], runner.cells[(0, 2)]]
    assert not row_differs(only_same, review)
    review.put(0, 2, CellReview(False))
    assert row_differs(only_same, review)  # same answers, different verdicts


def test_the_blind_order_is_a_seeded_permutation() -> None:
    assert blind_order(5, 7) == blind_order(5, 7) and sorted(blind_order(5, 7)) == [0, 1, 2, 3, 4]
    assert len({tuple(blind_order(5, s)) for s in range(20)}) > 1
    assert [blind_label(i) for i in (0, 1, 25, 26)] == ["Variant A", "Variant B", "Variant Z", "Variant AA"]


def test_reviews_and_votes_are_kept_with_the_run(services: Any, finished: tuple[GridRunner, RunStore],
                                                 tmp_path: Path) -> None:  # fmt: skip
    runner, store = finished
    store.save_review(runner.run_id, 1, 1, CellReview(True, 4, "close enough", blind=True))
    store.save_review(runner.run_id, 0, 0, CellReview(False))
    store.save_vote(runner.run_id, PairVote.of(0, 2, 0, "a", blind=True))
    store.close()
    again = RunStore(tmp_path / "runs.sqlite3")
    review = again.load_review(runner.run_id)
    assert review.get(1, 1) is not None and (review.get(1, 1).passed, review.get(1, 1).score,
                                             review.get(1, 1).comment, review.get(1, 1).blind) == (True, 4, "close enough", True)  # fmt: skip
    assert review.vote_on(0, 0, 2) is not None and review.vote_on(0, 0, 2).winner_col == 2
    again.save_review(runner.run_id, 0, 0, None)
    assert again.load_review(runner.run_id).get(0, 0) is None
    with pytest.raises(ConfigError, match="not been run"):
        again.save_review("never-run", 0, 0, CellReview(True))
    again.delete(runner.run_id)
    assert not again.load_review(runner.run_id)
    again.close()


V1_SCHEMA = """
CREATE TABLE runs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL, title TEXT NOT NULL,
    origin TEXT NOT NULL, source TEXT, status TEXT NOT NULL, config TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}');
CREATE TABLE cells (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, row INTEGER NOT NULL,
    col INTEGER NOT NULL, status TEXT NOT NULL, text TEXT NOT NULL DEFAULT '', error TEXT,
    request TEXT NOT NULL DEFAULT '{}', figures TEXT NOT NULL DEFAULT '{}', asserts TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL, PRIMARY KEY (run_id, row, col));
CREATE INDEX runs_created ON runs(created_at);
PRAGMA user_version=1;
"""


def test_an_older_store_opens_with_its_runs_and_takes_reviews(services: Any, tmp_path: Path) -> None:
    path = tmp_path / "workbench.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    config = json.dumps(GridConfig(description="Old", prompts=(Prompt("hi"),), variants=(Variant("mock:echo"),)).to_dict())
    old.execute("INSERT INTO runs VALUES ('old1', 1.0, 2.0, 'Old', 'cli', NULL, 'complete', ?, "
                "'{\"cells\": 1, \"passed\": 1}')", (config,))  # fmt: skip
    old.execute("INSERT INTO cells (run_id, row, col, status, text, updated_at) VALUES ('old1', 0, 0, 'done', 'hi', 2.0)")
    old.commit()
    old.close()
    store = RunStore(path)
    assert not store.warnings
    (header,) = store.list_runs()
    assert header.id == "old1" and header.summary["passed"] == 1
    runner = reopen(services.scheduler, store, "old1")
    assert runner.cells[(0, 0)].text == "hi"
    assert not store.load_review("old1")
    store.save_review("old1", 0, 0, CellReview(False, 1, "too short"))
    assert store.load_review("old1").get(0, 0) == CellReview(False, 1, "too short", False, store.load_review("old1").get(0, 0).updated_at)  # type: ignore[union-attr]  # fmt: skip
    store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    check.close()


def _reviewed(runner: GridRunner) -> RunReview:
    review = RunReview(runner.run_id)
    review.put(1, 1, CellReview(True, 4, f"fine <i>really</i> {KEY}"))
    review.vote(PairVote.of(0, 0, 1, "b"))
    return review


def test_exports_carry_the_reviews_and_the_win_rates(finished: tuple[GridRunner, RunStore]) -> None:
    register_secret(KEY)
    runner, _store = finished
    review = _reviewed(runner)
    data = export_json(runner, review)
    cells = {(c["row"], c["col"]): c for c in data["cells"]}
    assert cells[(1, 1)]["pass"] is False and cells[(1, 1)]["verdict"] is True and cells[(1, 1)]["verdict_by"] == "person"
    assert cells[(1, 1)]["review"]["score"] == 4 and cells[(0, 1)]["verdict_by"] == "assertions"
    assert data["review"]["votes"][0]["winner_col"] == 1 and "overrides" in data["review"]["rule"]
    assert [w["rate"] for w in data["review"]["win_rates"]] == [0.0, 1.0, None]
    assert data["columns"][1]["reviewed"]["passed"] == 2 and data["columns"][1]["passed"] == 1
    assert KEY not in json.dumps(data)
    lines = list(csv.DictReader(io.StringIO(export_csv(runner, review))))
    line = next(r for r in lines if (r["row"], r["col"]) == ("1", "1"))
    assert (line["pass"], line["review_pass"], line["review_score"], line["verdict"], line["verdict_by"]) == (
        "False", "True", "4", "True", "person")
    first = next(r for r in lines if (r["row"], r["col"]) == ("0", "0"))
    assert first["votes"] == "lost to fixed" and first["variant_win_rate"] == "0.0"
    page = export_html(runner, review)
    assert "By hand:</b> PASS ★4" in page and "&lt;i&gt;really" in page and "<i>really" not in page
    assert "Human review" in page and "wins 100% (1-0-0)" in page and "2/2 pass (1 by hand)" in page
    assert KEY not in page and KEY not in export_csv(runner, review)
    plain = export_json(runner)  # without a review: the same keys, nothing reviewed
    assert plain["review"]["cells"] == [] and all(c["verdict_by"] in ("assertions", None) for c in plain["cells"])
