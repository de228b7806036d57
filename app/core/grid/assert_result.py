"""What an assertion looks at (:class:`Answer`) and what it gives back (:class:`AssertResult`:
pass or fail, a score from 0 to 1 and the reason), as promptfoo's grading results."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.core.tools import ToolCall, ToolSpec

SNIPPET = 60


@dataclass(frozen=True, slots=True)
class AssertResult:
    """The outcome of one assertion: ``score`` None means 1 for a pass and 0 for a fail."""

    type: str
    passed: bool
    reason: str
    score: float | None = None
    metric: str | None = None
    """The named score it feeds (``metric``)."""

    @property
    def value(self) -> float:
        """The score (1 or 0 when the check has no score of its own)."""
        if self.score is not None:
            return self.score
        return 1.0 if self.passed else 0.0

    def to_dict(self) -> dict[str, Any]:
        """``{type, pass, reason}`` with ``score`` and ``metric`` when set (the CLI's JSON,
        the exports and the run store)."""
        out: dict[str, Any] = {"type": self.type, "pass": self.passed, "reason": self.reason}
        if self.score is not None:
            out["score"] = self.score
        if self.metric:
            out["metric"] = self.metric
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssertResult:
        """Inverse of :meth:`to_dict`."""
        score = data.get("score")
        metric = data.get("metric")
        return cls(str(data.get("type", "")), bool(data.get("pass")), str(data.get("reason", "")),
                   float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
                   str(metric) if metric else None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Answer:
    """What assertions look at: the text (or, after a transform, any JSON value in
    ``output``), its cost (None: unknown), its latency, the tool calls the model made and
    the tools it was offered, its finish reason and its tokens' log-probabilities."""

    text: str
    cost_usd: Decimal | None = None
    latency_s: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    finish_reason: str | None = None
    logprobs: tuple[float, ...] = ()
    output: Any = field(default=None)
    """The output scripts see (None: ``text``)."""

    @property
    def value(self) -> Any:
        """The output as scripts see it: ``output`` when a transform made one, else the text."""
        return self.text if self.output is None else self.output


def output_text(value: Any) -> str:
    """The text string checks look at: a non-text output (a transform's result, a parsed JSON
    answer) as compact JSON, as promptfoo's ``JSON.stringify`` writes it."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def snip(text: str) -> str:
    """``text`` on one line, cut at :data:`SNIPPET` characters, quoted."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…")


def structured_output(text: str) -> Any:
    """The output scripts see for an answer to a ``json_schema`` response format: the parsed
    JSON (as promptfoo's OpenAI provider gives it), or None (the text) when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
