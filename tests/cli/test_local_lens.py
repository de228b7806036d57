"""The token lens on in-process models: ``ask --logprobs K`` and ``--assistant-prefix`` on a
tiny model (float32 through transformers' generate, and the int4 fast path) and on the bundled
SmolLM2; scoring an answer again gives the logprobs it was generated with."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from app.core.paths import AppPaths
from app.core.settings import SettingsStore
from tests.cli.test_local_cli import ask_json


def _use_dtype(dtype: str) -> None:
    store = SettingsStore(AppPaths.default().ensure().settings_file)
    settings = store.load()
    settings.local.dtype = dtype  # type: ignore[assignment]
    store.save(settings)


def _check_tokens(data: dict[str, Any], k: int) -> None:
    tokens = data["tokens"]
    assert "".join(t["text"] for t in tokens) == data["text"]  # the model's own tokens make the text
    assert len(tokens) == data["usage"]["completion_tokens"]
    for t in tokens:
        top = [a["logprob"] for a in t["top"]]
        assert t["logprob"] <= 0 and all(lp <= 0 for lp in top) and len(top) == k
        assert top == sorted(top, reverse=True)
        assert sum(math.exp(lp) for lp in top) <= 1.0 + 1e-6
        assert t["logprob"] == pytest.approx(top[0], abs=1e-5)  # greedy: the chosen token is the most likely


# A random tiny model often starts with byte pieces ("\ufffd" text) that no text prefix can
# stand for; the first of these prompts whose answer starts with two clean tokens is used.
PROMPTS = ("hello world", "hi there", "tell me a story", "good morning", "one two three", "what is this",
           "open the door", "count to ten")  # fmt: skip


def _clean_start(data: dict[str, Any]) -> str | None:
    """The text of the answer's first two tokens, when it is plain text."""
    first = [t["text"] for t in data["tokens"][:2]]
    return "".join(first) if len(first) == 2 and all(first) and "\ufffd" not in "".join(first) else None


@pytest.mark.parametrize("dtype", ["float32", "auto"], ids=["generate", "fast path"])
def test_logprobs_of_a_local_answer(tiny_local: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                    dtype: str) -> None:  # fmt: skip
    _use_dtype(dtype)
    model_dir, _ = tiny_local
    for prompt in PROMPTS:
        data, _ = ask_json(["ask", "-m", f"local:{model_dir}", "--temperature", "0", "--max-tokens", "12",
                            "--logprobs", "4", "--json", prompt], capsys)  # fmt: skip
        _check_tokens(data, 4)
        start = _clean_start(data)
        if start is not None:
            break
    assert start is not None, "no prompt gave an answer that starts with plain text"
    cont, _ = ask_json(["ask", "-m", f"local:{model_dir}", "--temperature", "0", "--max-tokens", "10",
                        "--assistant-prefix", start, "--json", prompt], capsys)  # fmt: skip
    assert cont["text"].startswith(start)
    assert cont["text"] == data["text"][: len(cont["text"])]  # greedy: the same answer, continued


@pytest.mark.parametrize("dtype", ["float32", "auto"], ids=["generate", "fast path"])
def test_sampled_tokens_get_their_own_logprob(tiny_local: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                              dtype: str) -> None:  # fmt: skip
    """Sampled, the chosen token is often not the most likely one: its logprob is its own, not the
    top alternative's (a greedy test cannot tell the two apart)."""
    _use_dtype(dtype)
    model_dir, _ = tiny_local
    data, _ = ask_json(["ask", "-m", f"local:{model_dir}", "--temperature", "1.5", "--seed", "7",
                        "--max-tokens", "24", "--logprobs", "8", "--json", "hello world"], capsys)  # fmt: skip
    below_top = 0
    for t in data["tokens"]:
        top = t["top"]
        assert t["logprob"] <= top[0]["logprob"] + 1e-5  # nothing is likelier than the most likely
        same = [a["logprob"] for a in top if a["text"] == t["text"]]
        if len(same) == 1 and t["text"] and "\ufffd" not in t["text"]:
            assert t["logprob"] == pytest.approx(same[0], abs=1e-4)  # the chosen token, as listed
        below_top += t["logprob"] < top[0]["logprob"] - 1e-3
    assert below_top > 0, "every sampled token was the most likely one: the sampling did not happen"


def test_scoring_an_answer_again_gives_its_logprobs(tiny_local: tuple[Path, Path], run: Any) -> None:
    from app.core.services import Services
    from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
    from app.providers.transformers import LocalProvider

    model_dir, adapter = tiny_local
    services = Services.create()
    request = GenerationRequest(ModelRef("local", str(model_dir)), (ChatMessage("user", "hello"),),
                                GenerationParams(temperature=0, max_tokens=8, logprobs=2))  # fmt: skip

    async def scenario() -> tuple[list[Any], list[float], list[float]]:
        try:
            result = await services.scheduler.run(request)
            provider = services.registry.get("local")
            assert isinstance(provider, LocalProvider)
            ids = [t.token_id for t in result.tokens if t.token_id is not None]
            again = await provider.score(request, ids)
            from app.core.types import AdapterSpec

            tuned = await provider.score(GenerationRequest(request.model, request.messages, request.params,
                                                           adapters=(AdapterSpec(str(adapter)),)), ids)  # fmt: skip
            return list(result.tokens), again, tuned
        finally:
            await services.aclose()

    tokens, again, tuned = run(scenario(), 120)
    assert len(again) == len(tokens) == len(tuned)
    assert again == pytest.approx([t.logprob for t in tokens], abs=2e-3)  # one pass, the same numbers
    assert tuned != pytest.approx(again, abs=1e-3)  # the adapter moves the probabilities


@pytest.mark.slow
def test_the_bundled_model_greedy_with_logprobs(capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = ask_json(["ask", "-m", "local:smollm2", "--logprobs", "5", "--max-tokens", "24", "--json",
                        "What is the capital of France?"], capsys)  # fmt: skip
    assert "Paris" in data["text"]
    _check_tokens(data, 5)
    cont, _ = ask_json(["ask", "-m", "local:smollm2", "--max-tokens", "16", "--assistant-prefix",
                        "The capital of France is", "--json", "What is the capital of France?"], capsys)  # fmt: skip
    assert cont["text"].startswith("The capital of France is") and "Paris" in cont["text"]
