"""A test's verdict from its assertions, as promptfoo scores it: the score is the weighted
mean of the assertions' scores (``weight``, default 1); the test passes when every assertion
passes, or, with a test ``threshold``, when the score reaches it (failed assertions then do
not decide). Assertions with a ``metric`` feed named scores: per cell the weighted mean of
theirs; per column, as promptfoo 0.121 sums them, each assertion's score x weight over the
column's cells (a cell's mean times its weight for the metric), so a weight of 2 or two
assertions sharing a metric count twice. ``derivedMetrics`` are arithmetic over a column's
summed named scores (and ``__count``, the column's cells), evaluated here by a small evaluator (numbers, names, + - * / %
**, parentheses, and min, max, abs, sqrt, log, exp, round), never by ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import InvalidParams
from app.core.grid.assert_result import AssertResult
from app.core.grid.model import Assertion


@dataclass(frozen=True, slots=True)
class Grade:
    """A cell's verdict: pass or fail, the weighted score and the named scores (each the
    weighted mean of its assertions), with each named score's total weight and assertions."""

    passed: bool
    score: float
    reason: str
    named: Mapping[str, float] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    """Per named score, its assertions' summed weight (promptfoo's ``namedScoreWeights``)."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Per named score, how many assertions feed it (promptfoo's ``namedScoresCount``)."""

    def weight(self, name: str) -> float:
        """The summed weight of named score ``name`` (1 for a grade stored without weights)."""
        return self.weights.get(name, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """``{pass, score, reason, named_scores, named_weights, named_counts}``."""
        return {"pass": self.passed, "score": self.score, "reason": self.reason, "named_scores": dict(self.named),
                "named_weights": dict(self.weights), "named_counts": dict(self.counts)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grade | None:
        """Inverse of :meth:`to_dict` (None for data that is not a grade)."""
        score, named = data.get("score"), data.get("named_scores") or {}
        if not isinstance(data.get("pass"), bool) or not isinstance(score, int | float) or not isinstance(named, dict):
            return None
        weights, counts = data.get("named_weights"), data.get("named_counts")
        counted = _floats(counts if isinstance(counts, dict) else {})
        return cls(data["pass"], float(score), str(data.get("reason") or ""), _floats(named),
                   _floats(weights if isinstance(weights, dict) else {}), {k: int(v) for k, v in counted.items()})  # fmt: skip


def _floats(data: Mapping[Any, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def grade(asserts: Sequence[Assertion], results: Sequence[AssertResult], threshold: float | None) -> Grade:
    """The verdict of one cell from its assertions and their results (in the same order)."""
    total = weights = 0.0
    sums: dict[str, float] = {}
    metric_weights: dict[str, float] = {}
    counts: dict[str, int] = {}
    failed = ""
    for a, r in zip(asserts, results, strict=False):
        total += r.value * a.weight
        weights += a.weight
        if a.metric:
            sums[a.metric] = sums.get(a.metric, 0.0) + r.value * a.weight
            metric_weights[a.metric] = metric_weights.get(a.metric, 0.0) + a.weight
            counts[a.metric] = counts.get(a.metric, 0) + 1
        if not r.passed:
            failed = f"{r.type}: {r.reason}"
    score = total / weights if weights > 0 else (0.0 if results else 1.0)
    passed, reason = not failed, failed or "All assertions passed"
    if threshold is not None:
        passed = score >= threshold
        reason = f"Aggregate score {score:.2f} {'≥' if passed else '<'} {threshold:g} threshold"
    named = {k: (v / metric_weights[k] if metric_weights[k] > 0 else 0.0) for k, v in sums.items()}
    return Grade(passed, score, reason, named, metric_weights, counts)


@dataclass(frozen=True, slots=True)
class ColumnMetrics:
    """A column's named scores over its graded cells: ``sums`` (promptfoo's ``namedScores``:
    score x weight summed), ``weights`` and ``counts`` (its ``namedScoreWeights`` and
    ``namedScoresCount``), ``means`` (sum / weight, as promptfoo's viewer shows them), and the
    derived metrics (None where the expression fails, with ``errors`` saying why)."""

    sums: Mapping[str, float]
    means: Mapping[str, float]
    derived: Mapping[str, float | None]
    errors: Mapping[str, str]
    weights: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{named_scores: {name: mean}, named_score_sums, named_score_weights,
        named_score_counts, derived_metrics, derived_errors}``."""
        out: dict[str, Any] = {"named_scores": dict(self.means), "named_score_sums": dict(self.sums),
                               "named_score_weights": dict(self.weights), "named_score_counts": dict(self.counts),
                               "derived_metrics": dict(self.derived)}  # fmt: skip
        if self.errors:
            out["derived_errors"] = dict(self.errors)
        return out


def column_metrics(grades: Iterable[Grade | None], derived: Sequence[tuple[str, str]]) -> ColumnMetrics:
    """Named scores and derived metrics over a column's cells (None: a cell without a grade),
    summed as promptfoo sums them: each cell's named score times its weight for the metric."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    counts: dict[str, int] = {}
    cells = 0
    for g in grades:
        cells += 1
        if g is None:
            continue
        for name, value in g.named.items():
            weight = g.weight(name)
            sums[name] = sums.get(name, 0.0) + value * weight
            weights[name] = weights.get(name, 0.0) + weight
            counts[name] = counts.get(name, 0) + g.counts.get(name, 1)
    means = {k: (v / weights[k] if weights[k] > 0 else 0.0) for k, v in sums.items()}
    values: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    scope = {"__count": float(cells), **sums}
    for name, expression in derived:
        try:
            values[name] = scope[name] = evaluate(expression, scope)
        except InvalidParams as exc:
            values[name], errors[name] = None, exc.message
    return ColumnMetrics(sums, means, values, errors, weights, counts)


_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Mod: operator.mod, ast.Pow: operator.pow,
}  # fmt: skip
_FUNCS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "sqrt": math.sqrt, "log": math.log, "exp": math.exp, "round": lambda x, n=0: round(x, int(n)),
}  # fmt: skip
MAX_EXPRESSION = 500


def check_expression(expression: str) -> None:
    """Raise InvalidParams when ``expression`` is not arithmetic this evaluator takes."""
    evaluate(expression, {}, names_known=False)


def evaluate(expression: str, names: Mapping[str, float], *, names_known: bool = True) -> float:
    """The value of an arithmetic ``expression`` over ``names`` (raises InvalidParams)."""
    if len(expression) > MAX_EXPRESSION:
        raise InvalidParams(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidParams(f"not an arithmetic expression: {exc.msg}") from None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name):
            if not names_known:
                return 1.0
            if node.id not in names:
                raise InvalidParams(f"no named score '{node.id}' (known: {', '.join(sorted(names)) or 'none'})")
            return float(names[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 1000:
                raise InvalidParams("an exponent above 1000")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
            return float(_FUNCS[node.func.id](*(walk(arg) for arg in node.args)))
        raise InvalidParams(f"'{ast.unparse(node)}' is not allowed (numbers, named scores, + - * / % **, "
                            f"and {', '.join(_FUNCS)})")  # fmt: skip

    try:
        value = walk(tree)
    except ZeroDivisionError:
        if not names_known:
            return 0.0  # only the form is checked
        raise InvalidParams("division by zero") from None
    except (ValueError, TypeError, OverflowError) as exc:
        if not names_known:
            return 0.0
        raise InvalidParams(f"cannot compute it: {exc}") from None
    if names_known and not math.isfinite(value):
        raise InvalidParams("the value is not a finite number")
    return value
