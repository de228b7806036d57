"""Test cases from CSV / JSONL (and JSON / YAML lists), and the one-line assertion syntax
(``contains: Paris``, ``not-icontains: sorry``, ``levenshtein(3): Paris``, ``cost(0.01)``)
that CSV columns (promptfoo's ``__expected``) and the Workbench's Asserts column use."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError, ToolSchemaError
from app.core.grid.limits import MAX_CELLS, LimitError, compose_yaml, load_json, read_limited
from app.core.grid.model import ASSERT_TYPES, NO_NOT, Assertion, TestCase
from app.core.grid.tool_config import schema_from_text
from app.core.tools import check_schema

_LINE = re.compile(r"^\s*(?P<type>[A-Za-z][\w-]*)\s*(?:\(\s*(?P<threshold>[^)]*)\s*\))?\s*(?::\s?(?P<value>.*))?$", re.S)
LIST_TYPES = ("contains-any", "contains-all", "tool-call-f1")
SCHEMA_TYPES = ("is-json", "contains-json")
NUMBER_TYPES = ("cost", "latency")


class CasesFileError(ConfigError):
    """A cases file (CSV, JSONL...) or an assertion line is wrong; the message says where."""


def _count(out: list[TestCase], source: str) -> None:
    if len(out) > MAX_CELLS:
        raise CasesFileError(f"{source} has more than {MAX_CELLS:,} cases (the limit).",
                             hint="Split it into smaller files.")  # fmt: skip


def known_type(name: str) -> bool:
    """True for an assertion type this app checks (``not-`` forms included where promptfoo
    negates the type)."""
    if name.startswith("not-"):
        return name[4:] in ASSERT_TYPES and name[4:] not in NO_NOT
    return name in ASSERT_TYPES


def parse_assertion_line(text: str, where: str = "The assertion") -> Assertion:
    """``type[(threshold)][: value]`` as an :class:`Assertion` (raises CasesFileError)."""
    m = _LINE.match(text.strip())
    if m is None or not known_type(m.group("type").lower()):
        got = m.group("type") if m else text.strip()
        raise CasesFileError(f"{where}: '{got}' is not an assertion type.",
                             hint="Write TYPE: VALUE with TYPE one of " + ", ".join(ASSERT_TYPES)
                             + " (or not-TYPE), e.g. contains: Paris or levenshtein(3): Paris.")  # fmt: skip
    kind = m.group("type").lower()
    base = kind[4:] if kind.startswith("not-") else kind
    value: Any = m.group("value")
    threshold: float | None = None
    raw_threshold = (m.group("threshold") or "").strip()
    if base in NUMBER_TYPES and not raw_threshold and value is not None:
        raw_threshold, value = value.strip(), None  # cost: 0.01 means cost(0.01)
    if raw_threshold:
        try:
            threshold = float(raw_threshold)
        except ValueError:
            raise CasesFileError(f"{where}: the threshold '{raw_threshold}' of {kind} is not a number.",
                                 hint="Write it as e.g. levenshtein(3): Paris or latency(2000).") from None  # fmt: skip
    if base in LIST_TYPES and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    elif base in SCHEMA_TYPES and isinstance(value, str) and value.strip():
        value = _schema(value, kind, where)
    elif isinstance(value, str):
        value = value.strip() if base != "equals" else value.lstrip()
        if value == "":
            value = None
    return Assertion(kind, value, threshold)


def _schema(text: str, kind: str, where: str) -> Any:
    """The JSON Schema written after ``is-json:`` / ``contains-json:`` (JSON or YAML), checked."""
    schema = schema_from_text(text.strip())
    try:
        check_schema(schema, f"{where}: {kind}")
    except ToolSchemaError as exc:
        raise CasesFileError(exc.message, hint=exc.hint or 'Write e.g. is-json: {"type": "object"}.') from None
    return schema


def assertion_line(a: Assertion) -> str:
    """The one-line form of ``a`` (inverse of :func:`parse_assertion_line`)."""
    head = a.type + (f"({a.threshold:g})" if a.threshold is not None else "")
    if a.value is None:
        return head
    if isinstance(a.value, dict):
        return f"{head}: {json.dumps(a.value, ensure_ascii=False)}"
    value = ", ".join(str(v) for v in a.value) if isinstance(a.value, list) else str(a.value)
    return f"{head}: {value}"


def parse_assertion_lines(text: str, where: str = "The assertion") -> tuple[Assertion, ...]:
    """One assertion per non-empty line."""
    return tuple(parse_assertion_line(line, where) for line in text.splitlines() if line.strip())


PROMPTFOO_TYPES = (
    "answer-relevance", "bleu", "classifier", "contains-all", "contains-any", "contains-html", "contains-json",
    "contains-sql", "contains-xml", "contains", "context-faithfulness", "context-recall", "context-relevance",
    "conversation-relevance", "cost", "equals", "factuality", "finish-reason", "g-eval", "gleu", "guardrails",
    "icontains-all", "icontains-any", "icontains", "is-html", "is-json", "is-refusal", "is-sql",
    "is-valid-function-call", "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-xml", "javascript",
    "latency", "levenshtein", "llm-rubric", "meteor", "model-graded-closedqa", "model-graded-factuality",
    "moderation", "perplexity-score", "perplexity", "pi", "python", "regex", "rouge-n", "ruby", "select-best",
    "similar", "starts-with", "tool-call-f1", "webhook", "word-count",
)  # fmt: skip
"""promptfoo's assertion types, as its CSV ``__expected`` columns recognise them."""
_PROMPTFOO_LINE = re.compile(r"^(not-)?(" + "|".join(map(re.escape, PROMPTFOO_TYPES)) + r")(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
_CODE_PREFIXES = (("javascript:", "javascript"), ("fn:", "javascript"), ("eval:", "javascript"),
                  ("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric"), ("python:", "python"))  # fmt: skip


def expected_assertion(text: str, where: str) -> Assertion:
    """A CSV ``__expected`` cell read by promptfoo's rules: ``javascript:`` / ``fn:`` /
    ``eval:`` (and ``file://x.js``) are javascript, ``grade:`` / ``llm-rubric:`` llm-rubric,
    ``python:`` (and ``file://x.py``) python; ``TYPE[(threshold)][: value]`` for a known type;
    any other text an ``equals`` check of the whole text. A type promptfoo has and this app
    does not check raises CasesFileError (exit 2)."""
    kind, value = "", text
    for prefix, name in _CODE_PREFIXES:
        if text.startswith(prefix):
            kind, value = name, text[len(prefix):]
    if not kind and text.startswith("file://"):
        path = text[len("file://"):].strip()
        if path.endswith((".js", ".cjs", ".mjs", ".ts")) or ".js:" in path:
            kind, value = "javascript", text
        elif path.endswith(".py") or ".py:" in path:
            kind, value = "python", text
    if kind:
        if not known_type(kind):
            raise CasesFileError(f"{where}: {kind} assertions are not supported by this app (from '{text[:40]}').",
                                 hint="Use a built-in type instead (contains: ..., regex: ..., is-json ...).")  # fmt: skip
        return Assertion(kind, value.strip() if kind != "llm-rubric" else value)
    m = _PROMPTFOO_LINE.match(text)
    if m is None:
        return Assertion("equals", text)  # promptfoo: any other text is the expected output
    if not known_type((m.group(1) or "") + m.group(2)):
        raise CasesFileError(f"{where}: the assertion type '{(m.group(1) or '') + m.group(2)}' is not supported by this app.",
                             hint="Use one of " + ", ".join(ASSERT_TYPES) + " (or not-TYPE).")  # fmt: skip
    return parse_assertion_line(text, where)


_CSV_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CONFIG_COLUMN = re.compile(r"__config:__expected(\d*):threshold")


def _csv_number(value: str | None, where: str, column: str) -> float | None:
    """A number cell (promptfoo's parseFiniteNumber); None when empty."""
    text = (value or "").strip()
    if not text:
        return None
    if not _CSV_NUMBER.fullmatch(text) or not math.isfinite(float(text)):
        raise CasesFileError(f"{where}, column {column}: '{text[:40]}' is not a number.",
                             hint="Write a number such as 0.8, or leave the cell empty.")  # fmt: skip
    return float(text)


def _from_row(row: dict[str, str], where: str) -> TestCase:
    variables: dict[str, Any] = {}
    asserts: list[Assertion] = []
    description = metric = prefix = suffix = ""
    threshold: float | None = None
    thresholds: dict[int, float] = {}  # __config:__expectedN:threshold, by the assertion's index
    for key, value in row.items():
        if key is None:
            raise CasesFileError(f"{where}: this row has more cells than the header has columns.",
                                 hint="Quote cells that contain commas, or add the missing column names.")  # fmt: skip
        name = key.strip()
        if name.startswith("__expected"):
            if value and value.strip():
                asserts.append(expected_assertion(value, f"{where}, column {name}"))
        elif name == "__description":
            description = (value or "").strip()
        elif name == "__metric":
            metric = (value or "").strip()
        elif name in ("__prefix", "__suffix"):
            prefix, suffix = (value or "", suffix) if name == "__prefix" else (prefix, value or "")
        elif name == "__threshold":
            threshold = _csv_number(value, where, name)
        elif name.startswith("__metadata:"):
            continue  # the test's metadata: promptfoo's filters and reports, never a verdict
        elif (m := _CONFIG_COLUMN.fullmatch(name)) is not None and m.group(1) != "0":
            number = _csv_number(value, where, name)
            if number is None:
                raise CasesFileError(f"{where}, column {name}: the threshold is empty.", hint="Write a number such as 0.8.")
            thresholds[int(m.group(1) or "1") - 1] = number
        elif name.startswith("__"):
            raise CasesFileError(f"{where}: the column {name} is not supported by this app.",
                                 hint="Remove the column (supported: __expected, __description, __metric, __prefix, "
                                      "__suffix, __threshold, __metadata:NAME, __config:__expectedN:threshold).")  # fmt: skip
        elif name:
            variables[name] = value if value is not None else ""
    asserts = [replace(a, metric=metric or a.metric, threshold=thresholds.get(i, a.threshold))
               for i, a in enumerate(asserts)]  # fmt: skip
    return TestCase(variables, tuple(asserts), description, threshold=threshold, prefix=prefix, suffix=suffix)


def cases_from_csv(text: str, source: str = "cases.csv") -> list[TestCase]:
    """Rows of a CSV file with a header of variable names (plus ``__expected*`` and
    ``__description`` columns)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames:
        raise CasesFileError(f"{source} has no header row.", hint="The first row names the variables, e.g. topic,audience.")
    out: list[TestCase] = []
    try:
        for row in reader:
            out.append(_from_row(row, f"{source}, line {reader.line_num}"))
            _count(out, source)
    except csv.Error as exc:  # a cell over csv's field limit (128 KiB), a stray NUL...
        raise CasesFileError(f"{source}, line {reader.line_num}: {exc}.",
                             hint="Fix that row (a cell may be at most 131,072 characters).") from None  # fmt: skip
    return out


def _from_object(data: Any, where: str) -> TestCase:
    if not isinstance(data, dict):
        raise CasesFileError(f"{where}: a case must be an object (got {type(data).__name__}).",
                             hint='Write {"vars": {...}, "assert": [...]} or a flat object of variables.')  # fmt: skip
    if "vars" not in data and "assert" not in data:
        return TestCase(dict(data))
    for key in data:
        if key not in ("vars", "assert", "description", "metadata"):
            raise CasesFileError(f"{where}: '{key}' is not supported in a case read from a file.",
                                 hint="Keep vars, assert and description (put options in the grid file's tests).")  # fmt: skip
    variables = data.get("vars") or {}
    if not isinstance(variables, dict):
        raise CasesFileError(f"{where}: 'vars' must be an object.", hint='Write "vars": {"name": "value"}.')
    asserts: list[Assertion] = []
    for i, item in enumerate(data.get("assert") or []):
        if isinstance(item, str):
            asserts.append(parse_assertion_line(item, f"{where}, assert[{i}]"))
        elif isinstance(item, dict) and isinstance(item.get("type"), str) and known_type(item["type"]):
            threshold = item.get("threshold")
            asserts.append(Assertion(item["type"], item.get("value"), float(threshold) if threshold is not None else None))
        else:
            raise CasesFileError(f"{where}, assert[{i}]: not an assertion.",
                                 hint='Write {"type": "contains", "value": "Paris"}.')  # fmt: skip
    return TestCase(dict(variables), tuple(asserts), str(data.get("description") or ""))


def cases_from_jsonl(text: str, source: str = "cases.jsonl") -> list[TestCase]:
    """One JSON object per line: ``{"vars": {...}, "assert": [...]}`` or flat variables."""
    out: list[TestCase] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = load_json(line, f"{source}, line {number}")
        except json.JSONDecodeError as exc:
            raise CasesFileError(f"{source}, line {number}: not valid JSON ({exc.msg} at column {exc.colno}).",
                                 hint="Each line must be one JSON object.") from None  # fmt: skip
        out.append(_from_object(data, f"{source}, line {number}"))
        _count(out, source)
    return out


def cases_from_list(items: Iterable[Any], source: str) -> list[TestCase]:
    """Cases from a decoded JSON / YAML list."""
    out: list[TestCase] = []
    for i, item in enumerate(items):
        out.append(_from_object(item, f"{source}, case {i + 1}"))
        _count(out, source)
    return out


def load_cases(path: Path) -> list[TestCase]:
    """Test cases from a .csv, .jsonl, .json or .yaml file (raises CasesFileError)."""
    try:
        text = read_limited(path, CasesFileError)
    except OSError as exc:
        raise CasesFileError(f"Cannot read {path}: {exc.strerror}.", hint="Check the path.") from exc
    except UnicodeDecodeError:
        raise CasesFileError(f"{path} is not UTF-8 text.", hint="Save it as UTF-8 and try again.") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return cases_from_csv(text, path.name)
    if suffix in (".jsonl", ".ndjson"):
        return cases_from_jsonl(text, path.name)
    if suffix in (".json", ".yaml", ".yml"):
        import yaml

        try:
            data = load_json(text, path.name) if suffix == ".json" else compose_yaml(text, path.name)[1]
        except LimitError as exc:
            raise CasesFileError(exc.message, hint=exc.hint) from None
        except (ValueError, yaml.YAMLError) as exc:
            raise CasesFileError(f"{path.name} cannot be parsed: {exc}.", hint="Fix the syntax and import again.") from None
        if not isinstance(data, list):
            raise CasesFileError(f"{path.name} must hold a list of cases.", hint="Write [{\"vars\": {...}}, ...].")
        return cases_from_list(data, path.name)
    raise CasesFileError(f"{path.name}: cases are read from .csv, .jsonl, .json or .yaml files.",
                         hint="Save the cases in one of those formats.")  # fmt: skip
