"""The idle warm-up: after an answer, its rows are prefilled exactly while the worker is idle."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.types import AdapterSpec, ChatMessage
from app.providers import local_generation
from app.providers.local_prefix_cache import ALIGN
from app.providers.local_warmup import FastWarmUp
from app.providers.transformers import LocalProvider
from tests.providers.test_local_prefix_cache import LOGPROBS, PATHS, ask

LONG = (ChatMessage("system", "You are a careful assistant. " * 4), ChatMessage("user", "Tell me about the storm."))
ANSWER = 3 * ALIGN  # tokens: several chunks of answer to warm up (the tiny model's context is 512)


def runtime(provider: LocalProvider) -> Any:
    return provider.worker.call(lambda: provider._runtime(), timeout=60)


@pytest.mark.parametrize("dtype", PATHS)
def test_after_the_warm_up_the_answer_rows_are_reused_and_answers_equal_cold(
        make_provider: Callable[..., LocalProvider], tiny_model: Path, dtype: str, run: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The next turn, a branch from the answer and the same prompt again, after the user read
    the answer (the worker idle): only the rows past the answer's last whole chunk and the new
    tokens are prefilled, and the answers are the cold ones bit for bit."""
    warm, cold = make_provider(dtype), make_provider(dtype, entries=0)
    first, usage = ask(warm, run, tiny_model, LONG, max_tokens=ANSWER)
    assert usage.completion_tokens == ANSWER
    assert warm.worker.wait_idle(60)
    assert runtime(warm).warmup is not None and runtime(warm).warmup.chunks >= 3  # the answer's chunks
    assert cold.worker.wait_idle(60) and runtime(cold).warmup is None  # reuse off: no warm-up
    seq = warm.last_stats.sequence  # the first prompt and answer: the rows warmed up
    start = usage.prompt_tokens - usage.prompt_tokens % ALIGN  # what reuse served before the warm-up
    # The tiny model's random text does not tokenize back to its own tokens (byte-level pieces), so
    # these requests give the token ids a real chat's text would: the answer's own, then more.
    tokens = {"next turn": [*seq, *seq[5:20]], "branch": seq[: len(seq) - ANSWER // 4]}
    real = local_generation.request_ids
    monkeypatch.setattr(local_generation, "request_ids", lambda tok, messages, *a: tokens.get(messages[-1].content)
                        or real(tok, messages, *a))  # fmt: skip
    flows = [LONG[-1], ChatMessage("user", "next turn"), ChatMessage("user", "branch")]  # Regenerate first
    for message in flows:
        name = message.content
        assert warm.worker.wait_idle(60)  # the user read the answer
        text, usage = ask(warm, run, tiny_model, (*LONG[:-1], message), logprobs=0)
        cold_text, cold_usage = ask(cold, run, tiny_model, (*LONG[:-1], message), logprobs=0)
        assert (text, usage.prompt_tokens) == (cold_text, cold_usage.prompt_tokens), name
        assert LOGPROBS[-2] == LOGPROBS[-1] and LOGPROBS[-1], name  # the same bits
        if name in tokens:  # every whole chunk of the answer came from the warm-up
            whole = min(len(seq), len(tokens[name]) - 1) // ALIGN * ALIGN
            assert usage.cached_prompt_tokens >= whole >= start + 2 * ALIGN, name
        elif dtype == "int8":  # the prompt's tail was set aside: nothing to prefill
            assert usage.cached_prompt_tokens == usage.prompt_tokens


def test_a_request_during_the_warm_up_waits_one_chunk_at_most(make_provider: Callable[..., LocalProvider],
                                                              tiny_model: Path, run: Callable[..., Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    warm = make_provider("int8")
    in_chunk, queued = threading.Event(), threading.Event()
    step = FastWarmUp.__call__

    def held(self: FastWarmUp) -> bool:  # the second chunk is in flight when the request comes
        if self.chunks == 1:
            in_chunk.set()
            assert queued.wait(30)
        return step(self)

    monkeypatch.setattr(FastWarmUp, "__call__", held)
    ask(warm, run, tiny_model, LONG, max_tokens=ANSWER)

    async def request() -> int:
        assert await asyncio.to_thread(in_chunk.wait, 30)
        job = warm.worker.submit(lambda: warm._runtime().warmup.chunks)
        queued.set()
        return int(await asyncio.wait_for(job, 30))

    assert run(request(), timeout=60) == 2  # the chunk in flight, then the request
    assert warm.worker.wait_idle(60)
    assert runtime(warm).warmup.chunks >= 3  # it went on afterwards


@pytest.mark.parametrize("dtype", PATHS)
def test_other_adapters_stop_the_warm_up_and_never_reuse_it(make_provider: Callable[..., LocalProvider],
                                                            tiny_model: Path, adapters: dict[str, Path], dtype: str,
                                                            run: Callable[..., Any]) -> None:  # fmt: skip
    warm, cold = make_provider(dtype), make_provider(dtype, entries=0)
    a, b = (AdapterSpec(str(adapters["a"]), 1.0),), (AdapterSpec(str(adapters["b"]), 0.5),)
    first, _ = ask(warm, run, tiny_model, LONG, adapters=a, max_tokens=ANSWER)
    stopped = warm.worker.call(lambda: (warm._runtime().apply_request_adapters(b), warm._runtime().warmup)[1], timeout=60)
    assert stopped is None  # the adapters changed: the warm-up of a's rows stopped
    assert warm.worker.wait_idle(60)
    chat = LONG + (ChatMessage("assistant", first), ChatMessage("user", "And then?"))
    text, usage = ask(warm, run, tiny_model, chat, adapters=b)
    assert usage.cached_prompt_tokens == 0 and text == ask(cold, run, tiny_model, chat, adapters=b)[0]
    assert warm.worker.wait_idle(60)
    text, usage = ask(warm, run, tiny_model, chat, adapters=a)
    assert text == ask(cold, run, tiny_model, chat, adapters=a)[0]
    assert usage.cached_prompt_tokens < usage.prompt_tokens - ANSWER // 2  # a's answer rows were never warmed
