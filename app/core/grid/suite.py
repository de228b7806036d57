"""The test cases of a grid as promptfoo builds them from a config:

- variables from files (``file://``, globs) and arrays of texts expand to one case per
  combination (promptfoo's cross product; an array of non-texts stays one value);
- ``scenarios``: each ``config`` entry crossed with each of the scenario's ``tests``
  (variables: defaultTest's, then the entry's, then the test's; assertions: the entry's,
  then the test's), after the plain tests;
- a test's ``options``: ``provider`` (its grader), ``response_format``, ``prefix``,
  ``suffix`` and ``storeOutputAs``; others exit 2;
- ``providers[].prompts``: every reference must name a prompt (by label, ``group:*``
  wildcard, ``label:`` prefix, or the prompt's text).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from app.core.grid.doc import Doc, Path_
from app.core.grid.entries import as_list, assertions, variant_entry
from app.core.grid.files import var_values
from app.core.grid.limits import MAX_CELLS, check_cells
from app.core.grid.model import Prompt, TestCase, Variant
from app.core.grid.prompts import prompt_allowed
from app.core.grid.tool_config import read_response_format

TEST_OPTIONS = ("provider", "response_format", "prefix", "suffix", "storeOutputAs")
NOT_YET = {
    "postprocess": "transforming the output before the checks (use transform)",
    "disableConversationVar": "the _conversation variable",
    "runSerially": "running tests one after another",
}


def expand_tests(tests: tuple[TestCase, ...], defaults: Mapping[str, Any], path: Path_, doc: Doc) -> tuple[TestCase, ...]:
    """Each test with its variables read from files and its arrays expanded (one test per
    combination, in promptfoo's order: the first variable varies slowest)."""
    out: list[TestCase] = []
    for i, test in enumerate(tests):
        merged = {**dict(defaults), **dict(test.vars)}
        names = list(merged)
        choices = [var_values(merged[n], (*path, i, "vars", n), doc) for n in names]
        total = 1
        for c in choices:
            total *= len(c)
            if total > MAX_CELLS:
                check_cells(total, doc.source)
        if total == 1 and all(c[0] is merged[n] for n, c in zip(names, choices, strict=True)):
            out.append(test)
            continue
        for combo in itertools.product(*choices):
            out.append(test.with_(vars=dict(zip(names, combo, strict=True))))
        check_cells(len(out), doc.source)
    return tuple(out)


def scenario_tests(value: Any, defaults: Mapping[str, Any], doc: Doc,
                   read_tests: Callable[[Any, Doc, Path_], tuple[TestCase, ...]]) -> tuple[TestCase, ...]:  # fmt: skip
    """The cases of ``scenarios`` (see the module doc)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        doc.fail(("scenarios",), "must be a list of {config, tests}.", "Write scenarios: [{config: [{vars: {...}}], tests: [...]}].")
    out: list[TestCase] = []
    for s, scenario in enumerate(value):
        path: Path_ = ("scenarios", s)
        if not isinstance(scenario, dict) or not isinstance(scenario.get("config"), list):
            doc.fail(path, "a scenario is {config: [...], tests: [...]}.", "Write config: [{vars: {...}}].")
        for key in scenario:
            if key not in ("config", "tests", "description"):
                doc.fail((*path, key), f"'{key}' is not supported in a scenario (it has config and tests).")
        tests = read_tests(scenario.get("tests"), doc, (*path, "tests")) or (TestCase(),)
        for c, data in enumerate(scenario["config"]):
            at: Path_ = (*path, "config", c)
            if not isinstance(data, dict):
                doc.fail(at, "a scenario's config entry is a mapping (vars, assert, description).")
            for key in data:
                if key not in ("vars", "assert", "description", "metadata"):
                    doc.fail((*at, key), f"'{key}' is not supported in a scenario's config entry.")
            data_vars = data.get("vars") or {}
            if not isinstance(data_vars, dict):
                doc.fail((*at, "vars"), "must be a mapping of names to values.")
            data_asserts = assertions(data.get("assert"), (*at, "assert"), doc)
            for test in tests:
                merged = test.with_(vars={**dict(defaults), **data_vars, **dict(test.vars)},
                                    conversation=test.conversation or f"scenario {s + 1}.{c + 1}",
                                    asserts=(*data_asserts, *test.asserts),
                                    description=test.description or str(data.get("description") or ""))  # fmt: skip
                out += expand_tests((merged,), {}, at, doc)
        check_cells(len(out), doc.source)
    return tuple(out)


def test_options(test: TestCase, value: Any, path: Path_, doc: Doc) -> TestCase:
    """``test`` with its ``options`` applied (see the module doc)."""
    if value is None:
        return test
    if not isinstance(value, dict):
        doc.fail(path, "must be a mapping (provider, response_format, prefix, suffix).")
    changes: dict[str, Any] = {}
    for key, item in value.items():
        at = (*path, key)
        if key in NOT_YET:
            doc.fail(at, f"{NOT_YET[key]} ({key}) is not supported yet.", "Remove it; nothing was sent.")
        if key == "transform":
            continue  # the test's output transform (read with its threshold: entries.case_scoring)
        if key not in TEST_OPTIONS:
            doc.fail(at, f"'{key}' is not a test option this app supports ({', '.join(TEST_OPTIONS)}).",
                     "Remove it; nothing was sent.")  # fmt: skip
        if key == "provider":
            changes["provider"] = variant_entry(item, at, doc)
        elif key == "response_format":
            changes["response_schema"] = read_response_format(item, at, doc)
            changes["has_response_format"] = True
        else:
            if not isinstance(item, str) or (key == "storeOutputAs" and not item.strip().isidentifier()):
                doc.fail(at, "must be text" + (" (a variable name)." if key == "storeOutputAs" else "."))
            changes["store_output_as" if key == "storeOutputAs" else key] = item.strip() if key == "storeOutputAs" else item
    return test.with_(**changes)


def default_options(value: Any, path: Path_, doc: Doc) -> Variant | None:
    """``defaultTest.options``: its ``provider`` (the grader); other options exit 2."""
    if value is None:
        return None
    if not isinstance(value, dict):
        doc.fail(path, "must be a mapping (provider).")
    for key in value:
        if key not in ("provider", "transform"):
            doc.fail((*path, key), f"'{key}' is not supported in defaultTest.options (it takes provider and transform).",
                     "Remove it; nothing was sent.")  # fmt: skip
    grader = value.get("provider")
    return None if grader is None else variant_entry(grader, (*path, "provider"), doc)


def check_prompt_refs(prompts: tuple[Prompt, ...], variants: tuple[Variant, ...], doc: Doc) -> None:
    """Exit 2 when a provider's ``prompts`` names no prompt."""
    for i, variant in enumerate(variants):
        for j, ref in enumerate(variant.prompts):
            if not any(prompt_allowed(p, (ref,)) for p in prompts):
                labels = ", ".join(p.label or p.template[:30] for p in prompts)
                doc.fail(("providers", i, "prompts", j), f"'{ref}' names no prompt (the prompts: {labels}).",
                         "Use a prompt's label (prompts: [{raw: ..., label: NAME}]).")  # fmt: skip


__all__ = ["as_list", "check_prompt_refs", "default_options", "expand_tests", "scenario_tests", "test_options"]
