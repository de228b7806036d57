"""The assertions checked from the answer alone (no script, no model), as promptfoo checks
them. Each states a fact about the answer (``the answer contains 'Paris'``); ``not-`` forms
pass when the fact is false.

- ``equals``: the exact text, or with an object/array value the answer parsed as JSON and
  compared deeply; ``icontains-any`` / ``icontains-all`` ignore case;
- ``regex``: promptfoo's JavaScript patterns, run by V8 (``check_regex``, async); no flags;
- ``finish-reason``: the model's stop reason, ignoring case;
- ``perplexity`` (at most ``threshold``) and ``perplexity-score`` (``1 / (1 + perplexity)``,
  at least ``threshold``) from the answer's token log-probabilities; without a threshold
  they pass (promptfoo); no ``not-`` forms (promptfoo ignores them).

Structured output and tools, as promptfoo checks them:

- ``is-json`` / ``contains-json`` with a JSON Schema ``value``: the answer (or a JSON object
  in it) parses and follows the schema (``jsonschema``; the reason names the JSON path);
- ``is-valid-openai-tools-call``: the model made calls, each names a tool the provider
  offered, and its arguments parse as a JSON object that follows that tool's parameters
  schema (no ``not-`` form: promptfoo ignores it);
- ``tool-call-f1``: F1 of the names called against the expected names, both as sets
  (precision = right / called, recall = right / expected), passing at ``threshold``
  (default 1: exactly the expected functions).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.core.errors import AppError
from app.core.figures import format_cost
from app.core.grid.assert_result import Answer, AssertResult, output_text
from app.core.grid.assert_result import snip as _snip
from app.core.grid.model import Assertion, MissingVariables, render
from app.core.grid.sandbox import REGEX_TIMEOUT_S, ScriptError, run_regex
from app.core.grid.tool_config import schema_from_text
from app.core.tools import ToolCall, ToolSpec, check_schema, validate_instance

MAX_JSON_STARTS = 1000
"""``contains-json`` tries to parse at most this many ``{`` of an answer (bounded time)."""


def levenshtein(a: str, b: str) -> int:
    """The edit distance between ``a`` and ``b`` (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def value_of(a: Assertion, variables: Mapping[str, Any]) -> Any:
    """The assertion's value with the case's ``{{variables}}`` filled in (unknown ones kept)."""

    def fill(text: str) -> str:
        try:
            return render(text, variables)
        except MissingVariables:
            return text

    if isinstance(a.value, str):
        return fill(a.value)
    if isinstance(a.value, list):
        return [fill(v) if isinstance(v, str) else v for v in a.value]
    return a.value


def _fact(a: Assertion, answer: Answer, value: Any) -> tuple[bool, str]:
    """(is the fact true, the fact as a sentence) for every type but llm-rubric."""
    text, kind = output_text(answer.value), a.base
    if kind == "equals":
        if not isinstance(value, str):
            try:
                same = json.loads(text) == value
            except ValueError:
                same = text.strip() == json.dumps(value)
        else:
            same = text == value
        return same, f"the answer {'equals' if same else 'differs from'} {_snip(str(value))}"
    if kind in ("contains", "icontains"):
        found = (str(value) in text) if kind == "contains" else (str(value).casefold() in text.casefold())
        case = "" if kind == "contains" else " (ignoring case)"
        return found, f"the answer {'contains' if found else 'does not contain'} {_snip(str(value))}{case}"
    if kind in ("icontains-any", "icontains-all"):
        return _icontains(kind, text, value)
    if kind == "finish-reason":
        if not answer.finish_reason:
            return False, "the provider gave no finish reason"
        same = answer.finish_reason.lower() == str(value).lower()
        return same, f"finish reason {answer.finish_reason!r} ({'as expected' if same else f'expected {value!r}'})"
    if kind in ("perplexity", "perplexity-score"):
        return _perplexity(a, answer.logprobs)
    if kind == "contains-any":
        hits = [v for v in value if v in text]
        return bool(hits), (f"the answer contains {_snip(hits[0])}" if hits
                            else f"the answer contains none of {', '.join(_snip(v) for v in value)}")  # fmt: skip
    if kind == "contains-all":
        missing = [v for v in value if v not in text]
        return not missing, ("the answer contains all of them" if not missing
                             else f"the answer lacks {', '.join(_snip(v) for v in missing)}")  # fmt: skip
    if kind == "starts-with":
        ok = text.startswith(str(value))
        return ok, f"the answer {'starts' if ok else 'does not start'} with {_snip(str(value))}"
    if kind == "is-json":
        try:
            parsed = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            where = f" ({exc.msg} at line {exc.lineno}, column {exc.colno})" if isinstance(exc, ValueError) else ""
            return False, f"the answer is not JSON{where}"
        if value is None:
            return True, "the answer is valid JSON"
        problem = validate_instance(parsed, value)
        return (problem is None, "the answer is JSON that follows the schema" if problem is None
                else f"the answer does not follow the schema: {problem}")  # fmt: skip
    if kind == "contains-json":
        return _contains_json(text, value)
    if kind == "is-valid-openai-tools-call":
        return _valid_calls(answer.tool_calls, answer.tools)
    if kind == "tool-call-f1":
        return _f1(a, answer.tool_calls, value)
    if kind == "levenshtein":
        limit = a.threshold if a.threshold is not None else 5.0
        distance = levenshtein(text, str(value))
        return distance <= limit, f"edit distance {distance} to {_snip(str(value))} (at most {limit:g})"
    if kind == "cost" and answer.cost_usd is not None:  # (an unknown cost: see check())
        max_usd = Decimal(str(a.threshold if a.threshold is not None else 0))
        ok = answer.cost_usd <= max_usd
        return ok, f"cost {format_cost(answer.cost_usd)} ({'within' if ok else 'over'} ${max_usd})"
    if kind == "latency":
        limit_ms = a.threshold if a.threshold is not None else 0.0
        if answer.latency_s is None:
            return False, "the latency is unknown"
        ms = answer.latency_s * 1000
        return ms <= limit_ms, f"latency {ms:,.0f} ms ({'within' if ms <= limit_ms else 'over'} {limit_ms:,.0f} ms)"
    raise ValueError(f"no synchronous check for {a.type}")


async def check_regex(a: Assertion, answer: Answer, variables: Mapping[str, Any] | None = None) -> AssertResult:
    """``regex`` / ``not-regex`` as promptfoo checks them: JavaScript's ``new RegExp(value)``
    (no flags) tested on the answer, in V8 within a time limit. A pattern JavaScript rejects,
    or one that runs past the limit, fails the check, ``not-`` or not (as promptfoo)."""
    pattern = str(value_of(a, variables or {}))
    try:
        found = await run_regex(pattern, output_text(answer.value))
    except ScriptError as exc:
        why = exc.message
        if "time limit" in why:
            why = f"matching ran past its time limit of {REGEX_TIMEOUT_S:g} s (catastrophic backtracking?)"
        elif why.startswith("threw "):
            why = f"not a valid JavaScript regular expression ({why.removeprefix('threw ')})"
        return AssertResult(a.type, False, f"/{pattern}/: {why}", metric=a.metric)
    reason = f"/{pattern}/ matches {_snip(found)}" if found is not None else f"/{pattern}/ does not match"
    return AssertResult(a.type, (found is not None) != a.negated, reason, metric=a.metric)


def _icontains(kind: str, text: str, value: Any) -> tuple[bool, str]:
    low = text.casefold()
    if kind == "icontains-any":
        hits = [v for v in value if str(v).casefold() in low]
        return bool(hits), (f"the answer contains {_snip(hits[0])} (ignoring case)" if hits
                            else f"the answer contains none of {', '.join(_snip(v) for v in value)} (ignoring case)")  # fmt: skip
    missing = [v for v in value if str(v).casefold() not in low]
    return not missing, ("the answer contains all of them (ignoring case)" if not missing
                         else f"the answer lacks {', '.join(_snip(v) for v in missing)} (ignoring case)")  # fmt: skip


def perplexity(logprobs: tuple[float, ...]) -> float:
    """``exp(-mean logprob)`` of the answer's tokens."""
    return math.exp(-sum(logprobs) / len(logprobs))


def _perplexity(a: Assertion, logprobs: tuple[float, ...]) -> tuple[bool, str]:
    if not logprobs:
        return False, f"{a.base} needs token log-probabilities and the provider returned none"
    ppl = perplexity(logprobs)
    if a.base == "perplexity":
        ok = ppl <= a.threshold if a.threshold else True
        limit = f" (at most {a.threshold:g})" if a.threshold else ""
        return ok, f"perplexity {ppl:.2f}{limit} over {len(logprobs)} tokens"
    norm = 1 / (1 + ppl)
    ok = norm >= a.threshold if a.threshold else True
    return ok, f"perplexity score {norm:.2f}{f' (at least {a.threshold:g})' if a.threshold else ''} (perplexity {ppl:.2f})"


def perplexity_score(a: Assertion, answer: Answer) -> float | None:
    """The score of a perplexity check: 1/(1+perplexity) for perplexity-score (None: 1 or 0)."""
    if a.base != "perplexity-score" or not answer.logprobs:
        return None
    return 1 / (1 + perplexity(answer.logprobs))


def json_objects(text: str) -> list[Any]:
    """The JSON objects in ``text`` (each ``{`` where one parses, not inside an earlier one;
    at most :data:`MAX_JSON_STARTS` tries)."""
    decoder = json.JSONDecoder()
    out: list[Any] = []
    at, tries = text.find("{"), 0
    while at >= 0 and tries < MAX_JSON_STARTS:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            at = text.find("{", at + 1)
            continue
        out.append(value)
        at = text.find("{", end)
    return out


def _contains_json(text: str, schema: Any) -> tuple[bool, str]:
    found = json_objects(text)
    if not found:
        return False, "the answer contains no JSON object"
    if schema is None:
        return True, f"the answer contains JSON ({len(found)} object{'s' if len(found) != 1 else ''})"
    problem = ""
    for value in found:
        problem = validate_instance(value, schema) or ""
        if not problem:
            return True, "the answer contains JSON that follows the schema"
    return False, f"no JSON in the answer follows the schema (the last: {problem})"


def call_text(call: ToolCall) -> str:
    """``get_weather({"city": "Paris"})`` (the arguments as the model wrote them)."""
    return f"{call.name}({' '.join(call.arguments.split()) if call.arguments.strip() else ''})"


def _valid_calls(calls: tuple[ToolCall, ...], tools: tuple[ToolSpec, ...]) -> tuple[bool, str]:
    if not tools:
        return False, "the provider offers no tools (set its config.tools)"
    if not calls:
        return False, "the model made no tool calls"
    offered = {t.name: t for t in tools}
    for call in calls:
        tool = offered.get(call.name)
        if tool is None:
            return False, f"{call.name or '(no name)'} is not an offered tool (offered: {', '.join(offered)})"
        try:
            args = json.loads(call.arguments or "{}")
        except (ValueError, RecursionError):
            return False, f"{call.name}: the arguments are not JSON: {_snip(call.arguments)}"
        if not isinstance(args, dict):
            return False, f"{call.name}: the arguments are not a JSON object: {_snip(call.arguments)}"
        problem = validate_instance(args, tool.parameters)
        if problem is not None:
            return False, f"{call.name}: the arguments do not follow its parameters: {problem}"
    n = len(calls)
    return True, f"{n} call{'s' if n != 1 else ''} of offered tools with valid arguments"


def _f1(a: Assertion, calls: tuple[ToolCall, ...], value: Any) -> tuple[bool, str]:
    names = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    expected = {str(v).strip() for v in names if str(v).strip()}
    actual = {c.name for c in calls}
    right = len(expected & actual)
    precision = right / len(actual) if actual else 0.0
    recall = right / len(expected) if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    threshold = a.threshold if a.threshold is not None else 1.0
    said = (f"tool-call F1 {f1:.3f} (precision {precision:.3f}, recall {recall:.3f}; at least {threshold:g}): "
            f"expected [{', '.join(sorted(expected))}], called [{', '.join(sorted(actual)) or 'none'}]")  # fmt: skip
    return f1 >= threshold, said


def _schema_problem(a: Assertion, value: Any) -> tuple[Any, str | None]:
    """The schema of an is-json / contains-json ``value`` (text is read as JSON or YAML),
    and why it cannot be used (a cases file's value is not checked when it is read)."""
    if value is None or value == "":
        return None, None
    schema = schema_from_text(value) if isinstance(value, str) else value
    try:
        check_schema(schema, "the schema")
    except AppError as exc:
        return None, f"invalid JSON schema: {exc.message}"
    return schema, None


UNPRICED_REASON = ("the cost is unknown: this model is unpriced (no known price, or an apiBaseUrl server "
                   "other than OpenAI's), so a cost check cannot pass")


def check(a: Assertion, answer: Answer, variables: Mapping[str, Any] | None = None) -> AssertResult:
    """Check ``a`` against ``answer`` (the types of this module).
    An unusable schema fails the check, ``not-`` or not (as promptfoo)."""
    value = value_of(a, variables or {})
    if a.base in ("is-json", "contains-json"):
        value, problem = _schema_problem(a, value)
        if problem is not None:
            return AssertResult(a.type, False, problem, metric=a.metric)
    if a.base == "cost" and answer.cost_usd is None:  # promptfoo errors: neither form can pass
        return AssertResult(a.type, False, UNPRICED_REASON, metric=a.metric)
    true, reason = _fact(a, answer, value)
    return AssertResult(a.type, true != a.negated, reason, perplexity_score(a, answer), a.metric)


