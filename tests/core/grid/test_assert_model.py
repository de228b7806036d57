"""similar against the loopback server's /v1/embeddings, llm-rubric's score and threshold,
and which grader grades when the file names none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.core.grid.assert_model import (
    DEFAULT_GRADER,
    check_similar,
    cosine,
    embedding_source,
    grade_score,
    grader_variant,
    rubric_result,
)
from app.core.grid.model import Assertion, Variant
from tests.support.openai_server import OpenAIServer, embedding, error, provider_context

pytest_plugins = ["tests.support.openai_server"]


def similar_all(run: Callable[..., Any], server: OpenAIServer, cases: list[tuple[Assertion, str]]) -> list[Any]:
    """Check ``cases`` on one loop with one provider (closed at the end)."""
    from app.providers.openai import OpenAIProvider

    async def go() -> list[Any]:
        provider = OpenAIProvider(provider_context([server.endpoint("Loop")]))
        try:
            return [await check_similar(a, output, {"city": "Paris"}, provider,
                                        Variant("openai:embedding:emb-small", endpoint="Loop")) for a, output in cases]  # fmt: skip
        finally:
            await provider.aclose()

    return list(run(go(), timeout=30))


def test_similar_compares_embeddings(run: Callable[..., Any], openai_server: OpenAIServer) -> None:
    same, far, unlike, listed, strict = similar_all(run, openai_server, [
        (Assertion("similar", "the capital is {{city}}"), "The capital is Paris!"),
        (Assertion("similar", "bananas are yellow"), "The capital is Paris"),
        (Assertion("not-similar", "bananas are yellow"), "The capital is Paris"),
        (Assertion("similar", ["bananas", "capital is Paris"]), "the capital is Paris"),
        (Assertion("similar", "capital Paris France", 0.99), "capital Paris"),
    ])  # fmt: skip
    assert same.passed and same.score == pytest.approx(1.0) and "emb-small" in same.reason
    assert not far.passed and far.score == pytest.approx(cosine(embedding("The capital is Paris"), embedding("bananas are yellow")))
    assert unlike.passed and listed.passed
    assert not strict.passed and "threshold 0.99" in strict.reason
    requests = [r for r in openai_server.requests if r.path.endswith("/embeddings")]
    assert requests and requests[0].json["model"] == "emb-small" and requests[0].json["input"][1] == "the capital is Paris"


def test_embedding_errors_fail_the_assertion(run: Callable[..., Any], openai_server: OpenAIServer) -> None:
    openai_server.enqueue(error(404, "no such model: emb-small"))
    failed, = similar_all(run, openai_server, [(Assertion("similar", "x"), "x")])
    assert not failed.passed and "embeddings from Loop (emb-small) failed" in failed.reason and "no such model" in failed.reason


def test_the_embedding_model_and_grader_chosen() -> None:
    assert embedding_source(Assertion("similar", "x"), None) == (None, "text-embedding-3-large")
    assert embedding_source(Assertion("similar", "x"), Variant("local:smollm2")) == (None, "text-embedding-3-large")
    assert embedding_source(Assertion("similar", "x", provider="openai:embedding:e3"), None) == (None, "e3")
    rubric = Assertion("llm-rubric", "ok")
    assert grader_variant(rubric, None, None)[0].model == DEFAULT_GRADER
    assert "promptfoo's default grader" in grader_variant(rubric, None, None)[1]
    chosen, said = grader_variant(rubric, None, "mock:echo")
    assert chosen.model == "mock:echo" and "default grader setting" in said
    assert grader_variant(rubric, Variant("mock:echo", label="judge"), "openai:x")[1] == "judge"
    assert grader_variant(Assertion("llm-rubric", "ok", provider="mock:echo"), None, None)[0].model == "mock:echo"


def test_rubric_scores_and_thresholds() -> None:
    assert grade_score('{"pass": true, "score": 0.6, "reason": "ok"}') == 0.6 and grade_score("PASS") is None
    a = Assertion("llm-rubric", "x", threshold=0.7)
    low = rubric_result(a, True, "ok", 0.6, "judge")
    assert not low.passed and low.reason.startswith("graded by judge: ok") and "below the threshold 0.7" in low.reason
    assert rubric_result(a, True, "ok", 0.8).passed
    assert rubric_result(Assertion("llm-rubric", "x"), True, "ok").score == 1.0
