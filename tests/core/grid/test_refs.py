"""``$ref`` in grid files, as promptfoo dereferences its config."""

from __future__ import annotations

import pytest

from app.core.grid.config import GridFileError, parse_grid_text
from app.core.grid.model import Assertion
from app.core.grid.refs import MAX_NODES

HEAD = "prompts: [hi]\nproviders: [mock:echo]\n"


def test_an_assertion_template_is_read_through_its_ref() -> None:
    config = parse_grid_text(HEAD + """\
tests:
  - assert:
      - $ref: '#/assertionTemplates/pirate'
      - {$ref: '#/assertionTemplates/pirate', value: yarr}
assertionTemplates:
  pirate: {type: icontains, value: arrr}
""")
    assert config.tests[0].asserts == (Assertion("icontains", "arrr"), Assertion("icontains", "yarr"))
    assert not any("assertionTemplates" in w for w in config.warnings)


@pytest.mark.parametrize(("ref", "message"), [
    ("'#/assertionTemplates/nope'", "points at nothing in this file"),
    ("'other.yaml#/x'", "only references into this file"),
    ("'#/assertionTemplates/loop'", "leads back to itself"),
])  # fmt: skip
def test_a_bad_ref_exits_naming_its_line(ref: str, message: str) -> None:
    text = HEAD + f"tests:\n  - assert:\n      - $ref: {ref}\nassertionTemplates:\n  loop: {{$ref: '#/assertionTemplates/loop'}}\n"
    with pytest.raises(GridFileError, match=rf"grid file, line 5: tests\[0\]\.assert\[0\]\.\$ref: .*{message}"):
        parse_grid_text(text)


def test_tool_parameters_keep_their_json_schema_refs() -> None:
    config = parse_grid_text(HEAD.replace("[mock:echo]", "") + """\
  - id: openai:gpt-4o-mini
    config:
      tools:
        - type: function
          function:
            name: f
            parameters: {type: object, properties: {a: {$ref: '#/$defs/A'}}, $defs: {A: {type: string}}}
tests: [{assert: [{$ref: '#/t'}]}]
t: {type: contains, value: x}
""")
    assert config.tests[0].asserts == (Assertion("contains", "x"),)
    assert "$ref" in str(config.variants[0].tools)


def test_refs_that_multiply_stop_at_the_limit() -> None:
    levels = "\n".join(f"l{i}: [{{$ref: '#/l{i - 1}'}}, {{$ref: '#/l{i - 1}'}}]" for i in range(1, 25))
    with pytest.raises(GridFileError, match=f"over {MAX_NODES:,} values"):
        parse_grid_text(HEAD + "l0: [1]\n" + levels + "\ntests: [{vars: {x: {$ref: '#/l24'}}}]\n")
