"""Checking answers: the assertion types of promptfoo that this app supports, and the order
promptfoo applies them in.

- The provider's ``transform`` runs first, then the output transform (``options.transform``
  of the test, else of ``defaultTest``); each assertion then sees their result, after its
  own ``transform`` if it has one (promptfoo's evaluator's order).
- Checks from the text alone are in :mod:`~app.core.grid.assert_text` (``regex`` runs
  JavaScript's RegExp in V8, so as a task like the scripts); ``javascript`` and
  ``python`` in :mod:`~app.core.grid.assert_scripts`; ``llm-rubric`` and ``similar`` in
  :mod:`~app.core.grid.assert_model`; the cell's verdict (weights, threshold, named scores)
  in :mod:`~app.core.grid.scoring`.

A script or model check that fails to run fails that assertion with the reason; the other
assertions and cells go on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.core.errors import AppError
from app.core.grid.assert_model import (
    Embedder,
    check_similar,
    grade_score,
    grader_variant,
    parse_grade,
    rubric_messages,
    rubric_result,
)
from app.core.grid.assert_result import Answer, AssertResult, output_text
from app.core.grid.assert_scripts import apply_transform, check_script, script_ref
from app.core.grid.assert_text import call_text, check, check_regex, json_objects, levenshtein
from app.core.grid.model import Assertion, Variant
from app.core.grid.sandbox import ScriptError
from app.core.types import ChatMessage

__all__ = ["Answer", "AssertResult", "Checker", "call_text", "check", "check_all", "check_plain", "counted",
           "json_objects", "levenshtein",
           "needs_checker", "needs_logprobs", "parse_grade", "rubric_messages", "rubric_result", "script_context",
           "stopped"]  # fmt: skip

MODEL_TYPES = frozenset({"llm-rubric", "similar"})
SCRIPT_TYPES = frozenset({"javascript", "python"})
LOGPROB_TYPES = frozenset({"perplexity", "perplexity-score"})
ASYNC_TYPES = MODEL_TYPES | SCRIPT_TYPES | {"regex"}
"""Checked as a task: scripts, models, and ``regex`` (JavaScript's, in V8 off the loop)."""

AskGrader = Callable[[Variant, list[ChatMessage]], Awaitable[str]]
"""Sends a grader's request and gives back its answer's text (raises AppError)."""


def needs_checker(asserts: Sequence[Assertion], *transforms: str | None) -> bool:
    """True when checking needs scripts or models (so it runs as a task, not at once)."""
    return any(transforms) or any(a.base in ASYNC_TYPES or a.transform for a in asserts)


def needs_logprobs(asserts: Sequence[Assertion]) -> bool:
    """True when an assertion reads the answer's token log-probabilities."""
    return any(a.base in LOGPROB_TYPES for a in asserts)


@dataclass(frozen=True, slots=True)
class Checker:
    """What script and model checks need from the run: the grader's sender, the embedder
    (the OpenAI provider), ``defaultTest.options.provider`` and the default grader setting."""

    ask: AskGrader
    embedder: Callable[[], Embedder]
    configured: Variant | None = None
    default_grader: str | None = None


def script_context(variables: Mapping[str, Any], prompt: str, test: Mapping[str, Any], answer: Answer,
                   provider: Mapping[str, str]) -> dict[str, Any]:  # fmt: skip
    """The ``context`` scripts get (promptfoo's names)."""
    return {"vars": dict(variables), "prompt": prompt, "test": dict(test),
            "logProbs": list(answer.logprobs) or None, "provider": dict(provider),
            "providerResponse": {"output": answer.text, "finishReason": answer.finish_reason}}  # fmt: skip


def counted(a: Assertion, result: AssertResult) -> AssertResult:
    """``result`` as the cell counts it: an assertion of weight 0 passes whatever it found (as
    promptfoo's do: it only feeds its ``metric``), keeping its score."""
    return replace(result, passed=True, score=result.value) if a.weight == 0 and not result.passed else result


def check_plain(asserts: Sequence[Assertion], answer: Answer, variables: Mapping[str, Any]) -> list[AssertResult]:
    """Every assertion's result when none needs a script or a model (:func:`needs_checker`)."""
    return [counted(a, check(a, answer, variables)) for a in asserts]


def stopped(asserts: Sequence[Assertion], answer: Answer, variables: Mapping[str, Any]) -> list[AssertResult]:
    """The results when checking was stopped: the plain checks done, the others failed."""
    return [AssertResult(a.type, False, "checking was stopped", 0.0, a.metric)
            if a.base in ASYNC_TYPES or a.transform else check(a, answer, variables) for a in asserts]  # fmt: skip


async def check_all(asserts: Sequence[Assertion], answer: Answer, variables: Mapping[str, Any],
                    context: dict[str, Any], transform: str | None, checker: Checker,
                    provider_transform: str | None = None) -> list[AssertResult]:  # fmt: skip
    """Every assertion's result, in order (see the module doc for the transforms)."""
    for code, which in ((provider_transform, "provider's"), (transform, "output")):
        if not code:
            continue
        try:
            answer = replace(answer, output=await apply_transform(code, answer.value, context))
        except ScriptError as exc:
            why = f"the {which} transform failed: {exc.message}"
            return [AssertResult(a.type, False, why, 0.0, a.metric) for a in asserts]
    out: list[AssertResult] = []
    for a in asserts:
        seen = answer
        if a.transform:
            try:
                seen = replace(answer, output=await apply_transform(a.transform, answer.value, context))
            except ScriptError as exc:
                out.append(AssertResult(a.type, False, f"its transform failed: {exc.message}", 0.0, a.metric))
                continue
        out.append(counted(a, await _one(a, seen, variables, context, checker)))
    return out


async def _one(a: Assertion, answer: Answer, variables: Mapping[str, Any], context: dict[str, Any],
               checker: Checker) -> AssertResult:  # fmt: skip
    if a.base == "regex":
        return await check_regex(a, answer, variables)
    if a.base in SCRIPT_TYPES:
        return await check_script(a, script_ref(str(a.value)), answer.value, context)
    if a.base == "similar":
        try:
            embedder = checker.embedder()
        except AppError as exc:
            return AssertResult(a.type, False, f"no embeddings: {exc.message}", 0.0, a.metric)
        return await check_similar(a, answer.value, variables, embedder, checker.configured)
    if a.base == "llm-rubric":
        return await _rubric(a, output_text(answer.value), variables, checker)
    return check(a, answer, variables)


async def _rubric(a: Assertion, output: str, variables: Mapping[str, Any], checker: Checker) -> AssertResult:
    try:
        grader, name = grader_variant(a, checker.configured, checker.default_grader)
        text = await checker.ask(grader, rubric_messages(a, output, variables))
    except AppError as exc:
        return AssertResult(a.type, False, f"grading failed: {exc.user_message()}", 0.0, a.metric)
    verdict, reason = parse_grade(text)
    return rubric_result(a, verdict, reason, grade_score(text), name)
