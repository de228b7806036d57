"""A config's test cases as promptfoo builds them: array vars (cross product), scenarios,
test options, providers[].prompts, and the features that exit 2. Expectations follow
promptfoo's src/evaluator.ts (generateVarCombinations: only arrays of strings expand, the
first variable varies slowest; scenarios: vars defaultTest < config entry < test, asserts
entry + test, appended after the tests) and src/util/promptMatching.ts (label, ``group:*``)."""

from __future__ import annotations

import pytest

from app.core.grid.config import GridFileError, parse_grid_text
from app.core.grid.model import Assertion, Prompt
from app.core.grid.prompts import prompt_allowed
from app.core.grid.runner import GridRunner


def test_arrays_of_texts_expand_to_every_combination() -> None:
    config = parse_grid_text("prompts: ['{{c}} {{l}}']\nproviders: [echo]\n"
                             "defaultTest: {vars: {l: [en, fr]}}\n"
                             "tests:\n  - vars: {c: [France, Spain], n: [1, 2]}\n    assert: [{type: contains, value: x}]\n")  # fmt: skip
    assert [dict(t.vars) for t in config.tests] == [
        {"l": "en", "c": "France", "n": [1, 2]}, {"l": "en", "c": "Spain", "n": [1, 2]},
        {"l": "fr", "c": "France", "n": [1, 2]}, {"l": "fr", "c": "Spain", "n": [1, 2]},
    ]  # an array of numbers stays one value, as in promptfoo
    assert all(t.asserts == (Assertion("contains", "x"),) for t in config.tests)
    assert len(config.rows()) == 4


def test_scenarios_cross_their_config_with_their_tests() -> None:
    config = parse_grid_text("""\
prompts: ["{{topic}} {{tone}}"]
providers: [echo]
defaultTest: {vars: {tone: calm, topic: none}}
tests: [{vars: {topic: plain}}]
scenarios:
  - config:
      - {vars: {topic: cats}, assert: [{type: contains, value: cats}]}
      - {vars: {topic: dogs, tone: loud}}
    tests:
      - description: first
        assert: [{type: icontains, value: a}]
      - {vars: {topic: birds}}
""")
    got = [(t.description, dict(t.vars), [a.value for a in t.asserts]) for t in config.tests]
    assert got == [
        ("", {"topic": "plain"}, []),
        ("first", {"tone": "calm", "topic": "cats"}, ["cats", "a"]),
        ("", {"tone": "calm", "topic": "birds"}, ["cats"]),
        ("first", {"tone": "loud", "topic": "dogs"}, ["a"]),
        ("", {"tone": "loud", "topic": "birds"}, []),
    ]
    arrays = parse_grid_text("prompts: [hi]\nproviders: [echo]\nscenarios:\n  - config: [{vars: {a: [x, y]}}]\n"
                             "    tests: [{vars: {b: [1, 2]}}, {}]\n")  # fmt: skip
    assert [dict(t.vars) for t in arrays.tests] == [{"a": "x", "b": [1, 2]}, {"a": "y", "b": [1, 2]}, {"a": "x"}, {"a": "y"}]


def test_a_provider_runs_only_the_prompts_it_names() -> None:
    config = parse_grid_text("""\
prompts:
  - {raw: "Short {{x}}", label: "short:v1"}
  - {raw: "Long {{x}}", label: long}
providers:
  - {id: echo, label: A, prompts: ["short:*"]}
  - {id: echo, label: B}
tests: [{vars: {x: 1}}]
""")
    runner = GridRunner(None, config)  # type: ignore[arg-type]  # planning only
    assert sorted(runner.cells) == [(0, 0), (0, 1), (1, 1)]
    assert prompt_allowed(Prompt("t", "short:v1"), ["short"]) and not prompt_allowed(Prompt("t", "shorter"), ["short"])
    with pytest.raises(GridFileError, match=r"line 4: providers\[0\].prompts\[0\]: 'nope' names no prompt"):
        parse_grid_text("prompts: [{raw: hi, label: a}]\nproviders:\n  - id: echo\n    prompts: [nope]\n")


def test_test_options_set_the_grader_and_the_response_format() -> None:
    config = parse_grid_text("""\
prompts: [hi]
providers: [echo]
tests:
  - options:
      provider: openai:gpt-4o
      response_format: {type: json_object}
      suffix: " Answer in JSON."
""")
    (test,) = config.tests
    assert test.provider is not None and test.provider.model == "openai:gpt-4o"
    assert test.has_response_format and test.response_schema is not None
    assert config.rows()[0].prompt.template == "hi Answer in JSON."
    assert parse_grid_text(str(config.to_dict()).replace("'", '"')).tests == config.tests  # the stored form reads back


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prompts: [hi]\nproviders: [echo]\nenv: {X: y}\n", "line 3: env: promptfoo's 'env' is not supported"),
        ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    options: {storeOutputAs: 'not a name'}\n",
         r"line 5: tests\[0\].options.storeOutputAs: must be text \(a variable name\)"),
        ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    provider: echo\n",
         r"line 5: tests\[0\].provider: 'provider' is not supported in a test"),
        ("prompts: [hi]\nproviders:\n  - id: echo\n    delay: 5\n", r"line 4: providers\[0\].delay"),
        ("prompts: [{raw: hi, function: x}]\nproviders: [echo]\n", r"prompts\[0\].function: 'function' is not supported"),
    ],
)
def test_unsupported_features_exit_2_naming_the_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(GridFileError, match=expected):
        parse_grid_text(text, source="g.yaml")
