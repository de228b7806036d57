"""Prefix reuse: a request reuses the KV of an earlier one's prompt and answers exactly as cold."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.events import TextDelta, UsageReport
from app.core.tools import ResponseSchema
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers import local_quant
from app.providers.local_prefix_cache import ALIGN, MB, PrefixCache, common_prefix
from app.providers.transformers import LocalProvider
from tests.providers.local_fixtures import ARCH_CONFIGS, build_tiny_arch

SYSTEM = ChatMessage("system", "You are a careful assistant. " * 12)
LONG = (SYSTEM, ChatMessage("user", "Tell me about the lighthouse keeper and the storm, in detail."))
PATHS = ["int8", "float32"]  # the lean step; transformers' generate


def test_common_prefix_and_lru_bounds() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2 and common_prefix([], [1]) == 0
    limits = [3, 100]
    cache = PrefixCache(lambda: (limits[0], limits[1]))
    for i in range(4):
        assert cache.put("k", [i, 1, 2], f"p{i}", 10)
    assert [e.payload for e in cache.entries] == ["p1", "p2", "p3"]  # the oldest went
    entry, n = cache.best("k", [1, 1, 2, 9])
    assert entry is not None and entry.payload == "p1" and n == 3
    assert cache.best("other", [1, 1, 2])[0] is None  # another key never matches
    assert cache.put("k", [7, 7], "p7", 10) and [e.payload for e in cache.entries] == ["p3", "p1", "p7"]  # LRU
    assert cache.put("k", [1, 1, 2, 3], "longer", 10)  # it extends p1: p1 goes
    assert [e.payload for e in cache.entries] == ["p3", "p7", "longer"]
    assert not cache.put("k", [1, 1], "shorter", 10)  # held already
    assert not cache.put("k", [5], "huge", 101)  # over the byte bound
    limits[1] = 25
    cache.trim()
    assert cache.nbytes <= 25 and [e.payload for e in cache.entries] == ["p7", "longer"]
    limits[0] = 0
    assert not cache.enabled and not cache.put("k", [8], "off", 1)


def ask(provider: LocalProvider, run: Callable[..., Any], model: Path, messages: tuple[ChatMessage, ...],
        prefix: str = "", adapters: tuple[AdapterSpec, ...] = (), **params: Any) -> tuple[str, UsageReport]:  # fmt: skip
    params.setdefault("temperature", 0.0)
    params.setdefault("max_tokens", 24)
    schema = params.pop("schema", None)
    req = GenerationRequest(ModelRef("local", str(model)), messages, GenerationParams(**params), prefix=prefix,
                            adapters=adapters, response_schema=schema)  # fmt: skip

    async def go() -> list[Any]:
        return [e async for e in provider.stream(req)]

    events = run(go(), timeout=120)
    LOGPROBS.append([t.logprob for e in events if isinstance(e, TextDelta) for t in e.tokens])
    return "".join(e.text for e in events if isinstance(e, TextDelta)), next(e for e in events if isinstance(e, UsageReport))


LOGPROBS: list[list[float]] = []  # of each answer asked with logprobs: bit-exact reuse gives the same floats


@pytest.mark.parametrize("dtype", PATHS)
def test_reused_prefixes_answer_exactly_as_cold_runs(make_provider: Callable[..., LocalProvider], tiny_model: Path,
                                                     dtype: str, run: Callable[..., Any]) -> None:  # fmt: skip
    warm, cold = make_provider(dtype), make_provider(dtype, entries=0)
    first, usage = ask(warm, run, tiny_model, LONG)
    assert usage.cached_prompt_tokens == 0 and usage.prompt_tokens > 2 * ALIGN
    chat = LONG + (ChatMessage("assistant", first), ChatMessage("user", "And then?"))
    flows: list[tuple[str, tuple[ChatMessage, ...], str]] = [
        ("again", LONG, ""),  # Regenerate
        ("more words", LONG[:1] + (ChatMessage("user", LONG[1].content + " Be brief."),), ""),  # Edit
        ("next turn", chat, ""),
        ("branch", LONG, first[: len(first) // 2]),  # the token lens's branch: the answer's given start
        ("back to the turn", chat, ""),  # the branch overwrote the live rows: the kept copy serves
    ]
    for name, messages, prefix in flows:
        text, usage = ask(warm, run, tiny_model, messages, prefix, logprobs=0)
        cold_text, cold_usage = ask(cold, run, tiny_model, messages, prefix, logprobs=0)
        assert (text, usage.prompt_tokens) == (cold_text, cold_usage.prompt_tokens), name
        assert LOGPROBS[-2] == LOGPROBS[-1] and LOGPROBS[-1], name  # the same bits, not just the same argmax
        assert cold_usage.cached_prompt_tokens == 0
        assert usage.cached_prompt_tokens >= 2 * ALIGN, name
        assert usage.cached_prompt_tokens % ALIGN == 0 or (name, dtype) == ("again", "int8"), name  # whole chunks
        if (name, dtype) == ("again", "int8"):  # the lean step keeps the last prefill's logits: nothing to run
            assert usage.cached_prompt_tokens == usage.prompt_tokens
        assert usage.cached_prompt_tokens >= usage.prompt_tokens - 2 * ALIGN or name in ("next turn", "branch"), name
    runtime = warm.worker.call(lambda: warm._runtime())
    assert runtime.prefix_cache.entries and runtime.prefix_cache.nbytes <= 512 * MB


@pytest.mark.parametrize("dtype", PATHS)
def test_other_adapters_never_reuse_each_others_cache(make_provider: Callable[..., LocalProvider], tiny_model: Path,
                                                      adapters: dict[str, Path], dtype: str,
                                                      run: Callable[..., Any]) -> None:  # fmt: skip
    warm, cold = make_provider(dtype), make_provider(dtype, entries=0)
    a, b = (AdapterSpec(str(adapters["a"]), 1.0),), (AdapterSpec(str(adapters["b"]), 0.5),)
    seen = []
    for name, specs in (("a", a), ("b", b), ("none", ()), ("a again", a), ("b scaled", (AdapterSpec(str(adapters["b"]), 1.0),))):
        text, usage = ask(warm, run, tiny_model, LONG, adapters=specs)
        cold_text, _ = ask(cold, run, tiny_model, LONG, adapters=specs)
        assert text == cold_text, name
        seen.append((name, text, usage.cached_prompt_tokens))
    cached = {name: n for name, _, n in seen}
    assert cached["a"] == cached["b"] == cached["none"] == cached["b scaled"] == 0  # a new key each
    assert cached["a again"] > 0  # a's rows were kept when b came
    assert len({text for _, text, _ in seen}) >= 3  # the adapters do change the answer


@pytest.mark.parametrize("dtype", PATHS)
def test_a_constrained_answer_reuses_the_prompt_and_keeps_its_grammar(make_provider: Callable[..., LocalProvider],
                                                                      tiny_model: Path, dtype: str,
                                                                      run: Callable[..., Any]) -> None:  # fmt: skip
    warm, cold = make_provider(dtype), make_provider(dtype, entries=0)
    texts = [ask(warm, run, tiny_model, LONG, schema=ResponseSchema(), max_tokens=40) for _ in range(2)]
    cold_text, _ = ask(cold, run, tiny_model, LONG, schema=ResponseSchema(), max_tokens=40)
    assert texts[0][0] == texts[1][0] == cold_text and isinstance(json.loads(cold_text), dict)
    assert texts[1][1].cached_prompt_tokens > 0


@pytest.mark.parametrize("model_type", sorted(ARCH_CONFIGS))
def test_reuse_on_each_architecture_answers_as_cold(make_provider: Callable[..., LocalProvider],
                                                    tmp_path_factory: pytest.TempPathFactory, model_type: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    run: Callable[..., Any]) -> None:  # fmt: skip
    """Qwen3 and Gemma 3 (sliding layers of 24 tokens, under a chunk), Phi-3 and Mistral (every
    layer a 40-token window) on the lean step: reused prompts answer as cold runs, bit for bit; the cold provider loads
    the quantized copy the warm one wrote (the cache file round trip)."""
    model = build_tiny_arch(tmp_path_factory.mktemp("reuse") / model_type, model_type)
    warm, cold = make_provider("int4"), make_provider("int4", entries=0)
    first, _ = ask(warm, run, model, LONG)
    assert warm.worker.call(lambda: warm._runtime().loaded.fast is not None)

    def no_quantizing(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("quantized again")

    monkeypatch.setattr(local_quant, "quantize_model", no_quantizing)  # the cold one loads the warm one's copy
    chat = LONG + (ChatMessage("assistant", first), ChatMessage("user", "And then?"))
    for name, messages, prefix in [("again", LONG, ""), ("next turn", chat, ""), ("branch", LONG, first[: len(first) // 2]),
                                   ("back to the turn", chat, "")]:  # fmt: skip
        text, usage = ask(warm, run, model, messages, prefix, logprobs=0)
        cold_text, cold_usage = ask(cold, run, model, messages, prefix, logprobs=0)
        assert (text, usage.prompt_tokens) == (cold_text, cold_usage.prompt_tokens), name
        assert LOGPROBS[-2] == LOGPROBS[-1] and LOGPROBS[-1], name
        assert usage.cached_prompt_tokens >= 2 * ALIGN and cold_usage.cached_prompt_tokens == 0, name
    assert cold.worker.call(lambda: cold._runtime().loaded.fast is not None)


@pytest.mark.slow
def test_bundled_model_answers_exactly_as_cold_with_reuse(make_provider: Callable[..., LocalProvider],
                                                          run: Callable[..., Any]) -> None:  # fmt: skip
    model = Path("smollm2")
    warm, cold = make_provider("auto"), make_provider("auto", entries=0)
    history = LONG
    for turn in range(3):
        text, usage = ask(warm, run, model, history, max_tokens=40)
        cold_text, _ = ask(cold, run, model, history, max_tokens=40)
        assert text == cold_text and text, turn
        assert (usage.cached_prompt_tokens > 0) == (turn > 0)
        history += (ChatMessage("assistant", text), ChatMessage("user", ("Go on.", "Why?", "Thanks!")[turn]))
    again, usage = ask(warm, run, model, LONG, max_tokens=40)
    assert usage.cached_prompt_tokens >= usage.prompt_tokens - ALIGN and again == ask(cold, run, model, LONG, max_tokens=40)[0]
