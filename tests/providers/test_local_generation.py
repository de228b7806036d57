"""Generation with transformers on a tiny Llama (app/providers/local_generation.py): the
streamer's incremental decoding and stop strings, the cancel flag, the context check and the
finish reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ContextTooLong
from app.core.types import ChatMessage, GenerationParams
from app.providers.local_generation import (
    CancelFlag,
    GenStats,
    TokenStreamer,
    finish_reason,
    generate,
    prepare,
)

MSGS = (ChatMessage("user", "hello there"),)


@pytest.fixture(scope="module")
def tiny(tiny_model: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model)


def test_streamer_decodes_multibyte_characters_whole(local_ctx: Any, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from app.providers.local_generation import GenStats, TokenStreamer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = "caf\u00e9 \u65e5\u672c\u8a9e \U0001f600 STOP END"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # multi-byte characters span several tokens
    got: list[str] = []
    streamer = TokenStreamer(tok, ("END",), got.append, GenStats())
    import torch

    streamer.put(torch.tensor([[1, 2]]))  # the prompt: skipped
    for t in ids:
        streamer.put(torch.tensor([t]))
    streamer.end()
    assert "".join(got) == text[: text.index("END")]
    assert all("\ufffd" not in g for g in got)
    assert streamer.stopped and streamer.stats.tokens == len(ids)


def test_text_that_may_start_a_stop_string_is_held_back_until_it_cannot(tiny: tuple[Any, Any]) -> None:
    import torch

    _, tok = tiny
    got: list[str] = []
    streamer = TokenStreamer(tok, ("STOP",), got.append, GenStats())
    streamer.put(torch.tensor([[1]]))
    for piece in ("go ", "ST", "O", "ne", " ST"):  # "STO" might start STOP: held back, then sent
        for t in tok(piece, add_special_tokens=False)["input_ids"]:
            streamer.put(torch.tensor([t]))
        if piece == "O":
            assert "".join(got) == "go "
    streamer.end()
    assert "".join(got) == "go STOne ST" and not streamer.stopped


def test_the_cancel_flag_remembers_the_tokens_at_cancel() -> None:
    stats = GenStats(tokens=7)
    flag = CancelFlag(stats)
    assert not flag.is_set()
    flag.set()
    stats.tokens = 9
    flag.set()  # a second set keeps the first count
    assert flag.is_set() and stats.tokens_at_cancel == 7


def test_prepare_checks_the_context_and_caps_the_new_tokens(tiny: tuple[Any, Any]) -> None:
    _, tok = tiny
    flag = CancelFlag(GenStats())
    job = prepare(tok, MSGS, GenerationParams(max_tokens=1000), lambda *a: None, flag, 64)
    assert flag.stats.prompt_tokens == len(job.ids) > 0
    assert job.max_new == 64 - len(job.ids)
    assert prepare(tok, MSGS, GenerationParams(), lambda *a: None, flag, None).max_new == 512
    with pytest.raises(ContextTooLong, match=f"The prompt has {len(job.ids)} tokens; this model's context is 4 tokens"):
        prepare(tok, MSGS, GenerationParams(), lambda *a: None, flag, 4)


def test_generate_streams_what_it_returns_and_says_why_it_ended(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    got: list[str] = []
    flag = CancelFlag(GenStats())
    prompt, completion, reason = generate(model, tok, MSGS, GenerationParams(temperature=0.0, max_tokens=6),
                                          got.append, flag, 2048)  # fmt: skip
    assert (completion, reason) == (6, "length") and prompt == flag.stats.prompt_tokens
    assert flag.stats.tokens == 6 and "".join(got)
    again: list[str] = []
    generate(model, tok, MSGS, GenerationParams(temperature=0.0, max_tokens=6), again.append, CancelFlag(GenStats()), 2048)
    assert again == got  # greedy: the same text


def test_a_flag_set_before_the_first_token_cancels_at_once(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    flag = CancelFlag(GenStats())
    flag.set()
    _, completion, reason = generate(model, tok, MSGS, GenerationParams(max_tokens=50), lambda *a: None, flag, 2048)
    assert reason == "cancelled" and completion <= 1


def test_finish_reasons() -> None:
    class Stopped:
        stopped = True

    class Running:
        stopped = False

    flag = CancelFlag(GenStats())
    assert finish_reason(Stopped(), flag, [1, 2], {9}, 2) == "stop"  # type: ignore[arg-type]
    assert finish_reason(Running(), flag, [1, 2], {9}, 2) == "length"  # type: ignore[arg-type]
    assert finish_reason(Running(), flag, [1, 9], {9}, 2) == "stop"  # type: ignore[arg-type]  # the end of text
    assert finish_reason(Running(), flag, [1], {9}, 2) == "stop"  # type: ignore[arg-type]
    flag.set()
    assert finish_reason(Running(), flag, [1], {9}, 2) == "cancelled"  # type: ignore[arg-type]
