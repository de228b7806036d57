"""``javascript`` and ``python`` assertions and ``transform`` s, run as promptfoo runs them,
within the bounds of :mod:`app.core.grid.sandbox`.

- JavaScript: a one-line value is an expression (``output.includes('Paris')``; a leading
  ``const x = ...; x > 1`` returns its last expression); a multi-line value is a function
  body with ``output`` and ``context`` (it must ``return``); ``file://check.js`` exports a
  function (``module.exports = (output, context) => ...``, ``file://check.js:name`` a named
  one). No ``require``: the scripts run in an embedded V8 without Node.
- Python: a one-line value is an expression, a multi-line one the body of
  ``def main(output, context)``; ``file://check.py`` defines ``get_assert(output, context)``
  (``file://check.py:name`` another function).
- A result is a bool, a number (passes above 0, or at ``threshold``; it is the score) or a
  grading result ``{pass, score, reason}``; ``"true"``/``"false"`` and JSON text count too.
- ``context``: ``vars``, ``prompt``, ``test``, ``logProbs``, ``provider`` and
  ``providerResponse`` (``output``, ``finishReason``).
- Transforms are JavaScript (an expression, a body or ``(output, context) => ...``), or
  ``file://x.js`` / ``file://x.py`` (``get_transform``); they give the new output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.grid.assert_result import AssertResult
from app.core.grid.limits import LimitError, read_limited
from app.core.grid.model import Assertion
from app.core.grid.sandbox import (
    JS_TIMEOUT_S,
    PY_ADDRESS_MB,
    PY_TIMEOUT_S,
    Limits,
    ScriptError,
    run_js,
    run_python,
)

JS_LIMITS = Limits(JS_TIMEOUT_S)
PY_LIMITS = Limits(PY_TIMEOUT_S, PY_ADDRESS_MB)
_FILE_FN = re.compile(r"^(?P<path>.+?\.(?:js|cjs|mjs|py))(?::(?P<fn>[A-Za-z_$][\w$]*))?$")


@dataclass(frozen=True, slots=True)
class ScriptRef:
    """A script value: inline code, or a file with an optional function name."""

    code: str
    path: str | None = None
    function: str | None = None

    @property
    def language(self) -> str:
        """``python`` for a .py file, else ``javascript``."""
        return "python" if self.path is not None and self.path.endswith(".py") else "javascript"


def script_ref(value: str) -> ScriptRef:
    """Split ``file://path.js:fn`` (the path is taken as given: the grid file's reader made
    it absolute) from inline code."""
    if not value.startswith("file://"):
        return ScriptRef(value)
    m = _FILE_FN.match(value.removeprefix("file://"))
    if m is None:
        return ScriptRef("", value.removeprefix("file://"))
    return ScriptRef("", m.group("path"), m.group("fn"))


def split_file_ref(ref: str) -> tuple[str, str | None]:
    """``path.js:fn`` as (path, fn)."""
    m = _FILE_FN.match(ref)
    return (ref, None) if m is None else (m.group("path"), m.group("fn"))


def _read(path: str) -> str:
    try:
        return read_limited(Path(path))
    except (LimitError, OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"cannot read {path}: {exc}") from None


def function_body(code: str) -> str:
    """promptfoo's body for an inline value: a multi-line one as it is, a one-line
    expression returned (after leading ``const``/``let``/``var`` statements)."""
    code = code.rstrip()
    if "\n" in code:
        return code
    trimmed = re.sub(r";+\s*$", "", code.strip())
    if re.match(r"^(const|let|var)\s", trimmed):
        at = _last_top_semicolon(trimmed)
        if at >= 0 and trimmed[at + 1:].strip():
            return f"{trimmed[: at + 1]} return {trimmed[at + 1:].strip()}"
        return trimmed
    return f"return {trimmed}"


def _last_top_semicolon(code: str) -> int:
    depth, quote, last, i = 0, "", -1, 0
    while i < len(code):
        ch = code[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ";" and depth == 0:
            last = i
        i += 1
    return last


_MODULE = """
var module = {exports: {}}; var exports = module.exports;
var require = function (name) {
  throw new Error("require('" + name + "') is not available: grid scripts run in an embedded engine without Node "
    + "(no modules, files or network)");
};
(function (module, exports, require) {
%s
})(module, exports, require);
var __grid_fn = (function () {
  var e = module.exports, name = %s;
  if (name) return e[name];
  if (typeof e === "function") return e;
  return e["default"];
})();
"""


def _esm_to_cjs(source: str) -> str:
    """``export default`` and ``export function f`` as CommonJS (what a V8 script can run)."""
    source = re.sub(r"^export\s+default\s+", "module.exports.default = ", source, flags=re.M)
    names = re.findall(r"^export\s+(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)", source, flags=re.M)
    source = re.sub(r"^export\s+((?:async\s+)?function)", r"\1", source, flags=re.M)
    return source + "".join(f"\nmodule.exports.{n} = {n};" for n in names)


async def js_call(ref: ScriptRef, output: Any, context: Any, limits: Limits | None = None,
                  *, transform: bool = False) -> Any:  # fmt: skip
    """Run a JavaScript script with ``output`` and ``context``; its value as JSON data (within
    :data:`JS_LIMITS` unless ``limits`` say otherwise)."""
    limits = limits or JS_LIMITS
    args = f"{json.dumps(output)}, {json.dumps(context, default=str)}"
    if ref.path is not None:
        prelude = _MODULE % (_esm_to_cjs(_read(ref.path)), json.dumps(ref.function))
        missing = json.dumps(f"{Path(ref.path).name} exports no function {ref.function or ''}".strip())
        call = (f"(typeof __grid_fn === 'function' ? __grid_fn({args}) : "
                f"(function () {{ throw new Error({missing}); }})())")  # fmt: skip
        return await run_js(call, prelude=prelude, limits=limits)
    code = ref.code.strip()
    if transform and re.match(r"^(\(.*?\)\s*=>|[A-Za-z_$][\w$]*\s*=>|function\s*\(.*?\))", code, re.S):
        return await run_js(f"({code})({args})", limits=limits)
    return await run_js(f"(function (output, context) {{\n{function_body(code)}\n}})({args})", limits=limits)


def python_source(code: str) -> str:
    """promptfoo's script for an inline Python value: ``def main(output, context)``."""
    if "\n" not in code.rstrip():
        return f"import json\n\ndef main(output, context):\n    return {code.strip()}\n"
    m = re.search(r"^(?!\s*$)\s+", code, re.M)
    indent = m.group(0).strip("\n") if m else "    "
    body = "\n".join(f"{indent}{line}" for line in code.rstrip().split("\n"))
    return f"import json\n\ndef main(output, context):\n{body}\n"


async def py_call(ref: ScriptRef, output: Any, context: Any, default_fn: str, limits: Limits | None = None) -> Any:
    """Run a Python script with ``output`` and ``context``; its value as JSON data (within
    :data:`PY_LIMITS` unless ``limits`` say otherwise)."""
    limits = limits or PY_LIMITS
    if ref.path is not None:
        return await run_python(_read(ref.path), ref.function or default_fn, output, context, file=ref.path,
                                limits=limits)  # fmt: skip
    return await run_python(python_source(ref.code), "main", output, context, limits=limits)


def normalize(a: Assertion, result: Any, language: str) -> AssertResult:
    """A script's value as the assertion's result (promptfoo's rules, ``not-`` applied)."""
    code = "Custom function" if language == "JavaScript" else f"{language} code"
    if isinstance(result, str):
        low = result.strip().lower()
        if low in ("true", "false"):
            result = low == "true"
        elif result.strip().startswith("{"):
            try:
                result = json.loads(result)
            except ValueError as exc:
                raise ScriptError(f"returned text that is not JSON ({exc}): {result[:80]}") from None
        else:
            try:
                result = float(result)
            except ValueError:
                raise ScriptError(f"must return a boolean, a number or {{pass, score, reason}} (got {result[:80]!r})") from None
    if isinstance(result, bool):
        passed = result != a.negated
        return AssertResult(a.type, passed, "Assertion passed" if passed else f"{code} returned {str(result).lower()}",
                            1.0 if passed else 0.0, a.metric)  # fmt: skip
    if isinstance(result, int | float):
        raw = result > 0 if a.threshold is None else result >= a.threshold
        passed = raw != a.negated
        limit = "above 0" if a.threshold is None else f"at least {a.threshold:g}"
        return AssertResult(a.type, passed, f"{code} returned {result:g} (passes {limit})", float(result), a.metric)
    if isinstance(result, dict) and isinstance(result.get("pass", result.get("pass_")), bool):
        raw_pass = bool(result.get("pass", result.get("pass_")))
        score = result.get("score")
        score = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else (1.0 if raw_pass else 0.0)
        reason = str(result.get("reason") or ("Assertion passed" if raw_pass else f"{code} returned false"))
        if a.threshold is not None and score < a.threshold and language != "JavaScript":
            raw_pass, reason = False, f"{language} score {score:g} is less than threshold {a.threshold:g}: {reason}"
        passed = raw_pass != a.negated
        if a.negated and not passed:
            reason = str(result.get("reason") or f"{code} returned true")
        return AssertResult(a.type, passed, reason, score, a.metric)
    raise ScriptError(f"must return a boolean, a number or {{pass, score, reason}} (got {type(result).__name__})")


async def check_script(a: Assertion, ref: ScriptRef, output: Any, context: dict[str, Any]) -> AssertResult:
    """A ``javascript`` / ``python`` assertion: fails with the error when the script throws,
    loops or runs out of memory."""
    language = "JavaScript" if a.base == "javascript" else "Python"
    try:
        if a.base == "javascript":
            value = await js_call(ref, output, {**context, "config": {}})
        else:
            value = await py_call(ref, output, context, "get_assert")
        return normalize(a, value, language)
    except ScriptError as exc:
        return AssertResult(a.type, False, f"{language} {exc.message}", 0.0, a.metric)


async def apply_transform(code: str, output: Any, context: dict[str, Any]) -> Any:
    """The output after a transform (raises ScriptError, also when it gives nothing)."""
    ref = script_ref(code)
    if ref.language == "python":
        value = await py_call(ref, output, context, "get_transform")
    else:
        value = await js_call(ref, output, context, transform=True)
    if value is None:
        raise ScriptError("the transform returned nothing (undefined or null)")
    return value
