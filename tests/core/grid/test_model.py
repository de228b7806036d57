"""Templates, prompts as chat messages, variants' requests and the rows of a grid."""

from __future__ import annotations

from app.core.grid.model import (
    Assertion,
    GridConfig,
    MissingVariables,
    Prompt,
    TestCase,
    Variant,
    render,
    template_vars,
)
from app.core.grid.templates import Rendered, render_template


def test_render_fills_variables_and_names_every_missing_one() -> None:
    assert render("Hi {{ name }}, {{obj.city}} {{n}} {{items}}", {"name": "Ann", "obj": {"city": "Oslo"}, "n": 3,
                                                                  "items": [1, 2]}) == 'Hi Ann, Oslo 3 1,2'
    # promptfoo (nunjucks) renders an undefined variable empty; the names are reported
    assert render_template("{{a}} {{b}} {{a}}!", {}) == Rendered("  !", ("a", "b"))
    assert "{{a}}, {{b}}" in MissingVariables(["a", "b"]).message
    assert template_vars("{{x}} and {{ y }} and {{x}}") == ["x", "y"]


def test_a_json_chat_prompt_becomes_its_messages() -> None:
    prompt = Prompt('[{"role": "system", "content": "Be {{tone}}"}, {"role": "user", "content": "Hi"}]')
    messages = prompt.messages({"tone": "terse"})
    assert [(m.role, m.content) for m in messages] == [("system", "Be terse"), ("user", "Hi")]
    assert [m.content for m in Prompt("[not json]").messages({})] == ["[not json]"]


def test_a_grid_without_tests_is_one_row_per_prompt() -> None:
    config = GridConfig(prompts=(Prompt("a"), Prompt("b")), variants=(Variant("mock:echo"),))
    assert [(r.prompt_index, r.test_index) for r in config.rows()] == [(0, None), (1, None)]
    two = config.with_(tests=(TestCase({"x": 1}), TestCase({"x": 2})))
    assert [(r.prompt_index, r.test_index) for r in two.rows()] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_a_metric_name_is_rendered_with_each_tests_vars_as_promptfoo_does() -> None:
    config = GridConfig(prompts=(Prompt("{{topic}}"),), variants=(Variant("mock:echo"),),
                        default_asserts=(Assertion("contains", "a", metric="{{ topic | upper }}"),),
                        tests=(TestCase({"topic": "tides"}, asserts=(Assertion("equals", "x", metric="exact-{{topic}}"),)),
                               TestCase({"topic": "moon"})))  # fmt: skip
    assert [[a.metric for a in r.asserts] for r in config.rows()] == [["TIDES", "exact-tides"], ["MOON"]]
    broken = config.with_(default_asserts=(Assertion("contains", "a", metric="{{ topic | nosuchfilter }}"),))
    assert [a.metric for a in broken.rows()[0].asserts][0] == "{{ topic | nosuchfilter }}"  # kept as written


def test_variant_defaults_and_what_only_some_models_take() -> None:
    v = Variant("mock:echo", endpoint="http://x/v1", adapters=())
    request = v.request(Prompt("hi").messages({}), lambda model: 0.0)
    assert request.endpoint is None and request.params.temperature == 0.0 and request.params.max_tokens == 512
    assert Variant("openai:gpt-4o", temperature=0.3).title == "openai:gpt-4o"
    assert Variant("openai:gpt-4o", label="fast").title == "fast"
