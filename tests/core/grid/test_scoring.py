"""A cell's verdict as promptfoo scores it: weights, thresholds, named scores, derived metrics."""

from __future__ import annotations

import pytest

from app.core.errors import InvalidParams
from app.core.grid.assert_result import AssertResult
from app.core.grid.model import Assertion
from app.core.grid.scoring import Grade, check_expression, column_metrics, evaluate, grade


def r(passed: bool, score: float | None = None) -> AssertResult:
    return AssertResult("x", passed, "why", score)


def test_the_score_is_the_weighted_mean_and_every_assertion_must_pass() -> None:
    asserts = [Assertion("contains", "a", weight=3.0), Assertion("contains", "b")]
    g = grade(asserts, [r(True), r(False)], None)
    assert g.score == pytest.approx(0.75) and not g.passed and "x: why" in g.reason
    assert grade(asserts, [r(True), r(True, 0.5)], None).score == pytest.approx(0.875)
    zero = [Assertion("contains", "a", weight=0.0), Assertion("contains", "b")]
    weightless = grade(zero, [r(False), r(True)], None)
    assert weightless.score == 1.0 and not weightless.passed  # weight 0: no share of the score, still decides


def test_a_test_threshold_decides_instead_of_each_assertion() -> None:
    asserts = [Assertion("contains", "a", weight=3.0), Assertion("contains", "b")]
    assert grade(asserts, [r(True), r(False)], 0.7).passed
    below = grade(asserts, [r(True), r(False)], 0.8)
    assert not below.passed and below.reason == "Aggregate score 0.75 < 0.8 threshold"
    assert grade([], [], None) == Grade(True, 1.0, "All assertions passed", {})


def test_named_scores_and_derived_metrics() -> None:
    asserts = [Assertion("a", metric="accuracy", weight=2.0), Assertion("b", metric="accuracy"), Assertion("c", metric="tone")]
    g = grade(asserts, [r(True), r(False), r(True, 0.5)], None)
    assert g.named == {"accuracy": pytest.approx(2 / 3), "tone": 0.5}
    assert g.weights == {"accuracy": 3.0, "tone": 1.0} and g.counts == {"accuracy": 2, "tone": 1}
    other = Grade(True, 1.0, "", {"accuracy": 1.0, "tone": 1.0})  # stored without weights: 1 each
    m = column_metrics([g, other, None], [("both", "accuracy + tone"), ("ratio", "accuracy / tone"),
                                          ("again", "both * 2"), ("bad", "accuracy / (tone - tone)")])  # fmt: skip
    assert m.sums == {"accuracy": pytest.approx(3.0), "tone": 1.5}  # promptfoo sums score x weight per column
    assert m.means == {"accuracy": pytest.approx(3 / 4), "tone": 0.75}
    assert m.derived["both"] == pytest.approx(4.5) and m.derived["ratio"] == pytest.approx(2.0)
    assert m.derived["again"] == pytest.approx(9.0)  # a derived metric can use an earlier one
    assert m.derived["bad"] is None and m.errors["bad"] == "division by zero"
    assert m.to_dict()["derived_errors"] == {"bad": "division by zero"}
    assert Grade.from_dict(g.to_dict()) == g


def test_a_column_sums_each_assertions_score_times_its_weight_as_promptfoo_does() -> None:
    # promptfoo 0.121 (AssertionsResult.addResult, accumulateNamedMetric): a cell's named score
    # is the weighted mean of its assertions; the column adds mean x the cell's weight for it
    asserts = [Assertion("a", metric="pirate", weight=3.0), Assertion("b", metric="pirate", weight=0.5),
               Assertion("c", metric="brevity", weight=2.0), Assertion("d", metric="tp", weight=0.0)]  # fmt: skip
    one = grade(asserts, [r(True), r(False), r(True, 0.25), r(True)], None)
    two = grade(asserts, [r(False), r(True), r(True), r(True)], None)
    assert one.named == {"pirate": pytest.approx(3 / 3.5), "brevity": 0.25, "tp": 0.0}  # weight 0: no share
    m = column_metrics([one, two, None], [("per_cell", "pirate / __count")])
    assert m.sums == {"pirate": pytest.approx(3.5), "brevity": pytest.approx(2.5), "tp": 0.0}
    assert m.weights == {"pirate": 7.0, "brevity": 4.0, "tp": 0.0} and m.counts == {"pirate": 4, "brevity": 2, "tp": 2}
    assert m.means == {"pirate": pytest.approx(0.5), "brevity": pytest.approx(0.625), "tp": 0.0}
    assert m.derived["per_cell"] == pytest.approx(3.5 / 3)  # __count: the column's cells
    assert Grade.from_dict(one.to_dict()) == one


@pytest.mark.parametrize("expression", ["__import__('os').system('x')", "a.b", "[1, 2]", "open('f')", "lambda: 1",
                                        "2 ** 10000", "a if b else c", "x" * 600])  # fmt: skip
def test_only_arithmetic_is_evaluated(expression: str) -> None:
    with pytest.raises(InvalidParams):
        evaluate(expression, {"a": 1.0, "b": 2.0, "c": 3.0, "x": 1.0})


def test_expressions_are_checked_before_a_run() -> None:
    check_expression("max(a, b) / (c - c) + sqrt(4) - -1")  # only the form: names and division are for the run
    assert evaluate("round(max(a, 2) * 1.5 % 2, 1)", {"a": 1.0}) == 1.0
    with pytest.raises(InvalidParams, match="not an arithmetic expression"):
        check_expression("a +")
    with pytest.raises(InvalidParams, match="no named score 'missing'"):
        evaluate("missing * 2", {"a": 1.0})
