"""The token lens's arithmetic (app/core/lens.py): mean logprob and perplexity, percentages,
alternatives, tokens in a message's meta, the start of a branch from a token, and the
adapter effect per token (pure, then scored under the base model with FakeLocal)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from app.core.errors import AppError
from app.core.events import TokenChoice, TokenLogprob
from app.core.lens import (
    adapter_effect,
    alternatives,
    branch_at,
    lens_sentence,
    mean_logprob,
    percent,
    perplexity,
    probability,
    score_adapter_effect,
    split_lead,
    tokens_from_json,
    tokens_from_meta,
    tokens_to_json,
    visible,
)
from app.core.types import AdapterSpec, ChatMessage, GenerationRequest, ModelRef
from tests.support.fakes import FakeLocal
from tests.support.openai_server import provider_context


def tok(text: str, p: float, *alts: tuple[str, float], token_id: int | None = None) -> TokenLogprob:
    top = [TokenChoice(text, math.log(p))] + [TokenChoice(t, math.log(q)) for t, q in alts]
    return TokenLogprob(text, math.log(p), tuple(sorted(top, key=lambda c: c.logprob, reverse=True)), token_id)


ANSWER = [tok("The", 0.9, (" A", 0.05)), tok(" cat", 0.5, (" dog", 0.3), (" cow", 0.1)), tok(" sat", 0.8)]


def test_mean_logprob_and_perplexity() -> None:
    mean = (math.log(0.9) + math.log(0.5) + math.log(0.8)) / 3
    assert mean_logprob(ANSWER) == pytest.approx(mean)
    assert perplexity(ANSWER) == pytest.approx(math.exp(-mean))
    assert perplexity([tok("x", 1.0)]) == pytest.approx(1.0)
    assert mean_logprob([]) is None and perplexity([]) is None and lens_sentence([]) == ""
    assert lens_sentence(ANSWER) == f"mean logprob \u2212{-mean:.2f} \u00b7 perplexity {math.exp(-mean):.2f}"


def test_percentages_read_well() -> None:
    assert [percent(math.log(p)) for p in (0.8, 0.042, 0.0003, 1e-7)] == ["80%", "4.2%", "0.03%", "<0.01%"]
    assert probability(0.001) == 1.0  # a logprob above 0 from rounding is certainty
    assert visible(" a\nb") == "\u2423a\u21b5b" and visible("") == "\u2205"


def test_alternatives_are_sorted_and_include_the_chosen_token() -> None:
    assert [c.text for c in alternatives(ANSWER[1])] == [" cat", " dog", " cow"]
    sampled = TokenLogprob(" cow", math.log(0.1), (TokenChoice(" cat", math.log(0.5)), TokenChoice(" dog", -1.2)))
    assert [c.text for c in alternatives(sampled)] == [" cat", " dog", " cow"]  # not in top: added


def test_tokens_round_trip_through_meta_and_bad_data_gives_none() -> None:
    data = tokens_to_json([*ANSWER, TokenLogprob("!", -0.1, (), 42)])
    assert tokens_from_json(data) == (*ANSWER, TokenLogprob("!", -0.1, (), 42))
    assert tokens_from_meta({"tokens": data})[3].token_id == 42
    assert tokens_from_meta({}) == () and tokens_from_meta(None) == ()
    assert tokens_from_json([{"text": "x"}]) == () and tokens_from_json("nope") == ()


def test_branch_at_keeps_the_text_before_and_puts_the_alternative_in_place() -> None:
    branch = branch_at("The cat sat", ANSWER, 1, " dog")
    assert branch.prefix == "The dog"
    assert [t.text for t in branch.tokens] == ["The", " dog"]
    assert branch.tokens[-1].logprob == pytest.approx(math.log(0.3)) and branch.tokens[-1].top == ANSWER[1].top
    # a given start the tokens do not cover stays in front
    assert split_lead("Once upon The cat sat", ANSWER) == "Once upon "
    assert branch_at("Once upon The cat sat", ANSWER, 0, " A").prefix == "Once upon  A"
    assert split_lead("The cat sat", ANSWER) == "" and split_lead("other text", ANSWER) == ""
    with pytest.raises(AppError, match="alternatives"):
        branch_at("The cat sat", ANSWER, 1, " horse")
    with pytest.raises(AppError, match="no token 4"):
        branch_at("The cat sat", ANSWER, 3, " dog")


ADAPTER_LOGPROBS = [-0.5, -0.5, -0.05, -0.5, -3.0, -0.45, -0.5, -0.4]


def _adapter_answer() -> list[TokenLogprob]:
    return [TokenLogprob(f" w{i}", lp, (), 100 + i) for i, lp in enumerate(ADAPTER_LOGPROBS)]


def test_adapter_effect_ranks_marks_and_summarises() -> None:
    effect = adapter_effect(_adapter_answer(), [-0.5] * 8, top_n=3)
    assert [round(e.diff, 2) for e in effect.effects] == [0, 0, 0.45, 0, -2.5, 0.05, 0, 0.1]
    assert effect.top == (4, 2, 7)  # largest |Δ| first; unchanged tokens never named
    assert effect.marked == {4, 2, 7}
    assert effect.mean_diff == pytest.approx(sum([0.45, -2.5, 0.05, 0.1]) / 8)
    assert effect.strength(4) == 1.0 and 0 < effect.strength(7) < effect.strength(2) < 1 and effect.strength(0) == 0
    text = effect.sentence()
    assert text.startswith("Adapter effect over 8 tokens: mean \u0394 logprob \u2212")
    assert "\u201c\u2423w4\u201d 61% \u2192 5.0%" in text  # base -> adapter
    # beyond the top N, a big change is still marked
    assert adapter_effect(_adapter_answer(), [-0.5] * 8, top_n=1, threshold=0.4).marked == {4, 2}
    with pytest.raises(ValueError):
        adapter_effect(_adapter_answer(), [-0.5] * 7)
    assert adapter_effect([], []).mean_diff is None


def _request(adapters: tuple[AdapterSpec, ...]) -> GenerationRequest:
    return GenerationRequest(ModelRef("local", "tiny"), (ChatMessage("user", "hi"),), adapters=adapters)


class _Spy(FakeLocal):
    """FakeLocal that remembers what it was asked to score."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.scored: list[tuple[GenerationRequest, list[int]]] = []

    async def score(self, request: GenerationRequest, token_ids: Any) -> list[float]:
        self.scored.append((request, list(token_ids)))
        return await super().score(request, token_ids)


def test_scoring_uses_the_request_without_adapters_in_one_call(run: Any) -> None:
    provider = _Spy(provider_context([]))
    request = _request((AdapterSpec("/a", 1.0, "style"),))
    effect = run(score_adapter_effect(provider, request, _adapter_answer()))
    (scored, ids), = provider.scored
    assert scored.adapters == () and scored.messages == request.messages and ids == list(range(100, 108))
    assert [e.base_logprob for e in effect.effects] == [-0.5] * 8  # FakeLocal's base model
    assert effect.top[0] == 4


def test_scoring_needs_token_ids(run: Any) -> None:
    provider = _Spy(provider_context([]))
    with pytest.raises(AppError, match="no token ids"):
        run(score_adapter_effect(provider, _request(()), [TokenLogprob("x", -0.1)]))
    with pytest.raises(AppError, match="no tokens"):
        run(score_adapter_effect(provider, _request(()), []))
    assert provider.scored == []
