"""javascript and python assertions and transforms, run as promptfoo runs them, within bounds:
a script that throws, loops or exhausts memory fails only its own assertion, in bounded time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.grid.assert_scripts import (
    apply_transform,
    check_script,
    function_body,
    normalize,
    script_ref,
)
from app.core.grid.model import Assertion
from app.core.grid.sandbox import Limits, ScriptError

CONTEXT = {"vars": {"city": "Paris"}, "prompt": "Capital of France?", "test": {}, "logProbs": [-0.1, -0.2],
           "provider": {"id": "mock:echo", "label": "echo"}, "providerResponse": {"output": "x", "finishReason": "stop"}}


def js(run: Callable[..., Any], value: str, output: Any = "The capital is Paris.", **kw: Any) -> Any:
    a = Assertion(kw.pop("type", "javascript"), value, kw.pop("threshold", None))
    return run(check_script(a, script_ref(value), output, CONTEXT), timeout=30)


@pytest.mark.parametrize(
    ("value", "passed", "score"),
    [
        ("output.includes('Paris')", True, 1.0),
        ("output.includes('Rome')", False, 0.0),
        ("context.vars.city === 'Paris' && context.logProbs.length === 2", True, 1.0),
        ("const n = output.length; n > 5", True, 1.0),  # a leading declaration: the last expression
        ("const s = 'a;b'; s === 'a;b'", True, 1.0),
        ("output.length / 100", True, 0.21),  # a number passes above 0 and is the score
        ("0", False, 0.0),
        ("({pass: false, score: 0.4, reason: 'too short'})", False, 0.4),
        ("'true'", True, 1.0),
        ("if (output.startsWith('The')) {\n  return {pass: true, score: 0.9, reason: 'ok'};\n}\nreturn false;", True, 0.9),
        ("(async () => output.length > 3)()", True, 1.0),  # a promise is awaited
    ],
)
def test_javascript_results(run: Callable[..., Any], value: str, passed: bool, score: float) -> None:
    result = js(run, value)
    assert (result.passed, result.score) == (passed, pytest.approx(score)), result.reason


def test_thresholds_and_not_forms(run: Callable[..., Any]) -> None:
    assert not js(run, "0.5", threshold=0.6).passed and js(run, "0.6", threshold=0.6).passed
    assert js(run, "output.includes('Rome')", type="not-javascript").passed
    assert not js(run, "true", type="not-javascript").passed
    negated = js(run, "({pass: false, score: 0, reason: 'nope'})", type="not-javascript")
    assert negated.passed and negated.reason == "nope"


def test_a_transformed_object_reaches_the_script(run: Callable[..., Any]) -> None:
    assert js(run, "output.answer === 42 && typeof output === 'object'", output={"answer": 42}).passed


def test_file_scripts_export_functions(run: Callable[..., Any], tmp_path: Path) -> None:
    cjs = tmp_path / "check.js"
    cjs.write_text("const words = (s) => s.split(' ').length;\n"
                   "module.exports = (output, context) => ({pass: words(output) > 2, score: 0.75, reason: context.vars.city});\n"
                   "module.exports.short = (output) => output.length < 5;\n", encoding="utf-8")
    esm = tmp_path / "esm.js"
    esm.write_text("export default function (output) { return output.endsWith('.'); }\n"
                   "export function named(output) { return 0.3; }\n", encoding="utf-8")
    main = js(run, f"file://{cjs}")
    assert (main.passed, main.score, main.reason) == (True, 0.75, "Paris")
    assert not js(run, f"file://{cjs}:short").passed
    assert js(run, f"file://{esm}").passed and js(run, f"file://{esm}:named").score == pytest.approx(0.3)
    missing = js(run, f"file://{cjs}:nope")
    assert not missing.passed and "exports no function nope" in missing.reason
    needs = tmp_path / "needs.js"
    needs.write_text("const fs = require('fs');\nmodule.exports = () => true;\n", encoding="utf-8")
    refused = js(run, f"file://{needs}")
    assert not refused.passed and "require('fs') is not available" in refused.reason


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("(() => { throw new Error('boom') })()", "threw Error: boom"),
        ("(() => { while (true) {} })()", "time limit of 5 s"),
        ("(async () => { await null; while (true) {} })()", "time limit of 5 s"),
        ("(() => { const a = []; while (true) a.push(new Array(1e5).fill(1)); })()", "out of memory (limit 64 MB)"),
        ("undefinedName + 1", "ReferenceError"),
        ("'a string'", "must return a boolean, a number"),
    ],
)
def test_scripts_that_fail_fail_their_assertion_in_bounded_time(run: Callable[..., Any], value: str, said: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr("app.core.grid.assert_scripts.JS_LIMITS", Limits(5.0, 64))  # keeps this process small
    t0 = time.monotonic()
    result = js(run, value)
    assert not result.passed and result.score == 0.0 and said in result.reason, result.reason
    assert time.monotonic() - t0 < 12


def py(run: Callable[..., Any], value: str, output: Any = "The capital is Paris.", **kw: Any) -> Any:
    a = Assertion(kw.pop("type", "python"), value, kw.pop("threshold", None))
    return run(check_script(a, script_ref(value), output, CONTEXT), timeout=30)


def test_python_inline_and_files(run: Callable[..., Any], tmp_path: Path) -> None:
    assert py(run, "'Paris' in output and context['vars']['city'] == 'Paris'").passed
    assert not py(run, "len(output) > 100").passed
    body = py(run, "words = output.split()\nreturn {'pass': len(words) > 2, 'score': 0.5, 'reason': 'counted'}")
    assert (body.passed, body.score, body.reason) == (True, 0.5, "counted")
    assert py(run, "0.2", threshold=0.5).passed is False
    script = tmp_path / "grade.py"
    script.write_text("import json\nfrom helper import LIMIT\n\ndef get_assert(output, context):\n"
                      "    return len(output) > LIMIT\n\ndef other(output, context):\n    return 'false'\n", encoding="utf-8")
    (tmp_path / "helper.py").write_text("LIMIT = 3\n", encoding="utf-8")
    assert py(run, f"file://{script}").passed  # imports from the script's folder work
    assert not py(run, f"file://{script}:other").passed
    assert py(run, "False", type="not-python").passed


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("1 / 0", "threw ZeroDivisionError"),
        ("x = 0\nwhile True:\n    x += 1", "time limit"),
        ("x = []\nwhile True:\n    x.append(' ' * 10**7)", "memory"),
    ],
)
def test_failing_python_fails_its_assertion_in_bounded_time(run: Callable[..., Any], value: str, said: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # a smaller address space than the 1 GB default: this suite's children stay small
    monkeypatch.setattr("app.core.grid.assert_scripts.PY_LIMITS", Limits(10.0, 300))
    t0 = time.monotonic()
    result = py(run, value)
    assert not result.passed and said in result.reason, result.reason
    assert time.monotonic() - t0 < 15


def test_transforms(run: Callable[..., Any], tmp_path: Path) -> None:
    assert run(apply_transform("output.toUpperCase()", "paris", CONTEXT)) == "PARIS"
    assert run(apply_transform("(output, context) => output + context.vars.city", "in ", CONTEXT)) == "in Paris"
    assert run(apply_transform("const o = JSON.parse(output);\nreturn o.a;", '{"a": [1]}', CONTEXT)) == [1]
    script = tmp_path / "t.py"
    script.write_text("def get_transform(output, context):\n    return output.strip().lower()\n", encoding="utf-8")
    assert run(apply_transform(f"file://{script}", "  PARIS ", CONTEXT)) == "paris"
    with pytest.raises(ScriptError, match="returned nothing"):
        run(apply_transform("undefined", "x", CONTEXT))


def test_promptfoo_result_rules() -> None:
    a = Assertion("python", "x", 0.5)
    assert normalize(a, "TRUE", "Python").passed and not normalize(a, "false", "Python").passed
    low = normalize(a, {"pass": True, "score": 0.2, "reason": "meh"}, "Python")
    assert not low.passed and "score 0.2 is less than threshold 0.5" in low.reason  # python: threshold applies
    assert normalize(Assertion("javascript", "x", 0.5), {"pass": True, "score": 0.2}, "JavaScript").passed
    assert normalize(a, '{"pass": true, "score": 0.9}', "Python").score == 0.9
    with pytest.raises(ScriptError):
        normalize(a, [1, 2], "Python")
    assert function_body("output === 'a'") == "return output === 'a'"

