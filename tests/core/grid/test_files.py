"""Prompts, variables and tests from files, as promptfoo reads them (paths relative to the
grid file). Expectations follow promptfoo's docs (configuration/parameters: prompts from
files, globs, {path: label}, chat prompts in JSON/YAML; file:// vars) and its sources
src/prompts/processors/text.ts (``---`` separators, ``path: text`` labels) and
src/evaluatorHelpers.ts (var files: text trimmed, YAML as JSON text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.grid.config import GridFileError, grid_from_dict, load_grid
from app.core.grid.model import Assertion


def grid(tmp_path: Path, body: str, **files: str) -> Path:
    for name, text in files.items():
        target = tmp_path / name.replace("__", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    path = tmp_path / "sub" / "grid.yaml" if "sub" in body else tmp_path / "grid.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_a_bare_path_a_glob_and_a_label_map_read_their_files(tmp_path: Path) -> None:
    path = grid(tmp_path, "prompts: [prompt.txt, 'file://prompts/*.txt', Just text.]\nproviders: [echo]\n",
                **{"prompt.txt": "Hi {{name}}\n", "prompts__b.txt": "B one\n---\nB two\n", "prompts__a.txt": "A\n"})  # fmt: skip
    config = load_grid(path)
    assert [p.template for p in config.prompts] == ["Hi {{name}}", "A", "B one", "B two", "Just text."]
    assert [p.label for p in config.prompts][:3] == ["prompt.txt: Hi {{name}}", "prompts/a.txt: A", "prompts/b.txt: B one"]
    path.write_text("prompts: {prompt.txt: greeting}\nproviders: [echo]\n", encoding="utf-8")
    assert [(p.template, p.label) for p in load_grid(path).prompts] == [("Hi {{name}}", "greeting: prompt.txt: Hi {{name}}")]


def test_json_and_yaml_chat_prompt_files_become_messages(tmp_path: Path) -> None:
    chat = [{"role": "system", "content": "Answer in {{ lang }}."}, {"role": "user", "content": "{{ q }}"}]
    path = grid(tmp_path, "prompts: [file://chat.json, file://chat.yaml]\nproviders: [echo]\n",
                **{"chat.json": json.dumps(chat), "chat.yaml": "- role: system\n  content: Answer in {{ lang }}.\n"
                   "- role: user\n  content: '{{ q }}'\n"})  # fmt: skip
    config = load_grid(path)
    for prompt in config.prompts:
        messages = prompt.messages({"lang": "French", "q": "Capital?"})
        assert [(m.role, m.content) for m in messages] == [("system", "Answer in French."), ("user", "Capital?")]
    assert config.prompts[0].label == "chat.json"


def test_file_vars_are_read_and_a_glob_expands_to_cases(tmp_path: Path) -> None:
    path = grid(tmp_path, "prompts: ['{{doc}} / {{meta}}']\nproviders: [echo]\n"
                          "tests:\n  - vars: {doc: 'file://docs/*.md', meta: file://meta.yaml}\n",
                **{"docs__1.md": "first\n\n", "docs__2.md": "second", "meta.yaml": "a: 1\nb: [x]\n"})  # fmt: skip
    config = load_grid(path)
    assert [dict(t.vars) for t in config.tests] == [{"doc": "first", "meta": '{"a": 1, "b": ["x"]}'},
                                                   {"doc": "second", "meta": '{"a": 1, "b": ["x"]}'}]  # fmt: skip


def test_paths_are_relative_to_the_grid_file_and_tests_come_from_files(tmp_path: Path) -> None:
    path = grid(tmp_path, "prompts: [../p.txt]\nproviders: [echo]\ntests: [file://../t.jsonl, ../t.yaml]\n# sub\n",
                **{"p.txt": "P {{x}}", "t.jsonl": '{"vars": {"x": 1}}\n', "t.yaml": "- vars: {x: 2}\n"})  # fmt: skip
    assert path.parent.name == "sub"
    config = load_grid(path)
    assert config.prompts[0].template == "P {{x}}" and [t.vars["x"] for t in config.tests] == [1, 2]


@pytest.mark.parametrize(
    ("body", "files", "expected"),
    [
        ("prompts: [file://nope.txt]\n", {}, "line 1: prompts\\[0\\]: the file '.*nope.txt' does not exist"),
        ("prompts: ['file://none/*.txt']\n", {}, "prompts\\[0\\]: no file matches 'none/\\*.txt'"),
        ("prompts: [file://p.py]\n", {"p.py": "def f(): pass"}, "p.py: prompts written as code \\(.py\\) are not supported"),
        ("prompts: [hi]\ntests: [{vars: {x: file://v.js}}]\n", {"v.js": "1"}, "v.js: variables written as code"),
        ("prompts: [hi]\ntests: [{vars: {x: file://missing.txt}}]\n", {}, "tests\\[0\\].vars.x: the file .*missing.txt"),
        ("prompts: [hi]\ntests: [{vars: {x: file://img.png}}]\n", {"img.png": "x"}, "images, audio, video and PDF"),
    ],
)
def test_missing_and_unsupported_files_exit_2_with_the_path(tmp_path: Path, body: str, files: dict[str, str],
                                                            expected: str) -> None:  # fmt: skip
    path = grid(tmp_path, body + "providers: [echo]\n", **files)
    with pytest.raises(GridFileError, match=expected):
        load_grid(path)


def test_csv_expected_columns_follow_promptfoos_rules(tmp_path: Path) -> None:
    csv = ("q,__expected1,__expected2,__description,__metric,__prefix\n"
           "a,Paris,icontains: paris,capital,accuracy,Be brief. \n"
           'b,"contains-any: x, y",grade: is polite,,,\n')  # fmt: skip
    config = load_grid(grid(tmp_path, "prompts: ['{{q}}']\nproviders: [echo]\ntests: file://t.csv\n"
                           "defaultTest: {options: {provider: echo}}\n", **{"t.csv": csv}))
    first, second = config.tests
    assert first.asserts == (Assertion("equals", "Paris", metric="accuracy"), Assertion("icontains", "paris", metric="accuracy"))
    assert first.description == "capital" and first.prefix == "Be brief. "
    assert config.rows()[0].prompt.template == "Be brief. {{q}}"
    assert second.asserts == (Assertion("contains-any", ["x", "y"]), Assertion("llm-rubric", " is polite"))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("webhook: https://example.com/check", "the assertion type 'webhook' is not supported"),
        ("rouge-n(0.8): hello", "the assertion type 'rouge-n' is not supported"),
        ("not-moderation", "the assertion type 'not-moderation' is not supported"),
    ],
)
def test_csv_assertions_this_app_cannot_check_exit_2(tmp_path: Path, cell: str, expected: str) -> None:
    path = grid(tmp_path, "prompts: ['{{q}}']\nproviders: [echo]\ntests: file://t.csv\n",
                **{"t.csv": f'q,__expected\na,"{cell}"\n'})  # fmt: skip
    with pytest.raises(GridFileError, match=f"t.csv, line 2, column __expected: {expected}"):
        load_grid(path)


@pytest.mark.parametrize(
    ("cell", "kind", "value"),
    [("javascript: output.length > 3", "javascript", "output.length > 3"),
     ("fn: output === 'x'", "javascript", "output === 'x'"),
     ("python: len(output) > 3", "python", "len(output) > 3"),
     ("similar(0.8): hello", "similar", "hello")],
)
def test_csv_script_and_model_assertions_read_as_promptfoo_reads_them(tmp_path: Path, cell: str, kind: str,
                                                                     value: str) -> None:  # fmt: skip
    path = grid(tmp_path, "prompts: ['{{q}}']\nproviders: [echo]\ntests: file://t.csv\n",
                **{"t.csv": f'q,__expected\na,"{cell}"\n'})  # fmt: skip
    (check,) = load_grid(path).tests[0].asserts
    assert (check.type, str(check.value).strip()) == (kind, value)


def test_a_bare_prompt_that_looks_like_a_missing_file_exits_2(tmp_path: Path) -> None:
    path = grid(tmp_path, "prompts: [prompt.txt]\nproviders: [echo]\n")
    with pytest.raises(GridFileError, match=r"line 1: prompts\[0\]: the file '.*prompt.txt' does not exist"):
        load_grid(path)
    path.write_text("prompts: ['What is 2+2?', Hello, 'Say hi / bye']\nproviders: [echo]\n", encoding="utf-8")
    assert [p.template for p in load_grid(path).prompts] == ["What is 2+2?", "Hello", "Say hi / bye"]
    stored = grid_from_dict({"prompts": ["example.com", "a/b"], "providers": ["echo"]})  # a stored run's prompts are text
    assert [p.template for p in stored.prompts] == ["example.com", "a/b"]
