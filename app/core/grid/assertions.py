"""Checking answers: the assertion types of promptfoo that this app supports.

Each check states a fact about the answer (``the answer contains 'Paris'``); ``not-`` forms
pass when the fact is false. ``llm-rubric`` is graded by a model: :func:`rubric_messages`
builds the grader's request and :func:`parse_grade` reads its verdict.

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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.core.errors import AppError
from app.core.figures import format_cost
from app.core.grid.model import Assertion, MissingVariables, render
from app.core.grid.tool_config import schema_from_text
from app.core.tools import ToolCall, ToolSpec, check_schema, validate_instance
from app.core.types import ChatMessage

SNIPPET = 60
MAX_JSON_STARTS = 1000
"""``contains-json`` tries to parse at most this many ``{`` of an answer (bounded time)."""


@dataclass(frozen=True, slots=True)
class AssertResult:
    """The outcome of one assertion."""

    type: str
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """``{type, pass, reason}`` (the CLI's JSON and the exports)."""
        return {"type": self.type, "pass": self.passed, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssertResult:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data.get("type", "")), bool(data.get("pass")), str(data.get("reason", "")))


@dataclass(frozen=True, slots=True)
class Answer:
    """What assertions look at: the text, its cost (None: unknown), its latency, the tool
    calls the model made and the tools it was offered."""

    text: str
    cost_usd: Decimal | None = None
    latency_s: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tools: tuple[ToolSpec, ...] = ()


def _snip(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…")


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


def _value(a: Assertion, variables: Mapping[str, Any]) -> Any:
    """The assertion's value with the case's ``{{variables}}`` filled in (unknown ones kept)."""

    def fill(text: str) -> str:
        try:
            return render(text, variables)
        except MissingVariables:
            return text

    if isinstance(a.value, str):
        return fill(a.value)
    if isinstance(a.value, list):
        return [fill(str(v)) for v in a.value]
    return a.value


def _fact(a: Assertion, answer: Answer, value: Any) -> tuple[bool, str]:
    """(is the fact true, the fact as a sentence) for every type but llm-rubric."""
    text, kind = answer.text, a.base
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
    if kind == "regex":
        m = re.search(str(value), text)
        return m is not None, (f"/{value}/ matches {_snip(m.group(0))}" if m else f"/{value}/ does not match")
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
    if kind == "cost":
        max_usd = Decimal(str(a.threshold if a.threshold is not None else 0))
        if answer.cost_usd is None:
            return False, "the cost is unknown (no price for this model)"
        ok = answer.cost_usd <= max_usd
        return ok, f"cost {format_cost(answer.cost_usd)} ({'within' if ok else 'over'} ${max_usd})"
    if kind == "latency":
        limit_ms = a.threshold if a.threshold is not None else 0.0
        if answer.latency_s is None:
            return False, "the latency is unknown"
        ms = answer.latency_s * 1000
        return ms <= limit_ms, f"latency {ms:,.0f} ms ({'within' if ms <= limit_ms else 'over'} {limit_ms:,.0f} ms)"
    raise ValueError(f"no synchronous check for {a.type}")


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


def check(a: Assertion, answer: Answer, variables: Mapping[str, Any] | None = None) -> AssertResult:
    """Check ``a`` against ``answer`` (every type but llm-rubric: see :func:`rubric_messages`).
    An unusable schema fails the check, ``not-`` or not (as promptfoo)."""
    value = _value(a, variables or {})
    if a.base in ("is-json", "contains-json"):
        value, problem = _schema_problem(a, value)
        if problem is not None:
            return AssertResult(a.type, False, problem)
    true, reason = _fact(a, answer, value)
    return AssertResult(a.type, true != a.negated, reason)


GRADER_SYSTEM = (
    "You are grading output according to a user-specified rubric. If the statement in the rubric is true, "
    "then the output passes the test. You respond with a JSON object with this structure: "
    '{"reason": string, "pass": boolean, "score": number}. Respond with the JSON object only.'
)


def rubric_messages(a: Assertion, output: str, variables: Mapping[str, Any] | None = None) -> list[ChatMessage]:
    """The grader's request for an llm-rubric assertion (promptfoo's default grading prompt)."""
    rubric = _value(a, variables or {})
    return [ChatMessage("system", GRADER_SYSTEM),
            ChatMessage("user", f"<Output>\n{output}\n</Output>\n<Rubric>\n{rubric}\n</Rubric>")]  # fmt: skip


_VERDICT = re.compile(r"\b(pass(?:es|ed)?|fail(?:s|ed)?|yes|no|true|false)\b", re.I)


def parse_grade(text: str) -> tuple[bool | None, str]:
    """The grader's verdict: a JSON object with ``pass`` (and ``reason``), else the first
    PASS/FAIL/yes/no word; (None, why) when there is none."""
    for m in re.finditer(r"\{.*?\}", text, re.S):
        try:
            data = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("pass"), bool):
            return data["pass"], str(data.get("reason") or ("passes" if data["pass"] else "fails"))
    word = _VERDICT.search(text)
    if word is None:
        return None, f"the grader gave no verdict: {_snip(text) if text.strip() else '(empty answer)'}"
    verdict = word.group(1).lower()
    return verdict.startswith(("pass", "yes", "true")), f"grader: {_snip(text)}"


def rubric_result(a: Assertion, verdict: bool | None, reason: str) -> AssertResult:
    """The llm-rubric result from the grader's verdict (no verdict: the assertion fails)."""
    if verdict is None:
        return AssertResult(a.type, False, reason)
    return AssertResult(a.type, verdict != a.negated, reason)
