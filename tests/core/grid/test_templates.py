"""Prompt templates rendered as promptfoo's nunjucks renders them, in a bounded sandbox.

Expected outputs follow nunjucks' documented behaviour (mozilla.github.io/nunjucks/templating:
undefined prints nothing, ``for k, v in obj``, filters) and promptfoo's
src/evaluatorHelpers.ts (renderPrompt) and src/util/templates.ts (autoescape off)."""

from __future__ import annotations

import time

import pytest

from app.core.errors import InvalidParams
from app.core.grid import limits
from app.core.grid.model import Prompt
from app.core.grid.templates import Rendered, js_text, render_template, template_names


def r(template: str, **variables: object) -> str:
    return render_template(template, variables).text


def test_if_for_and_filters_render_as_nunjucks() -> None:
    assert r("{% if formal %}Dear {{ name | title }},{% else %}Hi {{ name }}{% endif %}", formal=True, name="ann lee") == "Dear Ann Lee,"
    assert r("{% for f in facts %}{{ loop.index }}. {{ f | upper }}\n{% endfor %}", facts=["a", "b"]) == "1. A\n2. B\n"
    assert r("{% for k, v in obj %}{{ k }}={{ v }};{% endfor %}", obj={"x": 1, "y": 2}) == "x=1;y=2;"
    assert r("{{ items | join(', ') }} {{ items | length }} {{ items | first }} {{ items | last }}", items=["a", "b"]) == "a, b 2 a b"
    assert r("[{{ '  x  ' | trim }}] {{ missing | default('d') }} {{ 'abc' | replace('b', 'X') }} {{ 'A' | lower }}") == "[x] d aXc a"
    assert r("<b>{{ html }}</b>\n", html="<i>&</i>") == "<b><i>&</i></b>\n"  # no escaping; trailing newline kept


def test_promptfoo_load_and_dump_filters() -> None:
    assert r("{{ (j | load).city }} {{ j | load | dump }}", j='{"city": "Oslo", "n": [1, 2]}') == 'Oslo {"city":"Oslo","n":[1,2]}'
    assert r("{{ obj | dump }}", obj={"a": True, "b": None}) == '{"a":true,"b":null}'
    with pytest.raises(InvalidParams, match="load filter got text that is not JSON"):
        r("{{ 'nope' | load }}")


def test_values_print_as_javascript_and_undefined_renders_empty() -> None:
    assert r("{{ t }} {{ f }} {{ n }} {{ x }} {{ lst }} {{ obj }}", t=True, f=False, n=None, x=5.0, lst=[1, "b", None],
             obj={"a": 1}) == "true false  5 1,b, [object Object]"  # fmt: skip
    assert render_template("Hi {{ who }} {{ a.b.c }}!", {}) == Rendered("Hi  !", ("who", "a"))
    assert js_text(0.5) == "0.5" and js_text(float("nan")) == "NaN"
    assert template_names("{{ b | upper }} {% for x in items %}{{ x }}{{ a }}{% endfor %}") == ["b", "items", "a"]


def test_a_json_prompt_has_its_strings_rendered_as_promptfoo_does() -> None:
    prompt = Prompt('[{"role": "system", "content": "Be {{ tone }}"}, {"role": "user", "content": "Say \\"{{ q }}\\""}]')
    messages = prompt.messages({"tone": "brief", "q": 'a "quoted"\nline'})
    assert [(m.role, m.content) for m in messages] == [("system", "Be brief"), ("user", 'Say "a "quoted"\nline"')]


def test_a_syntax_error_names_the_line() -> None:
    with pytest.raises(InvalidParams, match=r"not a valid template \(line 2: "):
        r("ok\n{% if %}")


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(3000) %}{% for j in range(3000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
        "{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}",
        '{{ "x" * 10**9 }}',
        '{{ 7 ** 100000000 }}',
        '{% set s = "x" * 900000 %}{{ s ~ s }}',
        '{{ "%0999999999d" % 1 }}',
        '{{ "{:>999999999}".format(1) }}',
        '{{ "ab".center(10**9) }}',
        '{{ big | replace("", "yyyyyyyyyy") }}',
    ],
)
def test_hostile_templates_fail_fast_with_the_limit(template: str) -> None:
    start = time.monotonic()
    with pytest.raises(limits.LimitError, match="limit"):
        render_template(template, {"l": list(range(1000)), "big": "z" * 200_000})
    assert time.monotonic() - start < 4.0


def test_the_output_limit_is_the_prompt_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_PROMPT_CHARS", 100)
    assert len(r("{% for i in range(10) %}0123456789{% endfor %}")) == 100
    with pytest.raises(limits.LimitError, match="longer than the limit of 100 characters"):
        r("{% for i in range(11) %}0123456789{% endfor %}")
