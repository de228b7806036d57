"""Grid files: promptfoo's vocabulary read into a GridConfig; errors name the line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.grid.config import (
    GridFileError,
    dump_grid,
    grid_from_dict,
    load_grid,
    parse_grid_text,
)
from app.core.grid.model import Assertion, Variant
from app.core.url_keys import UrlKey, forget_url_keys, url_key

EXAMPLE = """\
description: Capitals
prompts:
  - "What is the capital of {{country}}? One word."
providers:
  - openai:chat:gpt-4o-mini
  - id: local:smollm2
    label: smol + lora
    config:
      temperature: 0
      max_tokens: 32
      seed: 7
      stop: ["\\n"]
      system: Be brief.
      adapters: ["/tmp/my-lora:0.8", /tmp/other]
  - id: openai:test-model
    config: {apiBaseUrl: "http://127.0.0.1:9/v1", top_p: 0.5}
defaultTest:
  assert:
    - type: not-icontains
      value: sorry
  options:
    provider: local:smollm2
tests:
  - description: France
    vars: {country: France}
    assert:
      - {type: icontains, value: paris}
      - {type: levenshtein, value: Paris, threshold: 2}
      - {type: cost, threshold: 0.01}
      - {type: llm-rubric, value: names a city}
  - vars: {country: Japan}
"""


def test_a_promptfoo_config_reads_into_variants_tests_and_defaults() -> None:
    config = parse_grid_text(EXAMPLE, source="grid.yaml")
    assert config.description == "Capitals" and config.warnings == ()
    assert [p.template for p in config.prompts] == ["What is the capital of {{country}}? One word."]
    plain, smol, remote = config.variants
    assert plain == Variant("openai:gpt-4o-mini")
    assert smol.model == "local:smollm2" and smol.label == "smol + lora"
    assert (smol.temperature, smol.max_tokens, smol.seed, smol.stop, smol.system) == (0.0, 32, 7, ("\n",), "Be brief.")
    assert [(a.path, a.scale) for a in smol.adapters] == [("/tmp/my-lora", 0.8), ("/tmp/other", 1.0)]
    assert remote.endpoint == "http://127.0.0.1:9/v1" and remote.top_p == 0.5
    assert config.default_asserts == (Assertion("not-icontains", "sorry"),)
    assert config.grader == Variant("local:smollm2")
    france, japan = config.tests
    assert france.description == "France" and dict(france.vars) == {"country": "France"}
    assert [a.type for a in france.asserts] == ["icontains", "levenshtein", "cost", "llm-rubric"]
    assert france.asserts[1].threshold == 2.0 and france.asserts[2].threshold == 0.01
    rows = config.rows()
    assert len(rows) == 2 and [a.type for a in rows[1].asserts] == ["not-icontains"]


def test_the_request_of_a_variant_carries_its_own_parameters() -> None:
    config = parse_grid_text(EXAMPLE)
    row = config.rows()[0]
    request = config.variants[1].request(row.prompt.messages(row.vars))
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."), ("user", "What is the capital of France? One word.")]
    assert (request.params.temperature, request.params.max_tokens, request.params.seed) == (0.0, 32, 7)
    assert request.endpoint is None and len(request.adapters) == 2


def test_save_and_read_back_gives_the_same_grid(tmp_path: Path) -> None:
    config = parse_grid_text(EXAMPLE)
    path = tmp_path / "again.yaml"
    path.write_text(dump_grid(config), encoding="utf-8")
    assert load_grid(path) == config
    json_path = tmp_path / "again.json"
    json_path.write_text(dump_grid(config, as_json=True), encoding="utf-8")
    assert load_grid(json_path) == config
    assert grid_from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prompts: [hi]\nproviders:\n  - id: mock:echo\n    config:\n      temperature: 5\n",
         "grid.yaml, line 5: providers[0].config.temperature: temperature must be between 0 and 2"),
        ("prompts: [hi]\nproviders: [mock:echo]\ntests:\n  - vars: {a: 1}\n    assert:\n      - type: webhook\n",
         "grid.yaml, line 6: tests[0].assert[0].type: 'webhook' is not an assertion type"),
        ("prompts: [hi]\nproviders: [nope:model]\n", "grid.yaml, line 2: providers[0]: Unknown provider 'nope'"),
        ("providers: [mock:echo]\n", "grid.yaml: 'prompts' is missing"),
        ("prompts: [hi]\nproviders: [mock:echo]\nproviders: [mock:echo]\n", "line 3: providers: this key is given twice (lines 2 and 3)"),
        ("prompts: [hi\nproviders: x\n", "grid.yaml, line 2, column 10: not valid YAML"),
        ("prompts: [hi]\nproviders:\n  - id: mock:echo\n    config: {adapters: [x]}\n",
         "line 4: providers[0].config.adapters: mock:echo cannot take LoRA adapters"),
        ("prompts: [hi]\nproviders: [mock:echo]\ntests:\n  - assert: [{type: javascript}]\n",
         "line 4: tests[0].assert[0].value: javascript needs code"),
        ("prompts: [hi]\nproviders: [mock:echo]\ntests:\n  - assert: [{type: regex, value: '(('}]\n",
         "line 4: tests[0].assert[0].value: not a valid JavaScript regular expression"),
        ("prompts: [hi]\nproviders: [mock:echo]\ntests:\n  - assert: [{type: latency}]\n",
         "tests[0].assert[0]: latency needs a threshold (the maximum milliseconds)"),
    ],
)
def test_errors_name_the_line_and_the_key(text: str, expected: str) -> None:
    with pytest.raises(GridFileError) as caught:
        parse_grid_text(text, source="grid.yaml")
    assert expected in caught.value.message
    assert caught.value.hint


def test_json_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "grid.json"
    path.write_text('{\n  "prompts": ["hi"],\n  "providers": ["mock:echo"]\n  "tests": []\n}\n', encoding="utf-8")
    with pytest.raises(GridFileError, match=r"grid.json, line 4, column 3: not valid JSON"):
        load_grid(path)


def test_unknown_keys_are_ignored_with_a_warning_and_keys_kept_in_memory_only() -> None:
    text = ("outputPath: out.json\nprompts: [hi]\nproviders:\n  - id: openai:gpt-4o-mini\n"
            "    config: {apiKey: sk-secretsecretsecret, temprature: 1, apiBaseUrl: 'http://127.0.0.1:9/v1'}\n")
    try:
        config = parse_grid_text(text, source="g.yaml")
        assert len(config.warnings) == 2
        assert "g.yaml, line 1: outputPath: ignored" in config.warnings[0]
        assert "temprature: ignored" in config.warnings[1]
        assert "sk-secret" not in repr(config.to_dict()) and "sk-secret" not in repr(config)
        assert url_key("http://127.0.0.1:9/v1") == UrlKey("sk-secretsecretsecret")  # in memory, for that server
        with pytest.raises(GridFileError, match="line 5: providers\\[0\\].config.apiKey: a key in a grid file goes with an apiBaseUrl"):
            parse_grid_text(text.replace(", apiBaseUrl: 'http://127.0.0.1:9/v1'", ""), source="g.yaml")
    finally:
        forget_url_keys()


def test_tests_and_prompts_from_files_relative_to_the_grid(tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_text("country,__expected\nFrance,icontains: paris\nItaly,\n", encoding="utf-8")
    (tmp_path / "prompts.txt").write_text("First {{country}}\n---\nSecond {{country}}\n", encoding="utf-8")
    grid = tmp_path / "grid.yaml"
    grid.write_text("prompts: [file://prompts.txt]\nproviders: [echo]\ntests: file://cases.csv\n", encoding="utf-8")
    config = load_grid(grid)
    assert [p.template for p in config.prompts] == ["First {{country}}", "Second {{country}}"]
    assert [dict(t.vars) for t in config.tests] == [{"country": "France"}, {"country": "Italy"}]
    assert config.tests[0].asserts == (Assertion("icontains", "paris"),)
    assert len(config.rows()) == 4
    grid.write_text("prompts: [hi]\nproviders: [echo]\ntests: file://missing.csv\n", encoding="utf-8")
    with pytest.raises(GridFileError, match=r"grid.yaml, line 3: tests: the file .*missing.csv' does not exist"):
        load_grid(grid)


def test_relative_adapter_paths_start_at_the_grid_file(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("prompts: [hi]\nproviders:\n  - id: local:smollm2\n    config: {adapters: ['lora/a:0.5']}\n",
                    encoding="utf-8")
    (adapter,) = load_grid(grid).variants[0].adapters
    assert adapter.path == str((tmp_path / "lora" / "a").resolve()) and adapter.scale == 0.5


def test_a_prompts_response_format_reaches_its_requests_and_survives_a_save() -> None:
    text = ("prompts:\n  - label: json\n    raw: 'Judge {{x}}'\n    config:\n      response_format:\n"
            "        type: json_schema\n        json_schema: {name: verdict, schema: {type: object}}\n"
            "  - plain {{x}}\nproviders: [mock:echo]\ntests: [{vars: {x: 1}}]\n")  # fmt: skip
    config = parse_grid_text(text)
    json_prompt, plain = config.prompts
    assert json_prompt.has_response_format and json_prompt.response_schema is not None
    assert json_prompt.response_schema.schema == {"type": "object"}
    assert not plain.has_response_format
    assert grid_from_dict(config.to_dict()) == config
    with pytest.raises(GridFileError, match=r"prompts\[0\]\.config\.temperature: 'temperature' is not supported"):
        parse_grid_text("prompts:\n  - raw: hi\n    config: {temperature: 1}\nproviders: [mock:echo]\n")
