"""Grid file entries (app/core/grid/entries.py): providers with their config and assertions,
each checked, errors naming the line and key with a hint, ignored keys warned about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.core.grid.doc import Doc, GridFileError
from app.core.grid.entries import as_list, assertions, normalize_model_id, variant_entry
from app.core.grid.model import DEFAULT_LEVENSHTEIN, Assertion
from app.core.url_keys import forget_url_keys


def doc(base_dir: Path | None = None) -> Doc:
    return Doc("g.yaml", {("providers", 0): 3, ("providers", 0, "config"): 4, ("tests",): 7}, base_dir)


def fails(value: Any, make: Any = None) -> GridFileError:
    with pytest.raises(GridFileError) as info:
        (make or (lambda v: variant_entry(v, ("providers", 0), doc())))(value)
    assert info.value.hint
    return info.value


def test_promptfoo_provider_ids_are_understood() -> None:
    assert normalize_model_id("openai:chat:gpt-4o") == ("openai:gpt-4o", None)
    assert normalize_model_id("ollama:chat:llama3.2:1b") == ("openai:llama3.2:1b", "Ollama")
    assert normalize_model_id("echo") == ("mock:echo", None)
    assert normalize_model_id("local:smollm2") == ("local:smollm2", None)


def test_as_list() -> None:
    assert as_list("a") == ["a"] and as_list(["a", "b"]) == ["a", "b"] and as_list(None) == [None]


def test_a_provider_is_an_id_a_mapping_or_an_id_keyed_mapping() -> None:
    d = doc()
    assert variant_entry("echo", ("providers", 0), d).model == "mock:echo"
    keyed = variant_entry({"ollama:chat:llama3.2": {"config": {}}}, ("providers", 0), d)
    assert (keyed.model, keyed.endpoint) == ("openai:llama3.2", "Ollama")
    full = variant_entry({"id": "mock:echo", "label": "E", "config": {"temperature": 0, "max_tokens": 5,
                          "seed": 3, "stop": "\n\n", "system": "Be brief."}}, ("providers", 0), d)  # fmt: skip
    assert (full.label, full.temperature, full.max_tokens, full.seed, full.stop, full.system) == (
        "E", 0.0, 5, 3, ("\n\n",), "Be brief.")  # fmt: skip
    assert d.warnings == []


def test_wrong_provider_values_fail_at_their_key() -> None:
    assert "g.yaml, line 3: providers[0]: a provider is a model id" in fails(7).message
    assert "providers[0].label: must be text" in fails({"id": "echo", "label": 3}).message
    assert "providers[0].config: must be a mapping" in fails({"id": "echo", "config": [1]}).message
    bad = fails({"id": "echo", "config": {"max_tokens": "12"}})
    assert "line 4: providers[0].config.max_tokens: must be a whole number" in bad.message
    assert "without quotes" in bad.hint
    assert "config.seed: must be a whole number" in fails({"id": "echo", "config": {"seed": True}}).message
    assert "config.stop: must be text or a list" in fails({"id": "echo", "config": {"stop": [""]}}).message
    assert "config.top_p" in fails({"id": "echo", "config": {"top_p": 3}}).message
    endpoint = fails({"id": "echo", "config": {"endpoint": "http://x/v1"}})
    assert "only OpenAI-compatible models" in endpoint.message


def test_ignored_keys_and_keys_in_files_are_warned_about_never_kept() -> None:
    d = doc()
    v = variant_entry({"id": "openai:gpt-4o-mini", "extra": 1, "config": {"apiKey": "sk-abcdefabcdefabcdef", "temprature": 1,
                                                                          "apiBaseUrl": "http://127.0.0.1:9/v1"}},
                      ("providers", 0), d)  # fmt: skip
    forget_url_keys()
    assert len(d.warnings) == 2
    assert "providers[0].extra: ignored" in d.warnings[0]
    assert "temprature: ignored (config takes temperature" in d.warnings[1]
    assert "sk-abc" not in repr(v) and "sk-abc" not in repr(v.to_dict())  # the key is in memory only


def test_adapters_resolve_against_the_grid_folder_and_need_a_local_model(tmp_path: Path) -> None:
    v = variant_entry({"id": "local:smollm2", "config": {"adapters": ["lora/a:0.5", "/abs/b"]}}, ("providers", 0), doc(tmp_path))
    assert [(a.path, a.scale) for a in v.adapters] == [(str((tmp_path / "lora" / "a").resolve()), 0.5), ("/abs/b", 1.0)]
    assert "config.adapters[1]: an adapter is PATH" in fails({"id": "local:x", "config": {"adapters": ["a", ""]}}).message
    assert "LoRA scale must be between 0 and 10" in fails({"id": "local:x", "config": {"adapters": "a:11"}}).message
    assert "cannot take LoRA adapters" in fails({"id": "mock:echo", "config": {"adapters": "a"}}).message


def test_assertions_are_read_with_their_defaults_and_shorthands() -> None:
    read = assertions([
        {"type": "contains", "value": 42},
        {"type": "not-contains-any", "value": "a, b,"},
        {"type": "cost", "value": 0.01},
        {"type": "levenshtein", "value": "Paris"},
        {"type": "is-json"},
        {"type": "llm-rubric", "value": "polite", "provider": {"id": "openai:gpt-4o"}},
    ], ("tests",), doc())  # fmt: skip
    assert read == (
        Assertion("contains", "42"),
        Assertion("not-contains-any", ["a", "b"]),
        Assertion("cost", None, 0.01),
        Assertion("levenshtein", "Paris", DEFAULT_LEVENSHTEIN),
        Assertion("is-json"),
        Assertion("llm-rubric", "polite", None, "openai:gpt-4o"),
    )
    assert assertions(None, ("tests",), doc()) == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"type": "contains"}, "contains needs a value"),
        ({"value": "x"}, "an assertion is a mapping with a type"),
        ({"type": "webhook", "value": "x"}, "'webhook' is not an assertion type"),
        ({"type": "latency", "threshold": -1}, "latency needs a threshold"),
        ({"type": "contains-all", "value": []}, "contains-all needs a list of texts"),
        ({"type": "is-json", "value": {"type": "objekt"}}, "tests[0].value: the schema: $.type: 'objekt' is not valid"),
        ({"type": "contains-json", "value": "{type: object, required: 3}"}, "$.required: 3 is not of type 'array'"),
        ({"type": "tool-call-f1"}, "tool-call-f1 needs the list of function names"),
        ({"type": "tool-call-f1", "value": ["a"], "threshold": 2}, "threshold: must be from 0 to 1"),
        ({"type": "not-is-valid-openai-tools-call"}, "is-valid-openai-tools-call has no not- form"),
        ({"type": "levenshtein"}, "levenshtein needs a value"),
        ({"type": "regex", "value": "(("}, "not a valid JavaScript regular expression: SyntaxError: Invalid"),
        ({"type": "regex", "value": "(?i)x"}, "not a valid JavaScript regular expression"),  # Python would take it
        ({"type": "contains", "value": "x", "threshold": "2"}, "threshold: must be a number"),
    ],
)
def test_wrong_assertions_fail_with_a_hint(value: Any, expected: str) -> None:
    error = fails([value], lambda v: assertions(v, ("tests",), doc()))
    assert expected in error.message and error.message.startswith("g.yaml, line 7: tests[0]")


def test_assert_must_be_a_list() -> None:
    assert "must be a list of assertions" in fails({"type": "contains"}, lambda v: assertions(v, ("tests",), doc())).message


def test_a_provider_transform_is_kept_with_its_file_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def get_transform(output, context):\n    return output\n", encoding="utf-8")
    v = variant_entry({"id": "echo", "transform": "file://t.py"}, ("providers", 0), doc(tmp_path))
    assert v.transform == f"file://{(tmp_path / 't.py').resolve()}"
    assert v.to_dict() == {"id": "mock:echo", "transform": v.transform}  # stored with the run, read back
    assert variant_entry(v.to_dict(), ("providers", 0), doc()) == v
    assert "a transform is JavaScript code" in fails({"id": "echo", "transform": 3}).message
    assert "the file" in fails({"id": "echo", "transform": "file://gone.js"}, lambda v: variant_entry(v, ("providers", 0), doc(tmp_path))).message
    assert "providers[0].env: a provider's 'env' is not supported" in fails({"id": "echo", "env": {}}).message
