"""The checks made from the answer alone that issue 23 added: equals with JSON, icontains-any
and -all, regex syntax, finish-reason and perplexity (promptfoo's formulas)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from app.core.grid.assert_result import Answer
from app.core.grid.assert_text import check, check_regex
from app.core.grid.model import Assertion

ANSWER = Answer("The capital of FRANCE is Paris.", finish_reason="stop", logprobs=(-0.5, -1.5))


@pytest.mark.parametrize(
    ("assertion", "passed"),
    [
        (Assertion("icontains-any", ["rome", "paris"]), True),
        (Assertion("icontains-any", ["rome", "berlin"]), False),
        (Assertion("icontains-all", ["france", "PARIS"]), True),
        (Assertion("icontains-all", ["france", "rome"]), False),
        (Assertion("not-icontains-any", ["rome", "berlin"]), True),
        (Assertion("finish-reason", "STOP"), True),  # ignoring case, as promptfoo
        (Assertion("finish-reason", "length"), False),
    ],
)
def test_text_checks(assertion: Assertion, passed: bool) -> None:
    assert check(assertion, ANSWER).passed is passed


def test_equals_compares_objects_deeply() -> None:
    answer = Answer('{"b": [1, 2], "a": {"c": null}}')
    assert check(Assertion("equals", {"a": {"c": None}, "b": [1, 2]}), answer).passed
    assert not check(Assertion("equals", {"a": {"c": None}, "b": [2, 1]}), answer).passed
    assert check(Assertion("equals", [1, "x"]), Answer("[1, \"x\"]")).passed
    assert not check(Assertion("equals", {"a": 1}), Answer("not json")).passed


def test_a_transformed_object_is_checked_as_json_text() -> None:
    answer = Answer("raw", output={"city": "Paris"})
    assert check(Assertion("contains", '"city":"Paris"'), answer).passed  # JSON.stringify: compact
    assert not check(Assertion("contains", '"city": "Paris"'), answer).passed
    assert check(Assertion("equals", {"city": "Paris"}), answer).passed


def test_perplexity_and_its_score() -> None:
    ppl = math.exp(1.0)  # mean logprob -1
    assert check(Assertion("perplexity", threshold=3.0), ANSWER).passed
    failed = check(Assertion("perplexity", threshold=2.0), ANSWER)
    assert not failed.passed and f"perplexity {ppl:.2f} (at most 2)" in failed.reason
    score = check(Assertion("perplexity-score", threshold=0.2), ANSWER)
    assert score.passed and score.score == pytest.approx(1 / (1 + ppl))
    assert not check(Assertion("perplexity-score", threshold=0.3), ANSWER).passed
    assert check(Assertion("perplexity"), ANSWER).passed  # no threshold: passes, as promptfoo
    none = check(Assertion("perplexity", threshold=3.0), Answer("x"))
    assert not none.passed and "returned none" in none.reason
    assert not check(Assertion("finish-reason", "stop"), Answer("x")).passed


@pytest.mark.parametrize(
    ("pattern", "text", "passed"),
    [  # each pair where JavaScript's RegExp (promptfoo's) and Python's re disagree
        (r"(?<city>Paris)\.", "in Paris.", True),  # JS named groups (Python: (?P<...>))
        (r"(?<c>a)\k<c>", "aa", True),  # JS named back-references (Python: error)
        (r"^\d+$", "\u0663\u0664", False),  # \d is ASCII only (Python: Arabic-Indic digits too)
        (r"\w", "\u00e9", False),  # \w is ASCII only
        (r"done$", "done\n", False),  # $ is the very end (Python: also before a final newline)
        (r"[^]", "x", True),  # any character (Python: error)
        (r"a.b", "a\rb", False),  # . stops at \r (Python: only at \n)
        (r"\p{L}", "p{L}", True),  # no u flag: \p is a plain p (Python: error)
        (r"\Z", "abc", False),  # an identity escape, a plain Z (Python: the end of the text)
        (r"^the", "The end", False),  # promptfoo takes no flags: case counts
    ],
)
def test_regex_is_javascripts(run: Callable[..., Any], pattern: str, text: str, passed: bool) -> None:
    assert run(check_regex(Assertion("regex", pattern), Answer(text))).passed is passed
    assert run(check_regex(Assertion("not-regex", pattern), Answer(text))).passed is not passed


def test_a_bad_or_runaway_regex_fails_its_check_either_way(run: Callable[..., Any]) -> None:
    for kind in ("regex", "not-regex"):  # as promptfoo: neither form passes
        bad = run(check_regex(Assertion(kind, "(?i)paris"), Answer("Paris")))  # inline flags: not JavaScript
        assert not bad.passed and "not a valid JavaScript regular expression (SyntaxError: Invalid" in bad.reason
    t0 = time.monotonic()
    slow = run(check_regex(Assertion("regex", "^(a+)+$"), Answer("a" * 40 + "b")))
    assert not slow.passed and "matching ran past its time limit of 2 s" in slow.reason
    assert time.monotonic() - t0 < 6
    found = run(check_regex(Assertion("regex", "{{y}}-\\d+"), Answer("x 2024-05"), {"y": "2024"}))
    assert found.passed and found.reason == "/2024-\\d+/ matches '2024-05'"
