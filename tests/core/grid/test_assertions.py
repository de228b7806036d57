"""Each assertion type decides pass or fail, and says why; not- forms invert."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core.grid.assertions import (
    Answer,
    check,
    check_plain,
    levenshtein,
    parse_grade,
    rubric_messages,
    rubric_result,
)
from app.core.grid.model import Assertion
from app.core.grid.scoring import grade

TEXT = 'The capital of France is Paris. {"a": 1}'


@pytest.mark.parametrize(
    ("assertion", "passed"),
    [
        (Assertion("equals", TEXT), True),
        (Assertion("equals", "Paris"), False),
        (Assertion("contains", "Paris"), True),
        (Assertion("contains", "paris"), False),
        (Assertion("icontains", "paris"), True),
        (Assertion("not-icontains", "paris"), False),
        (Assertion("not-contains", "London"), True),
        (Assertion("contains-any", ["London", "Paris"]), True),
        (Assertion("contains-any", ["London", "Rome"]), False),
        (Assertion("contains-all", ["France", "Paris"]), True),
        (Assertion("contains-all", ["France", "Rome"]), False),
        (Assertion("starts-with", "The capital"), True),
        (Assertion("not-starts-with", "The capital"), False),
        (Assertion("is-json"), False),
        (Assertion("not-is-json"), True),
        (Assertion("levenshtein", "The capital of France is Paris. {\"a\": 2}", 1), True),
        (Assertion("levenshtein", "The capital of Spain is Madrid.", 5), False),
    ],
)
def test_text_checks(assertion: Assertion, passed: bool) -> None:
    result = check(assertion, Answer(TEXT))
    assert result.passed is passed and result.type == assertion.type and result.reason


def test_values_take_the_cases_variables() -> None:
    assert check(Assertion("icontains", "{{city}}"), Answer(TEXT), {"city": "PARIS"}).passed
    assert not check(Assertion("contains", "{{city}}"), Answer(TEXT), {"city": "Rome"}).passed


def test_json_checks_and_equals_against_an_object() -> None:
    assert check(Assertion("is-json"), Answer('{"a": [1, 2]}')).passed
    assert "line 1, column" in check(Assertion("is-json"), Answer("{nope")).reason
    assert check(Assertion("equals", {"a": 1}), Answer('{"a": 1}')).passed


def test_cost_and_latency() -> None:
    cheap = Answer("x", cost_usd=Decimal("0.0004"), latency_s=0.25)
    assert check(Assertion("cost", threshold=0.001), cheap).passed
    assert not check(Assertion("cost", threshold=0.0001), cheap).passed
    assert check(Assertion("latency", threshold=300), cheap).passed
    assert not check(Assertion("latency", threshold=200), cheap).passed
    unknown = check(Assertion("cost", threshold=1), Answer("x"))
    assert not unknown.passed and "this model is unpriced" in unknown.reason
    assert not check(Assertion("not-cost", threshold=1), Answer("x")).passed  # promptfoo errors: never a pass


def test_levenshtein_distance() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("same", "same") == 0


def test_the_grader_reply_is_read_as_json_or_a_verdict_word() -> None:
    messages = rubric_messages(Assertion("llm-rubric", "mentions {{city}}"), "It is Paris.", {"city": "Paris"})
    assert "JSON" in messages[0].content and "mentions Paris" in messages[1].content and "It is Paris." in messages[1].content
    assert parse_grade('Sure! {"reason": "it names Paris", "pass": true, "score": 1}') == (True, "it names Paris")
    assert parse_grade("FAIL: no city")[0] is False
    assert parse_grade("Yes, it does.")[0] is True
    verdict, reason = parse_grade("hmm")
    assert verdict is None and "no verdict" in reason
    assert not rubric_result(Assertion("llm-rubric", "x"), None, reason).passed
    assert rubric_result(Assertion("not-llm-rubric", "x"), False, "no").passed


def test_an_assertion_of_weight_zero_passes_but_keeps_its_score() -> None:
    asserts = (Assertion("contains", "Paris"), Assertion("contains", "Rome", weight=0, metric="rome"))
    results = check_plain(asserts, Answer(TEXT), {})
    assert [r.passed for r in results] == [True, True]
    assert results[1].value == 0.0
    verdict = grade(asserts, results, None)
    assert verdict.passed and verdict.score == 1.0 and verdict.named == {"rome": 0.0}
