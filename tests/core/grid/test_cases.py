"""Cases from CSV / JSONL and the one-line assertion syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.grid.cases import (
    CasesFileError,
    assertion_line,
    cases_from_csv,
    cases_from_jsonl,
    load_cases,
    parse_assertion_line,
)
from app.core.grid.model import Assertion


def test_csv_columns_are_variables_with_promptfoo_special_columns() -> None:
    text = ('country,audience,__expected,__expected2,__description\n'
            'France,kids,icontains: paris,"not-contains: sorry",first\n'
            '"Bosnia, and Herzegovina",adults,,,\n')
    first, second = cases_from_csv(text)
    assert dict(first.vars) == {"country": "France", "audience": "kids"} and first.description == "first"
    assert first.asserts == (Assertion("icontains", "paris"), Assertion("not-contains", "sorry"))
    assert second.vars["country"] == "Bosnia, and Herzegovina" and second.asserts == ()


def test_jsonl_lines_and_their_errors() -> None:
    cases = cases_from_jsonl('{"vars": {"q": "2+2"}, "assert": [{"type": "equals", "value": "4"}]}\n\n{"q": "3"}\n')
    assert [dict(c.vars) for c in cases] == [{"q": "2+2"}, {"q": "3"}]
    assert cases[0].asserts == (Assertion("equals", "4"),)
    with pytest.raises(CasesFileError, match=r"cases.jsonl, line 2: not valid JSON"):
        cases_from_jsonl('{"q": 1}\n{"q": \n')


def test_bad_assertions_in_a_csv_name_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    path.write_text("q,__expected\n1,contains: a\n2,webhook: x\n", encoding="utf-8")
    with pytest.raises(CasesFileError, match=r"cases.csv, line 3, column __expected: the assertion type 'webhook' is not supported by this app"):
        load_cases(path)
    other = tmp_path / "cases.txt"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(CasesFileError, match="cases are read from .csv, .jsonl"):
        load_cases(other)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("contains: Paris", Assertion("contains", "Paris")),
        ("not-icontains: sorry", Assertion("not-icontains", "sorry")),
        ("levenshtein(3): Paris", Assertion("levenshtein", "Paris", 3.0)),
        ("contains-any: a, b ,c", Assertion("contains-any", ["a", "b", "c"])),
        ("cost: 0.01", Assertion("cost", None, 0.01)),
        ("latency(2000)", Assertion("latency", None, 2000.0)),
        ("is-json", Assertion("is-json")),
    ],
)
def test_assertion_lines_read_and_write_back(line: str, expected: Assertion) -> None:
    parsed = parse_assertion_line(line)
    assert parsed == expected
    assert parse_assertion_line(assertion_line(parsed)) == parsed


def test_a_threshold_that_is_no_number_is_refused() -> None:
    with pytest.raises(CasesFileError, match="threshold 'x' of levenshtein is not a number"):
        parse_assertion_line("levenshtein(x): a")


def test_csv_threshold_metadata_and_config_columns_as_promptfoo_reads_them() -> None:
    text = ("q,__expected1,__expected2,__threshold,__metadata:severity,__config:__expected2:threshold\n"
            "a,contains: x,similar: y,0.5,high,0.9\n"
            "b,contains: x,,,,0.7\n")  # fmt: skip
    first, second = cases_from_csv(text)
    assert first.threshold == 0.5 and second.threshold is None  # an empty __threshold: none
    assert dict(first.vars) == {"q": "a"}  # metadata is no variable
    assert [a.threshold for a in first.asserts] == [None, 0.9]
    assert [a.threshold for a in second.asserts] == [None]  # the second assertion's cell is empty
    with pytest.raises(CasesFileError, match=r"line 2, column __threshold: 'half' is not a number"):
        cases_from_csv("q,__threshold\na,half\n")
    with pytest.raises(CasesFileError, match=r"column __providerOutput is not supported"):
        cases_from_csv("q,__providerOutput\na,b\n")
