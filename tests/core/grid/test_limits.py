"""Hostile grid and cases files fail at once, naming the limit: aliases, nesting, cells,
prompt size and file size (issue 18, item 3)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from app.core.grid import limits
from app.core.grid.cases import CasesFileError, cases_from_csv, cases_from_jsonl, load_cases
from app.core.grid.config import GridFileError, load_grid, parse_grid_text
from app.core.grid.model import render
from app.core.grid.runner import GridRunner


def laughs(depth: int = 8, width: int = 10) -> str:
    """The billion-laughs grid: each level an alias list of the one before, ``depth`` deep."""
    lines = ["a0: &a0 [" + ",".join(['"lol"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth + 1)]
    lines += ['prompts: ["Say {{x}}"]', "providers: [mock:echo]", "tests:", f"  - vars: {{x: *a{depth}}}"]
    return "\n".join(lines) + "\n"


def test_billion_laughs_fails_in_a_moment_within_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    with pytest.raises(GridFileError, match=r"laughs.yaml: the file expands to more than 200,000 values"):
        load_grid(path)
    assert time.monotonic() - t0 < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: under 100 MB more


def test_aliases_within_the_limit_still_work() -> None:
    config = parse_grid_text(laughs(depth=2))
    assert len(config.tests[0].vars["x"]) == 10 and config.tests[0].vars["x"][0][0] == ["lol"] * 10


def test_long_text_repeated_by_aliases_counts_its_characters() -> None:
    text = f'big: &b "{"x" * 1_000_000}"\nprompts: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n'
    with pytest.raises(GridFileError, match="16,000,000 characters"):
        parse_grid_text(text + "providers: [mock:echo]\n")


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &a {k: *a}\n"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    with pytest.raises(GridFileError, match="alias refers to a value that contains it"):
        parse_grid_text(text)


@pytest.mark.parametrize("text", ["prompts: " + "[" * 100_000, "prompts: " + "[" * 5_000 + "]" * 5_000,
                                  "x: " + "[" * 150 + "]" * 150])  # fmt: skip
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(GridFileError, match="nested more than 100 deep"):
        parse_grid_text(text)


def test_deep_nesting_in_a_json_grid_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "grid.json"
    path.write_text('{"prompts": ' + "[" * 5_000 + "]" * 5_000 + "}")
    with pytest.raises(GridFileError, match="nested more than 100 deep"):
        load_grid(path)


def test_too_many_cells_are_refused_before_anything_is_planned() -> None:
    prompts = "[" + ", ".join(f'"p{i}"' for i in range(101)) + "]"
    tests = "[" + ", ".join("{vars: {}}" for _ in range(100)) + "]"
    with pytest.raises(GridFileError, match=r"10,100 cells, more than the limit of 10,000"):
        parse_grid_text(f"prompts: {prompts}\nproviders: [mock:echo]\ntests: {tests}\n")


def test_a_prompt_past_the_size_limit_is_a_problem_of_its_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_PROMPT_CHARS", 1_000)
    with pytest.raises(limits.LimitError, match="longer than the limit of 1,000 characters"):
        render("{{x}}" * 300, {"x": "abcd"})
    with pytest.raises(limits.LimitError, match="longer than the limit"):
        render("{{x}}", {"x": [["y" * 100] * 100] * 100_000})  # never dumped whole
    assert render("{{x}}!", {"x": [1, 2]}) == "1,2!"  # as nunjucks prints an array
    with pytest.raises(limits.LimitError, match="longer than the limit"):
        render("{% for i in range(10000) %}{{x}}{% endfor %}", {"x": "y" * 10})  # stops at the limit
    config = parse_grid_text('prompts: ["{{x}}{{x}}"]\nproviders: [mock:echo]\ntests: [{vars: {x: "' + "z" * 600 + '"}}]\n')
    runner = GridRunner(None, config)  # type: ignore[arg-type]  # planning only: no scheduler needed
    [problem] = runner.problems()
    assert problem.error is not None and "limit of 1,000 characters" in problem.error


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1024)
    grid = tmp_path / "grid.yaml"
    grid.write_text("prompts: [hi]\nproviders: [mock:echo]\n# " + "x" * 2000 + "\n")
    with pytest.raises(GridFileError, match="grid.yaml is larger than the limit of 0.0009765"):
        load_grid(grid)
    cases = tmp_path / "cases.csv"
    cases.write_text("a\n" + "x\n" * 1000)
    with pytest.raises(CasesFileError, match="cases.csv is larger than the limit"):
        load_cases(cases)
    grid.write_text("prompts: [hi]\nproviders: [mock:echo]\ntests: [file://cases.csv]\n")
    with pytest.raises(GridFileError, match=r"grid.yaml, line 3: tests\[0\]: cases.csv is larger than the limit"):
        load_grid(grid)


def test_cases_files_past_the_case_limit_or_with_huge_cells_are_refused(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr("app.core.grid.cases.MAX_CELLS", 10)
    with pytest.raises(CasesFileError, match="more than 10 cases"):
        cases_from_csv("a\n" + "x\n" * 11)
    with pytest.raises(CasesFileError, match="more than 10 cases"):
        cases_from_jsonl('{"a": 1}\n' * 11)
    with pytest.raises(CasesFileError, match="line 1: field larger than field limit"):
        cases_from_csv("a\n" + "x" * 200_000 + "\n")
    path = tmp_path / "cases.yaml"
    path.write_text(laughs().split("prompts")[0] + "list: [*a8]\n")
    with pytest.raises(CasesFileError, match="expands to more than 200,000 values"):
        load_cases(path)


def test_files_and_prompts_of_a_whole_grid_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_GRID_CHARS", 2_000)
    for i in range(3):
        (tmp_path / f"doc{i}.txt").write_text("x" * 900, encoding="utf-8")
    grid = tmp_path / "grid.yaml"
    grid.write_text("prompts: ['{{d}}']\nproviders: [mock:echo]\ntests: [{vars: {d: 'file://doc*.txt'}}]\n", encoding="utf-8")
    with pytest.raises(limits.LimitError, match="line 3: tests\\[0\\].vars.d: the files the grid reads hold more than 2,000"):
        load_grid(grid)
    config = parse_grid_text("prompts: ['{{d}}{{d}}']\nproviders: [mock:echo]\ntests: [{vars: {d: [" + ", ".join(["y" * 400] * 3) + "]}}]\n")
    runner = GridRunner(None, config)  # type: ignore[arg-type]  # planning only
    assert [c.status for c in runner.cells.values()] == ["idle", "idle", "invalid"]
    assert "prompts together are longer than 2,000 characters" in (runner.problems()[0].error or "")


def test_yaml_plain_scalars_read_as_promptfoos_yaml_1_2() -> None:
    _, data = limits.compose_yaml("a: Yes\nb: off\nc: true\nd: 12:30\ne: 012\nf: 0x1F\ng: 1e3\nh: 0o17\ni: FALSE\n", "g.yaml")
    assert data == {"a": "Yes", "b": "off", "c": True, "d": "12:30", "e": 12, "f": 31, "g": 1000.0, "h": 15, "i": False}
