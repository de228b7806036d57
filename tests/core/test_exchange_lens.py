"""What an answer's meta keeps for the token lens (app/core/exchange.py): its tokens with their
probabilities only when they were asked for, a branch's given start first, the prefix and the
provider's notes - through the real engine and the mock provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.engine import Engine
from app.core.exchange import PREFIX_TOKENS, answer_meta, final_meta, lens_meta
from app.core.lens import tokens_from_meta, tokens_to_json
from app.core.paths import AppPaths
from app.core.pricing import PriceTable
from app.core.provider import ProviderContext, ProviderRegistry
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import Settings
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.core.usage import UsageLedger
from app.providers.mock import MockProvider


def _result(run: Any, tmp_path: Path, *, logprobs: int | None, prefix: str = "") -> Any:
    ctx = ProviderContext(Settings(), SecretStore(MemoryKeyring(), environ={}), AppPaths.default().ensure())
    ledger = UsageLedger(tmp_path / "usage.sqlite3")
    try:
        engine = Engine(ProviderRegistry(ctx, {"mock": lambda _c: MockProvider()}), PriceTable.load(), ledger)
        request = GenerationRequest(ModelRef.parse("mock:echo"), (ChatMessage("user", "one two three"),),
                                    GenerationParams(logprobs=logprobs, seed=1), prefix=prefix)
        return run(engine.run(request))
    finally:
        ledger.close()


def test_tokens_are_kept_only_when_asked_for(run: Any, tmp_path: Path) -> None:
    asked = final_meta({"model": "mock:echo"}, _result(run, tmp_path, logprobs=3))
    tokens = tokens_from_meta(asked)
    assert "".join(t.text for t in tokens) == "one two three" and all(len(t.top) == 3 for t in tokens)
    assert asked["tokens"] == tokens_to_json(tokens)  # TokenLogprob.to_json, as the CLI prints them
    assert "tokens" not in final_meta({}, _result(run, tmp_path, logprobs=None))  # the history stays small


def test_a_branch_keeps_its_given_start_as_tokens_first(run: Any, tmp_path: Path) -> None:
    start = tokens_from_meta({"tokens": [{"text": "one", "logprob": -0.2, "top": []},
                                         {"text": " six", "logprob": -2.0, "top": []}]})
    result = _result(run, tmp_path, logprobs=2, prefix="one six")
    assert result.text == "one six one two three"
    base = {**answer_meta(result.request, ""), PREFIX_TOKENS: tokens_to_json(start)}
    assert base["prefix"] == "one six"
    meta = final_meta(base, result)
    assert PREFIX_TOKENS not in meta
    assert "".join(t.text for t in tokens_from_meta(meta)) == result.text  # the whole answer, start included
    # a stopped answer keeps the tokens it had; without probabilities asked, none are kept
    assert len(lens_meta(base, result.tokens[:1], True)["tokens"]) == 3
    assert "tokens" not in lens_meta(base, result.tokens, False) and PREFIX_TOKENS not in lens_meta(base, (), False)


def test_a_long_answer_keeps_the_first_tokens_and_the_mean_of_all() -> None:
    from app.core.events import TokenLogprob
    from app.core.lens import STORED_TOKENS_MAX, stored_lens, text_around

    tokens = [TokenLogprob(f" t{i}", -1.0 if i < STORED_TOKENS_MAX else -3.0) for i in range(STORED_TOKENS_MAX + 100)]
    kept = stored_lens([], tokens)
    assert len(kept["tokens"]) == STORED_TOKENS_MAX and kept["tokens_total"] == STORED_TOKENS_MAX + 100  # type: ignore[arg-type]
    assert kept["logprob_mean"] == (-1.0 * STORED_TOKENS_MAX - 3.0 * 100) / (STORED_TOKENS_MAX + 100)
    text = "".join(t.text for t in tokens)
    assert text_around(text, tokens_from_meta(kept)) == ("", text[len("".join(t.text for t in tokens[:STORED_TOKENS_MAX])):])
    assert "tokens_total" not in stored_lens([], tokens[:3])
    assert stored_lens([], [TokenLogprob("a", float("-inf")), TokenLogprob("b", -1.0)])["logprob_mean"] == -1.0
