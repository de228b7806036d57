"""The assertions a model decides: ``llm-rubric`` (a grader model reads the answer and the
rubric and gives a JSON verdict) and ``similar`` (the cosine similarity of the answer's and
the expected text's embeddings, at least ``threshold``, default 0.75).

The grader is the assertion's ``provider``, else ``defaultTest.options.provider``, else the
setting ``default_grader``, else promptfoo's default: OpenAI's :data:`DEFAULT_GRADER` through
the built-in OpenAI endpoint (``OPENAI_BASE_URL`` when set). Embeddings come from an
``openai:embedding:MODEL`` provider given the same way, else OpenAI's
:data:`DEFAULT_EMBEDDING` through the built-in endpoint (``/v1/embeddings``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from app.core.errors import AppError, redact
from app.core.grid.assert_result import AssertResult, output_text, snip
from app.core.grid.assert_text import value_of
from app.core.grid.entries import normalize_model_id
from app.core.grid.model import Assertion, Variant
from app.core.types import ChatMessage

DEFAULT_GRADER = "openai:gpt-4.1-2025-04-14"
"""promptfoo 0.121's default grading model (``DefaultGradingProvider``)."""
DEFAULT_EMBEDDING = "text-embedding-3-large"
"""promptfoo's default embedding model (``DefaultEmbeddingProvider``)."""
DEFAULT_SIMILAR = 0.75

GRADER_SYSTEM = (
    "You are grading output according to a user-specified rubric. If the statement in the rubric is true, "
    "then the output passes the test. You respond with a JSON object with this structure: "
    '{"reason": string, "pass": boolean, "score": number}. Respond with the JSON object only.'
)


def rubric_messages(a: Assertion, output: str, variables: Mapping[str, Any] | None = None) -> list[ChatMessage]:
    """The grader's request for an llm-rubric assertion (promptfoo's default grading prompt)."""
    rubric = value_of(a, variables or {})
    return [ChatMessage("system", GRADER_SYSTEM),
            ChatMessage("user", f"<Output>\n{output}\n</Output>\n<Rubric>\n{rubric}\n</Rubric>")]  # fmt: skip


_VERDICT = re.compile(r"\b(pass(?:es|ed)?|fail(?:s|ed)?|yes|no|true|false)\b", re.I)


def _grade_json(text: str) -> dict[str, Any] | None:
    for m in re.finditer(r"\{.*?\}", text, re.S):
        try:
            data = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("pass"), bool):
            return data
    return None


def parse_grade(text: str) -> tuple[bool | None, str]:
    """The grader's verdict: a JSON object with ``pass`` (and ``reason``), else the first
    PASS/FAIL/yes/no word; (None, why) when there is none."""
    data = _grade_json(text)
    if data is not None:
        return data["pass"], str(data.get("reason") or ("passes" if data["pass"] else "fails"))
    word = _VERDICT.search(text)
    if word is None:
        return None, f"the grader gave no verdict: {snip(text) if text.strip() else '(empty answer)'}"
    verdict = word.group(1).lower()
    return verdict.startswith(("pass", "yes", "true")), f"grader: {snip(text)}"


def grade_score(text: str) -> float | None:
    """The ``score`` of the grader's JSON verdict, when it gives a number."""
    data = _grade_json(text)
    score = data.get("score") if data is not None else None
    return float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None


def rubric_result(a: Assertion, verdict: bool | None, reason: str, score: float | None = None,
                  grader: str = "") -> AssertResult:  # fmt: skip
    """The llm-rubric result from the grader's verdict (no verdict: the assertion fails). With
    a ``threshold`` the grader's score must reach it too (promptfoo); ``grader`` is named."""
    said = f"graded by {grader}: {reason}" if grader else reason
    if verdict is None:
        return AssertResult(a.type, False, said, 0.0, a.metric)
    if score is None:
        score = 1.0 if verdict else 0.0
    if a.threshold is not None and score < a.threshold:
        verdict, said = False, f"{said} (score {score:g} is below the threshold {a.threshold:g})"
    passed = verdict != a.negated
    return AssertResult(a.type, passed, said, score if not a.negated else 1.0 - score, a.metric)


def grader_variant(a: Assertion, configured: Variant | None, setting: str | None) -> tuple[Variant, str]:
    """The grader of ``a`` and how it was chosen (raises AppError for a bad model id)."""
    if a.provider:
        model, endpoint = normalize_model_id(a.provider)
        return Variant(model, endpoint=endpoint, temperature=0.0), model
    if configured is not None:
        return configured, configured.title
    if setting:
        model, endpoint = normalize_model_id(setting)
        return Variant(model, endpoint=endpoint, temperature=0.0), f"{model} (the default grader setting)"
    return Variant(DEFAULT_GRADER, temperature=0.0), f"{DEFAULT_GRADER} (promptfoo's default grader)"


# ------------------------------------------------------------------------------------------ similar
class Embedder(Protocol):
    """The OpenAI provider's side that embeddings need: an endpoint and its client."""

    def endpoint(self, name_or_url: str | None) -> Any:
        """The endpoint for a name, a base URL or None (the built-in OpenAI one)."""
        ...

    async def client(self, ep: Any) -> Any:
        """The ``AsyncOpenAI`` client of an endpoint."""
        ...


def embedding_source(a: Assertion, configured: Variant | None) -> tuple[str | None, str]:
    """(endpoint, embedding model) for a ``similar`` check: an ``openai:embedding:MODEL``
    provider of the assertion or of ``options.provider``, else OpenAI's default."""
    for candidate in (a.provider, configured.model if configured is not None else None):
        if not candidate:
            continue
        model, endpoint = normalize_model_id(candidate)
        if configured is not None and candidate == configured.model:
            endpoint = configured.endpoint
        name = model.partition(":")[2]
        if model.startswith("openai:") and name.startswith("embedding:"):
            return endpoint, name.removeprefix("embedding:")
    return None, DEFAULT_EMBEDDING


async def embed(provider: Embedder, endpoint: str | None, model: str, texts: Sequence[str]) -> list[list[float]]:
    """The embeddings of ``texts`` from an OpenAI-compatible ``/v1/embeddings`` (raises
    AppError with the endpoint's message)."""
    ep = provider.endpoint(endpoint)
    client = await provider.client(ep)
    try:
        reply = await client.embeddings.create(model=model, input=list(texts))
    except Exception as exc:  # the SDK's errors: said in the assertion's reason
        raise AppError(f"embeddings from {ep.name} ({model}) failed: {redact(str(exc))[:300]}") from None
    vectors = [list(map(float, d.embedding)) for d in sorted(reply.data, key=lambda d: d.index)]
    if len(vectors) != len(texts):
        raise AppError(f"embeddings from {ep.name} ({model}): {len(vectors)} vectors for {len(texts)} texts")
    return vectors


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors (0 when one is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def check_similar(a: Assertion, output: Any, variables: Mapping[str, Any], provider: Embedder,
                        configured: Variant | None) -> AssertResult:  # fmt: skip
    """``similar``: passes when one expected text's similarity reaches the threshold
    (``not-similar``: when it stays below); the score is the similarity (1 - it for not-)."""
    value = value_of(a, variables)
    expected = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    threshold = a.threshold if a.threshold is not None else DEFAULT_SIMILAR
    try:
        endpoint, model = embedding_source(a, configured)
        vectors = await embed(provider, endpoint, model, [output_text(output), *expected])
    except AppError as exc:
        return AssertResult(a.type, False, exc.message, 0.0, a.metric)
    best: AssertResult | None = None
    for text, vector in zip(expected, vectors[1:], strict=True):
        sim = cosine(vectors[0], vector)
        passed = sim < threshold if a.negated else sim >= threshold
        side = "below" if sim < threshold else "at or above"
        result = AssertResult(a.type, passed, f"similarity {sim:.2f} to {snip(text)} is {side} the threshold "
                              f"{threshold:g} ({model})", 1.0 - sim if a.negated else sim, a.metric)  # fmt: skip
        if passed:
            return result
        if best is None or (result.score or 0.0) < (best.score or 0.0):
            best = result
    assert best is not None
    if len(expected) == 1:
        return best
    return AssertResult(a.type, False, f"none of the {len(expected)} values met the similarity threshold; "
                        f"the closest: {best.reason}", best.score, a.metric)  # fmt: skip
