"""Tokens kept compactly (app/core/token_tape.py): the tape gives back exactly the tokens it
was given, and a long one holds no per-token objects for the garbage collector."""

from __future__ import annotations

import gc
import math

import pytest

from app.core.events import TokenChoice, TokenLogprob
from app.core.lens import mean_logprob, stored_lens, tokens_to_json
from app.core.token_tape import TokenTape, logprobs_of


def _token(i: int) -> TokenLogprob:
    top = tuple(TokenChoice(f" t{i}-{k}", math.log(0.5 / (k + 1))) for k in range(i % 4))
    return TokenLogprob(f" t{i}", math.log(0.5 + (i % 5) / 10), top, None if i % 3 else i)


def test_the_tape_gives_back_the_tokens_it_was_given() -> None:
    tokens = [_token(i) for i in range(50)] + [TokenLogprob("", -math.inf), TokenLogprob("x", math.nan)]
    tape = TokenTape(tokens[:10])
    tape.extend(tokens[10:])
    assert len(tape) == len(tokens) and bool(tape) and not TokenTape()
    assert list(tape[:50]) == tokens[:50] and tape[3:9:2] == tokens[3:9:2]
    assert tape[0] == tokens[0] and tape[-3] == tokens[-3] and tape[7].token_id is None and tape[9].token_id == 9
    assert tape[-2].logprob == -math.inf and math.isnan(tape[-1].logprob)
    assert tape.text(12) == " t12" and tape.logprob(12) == tokens[12].logprob
    assert list(logprobs_of(tape))[:50] == [t.logprob for t in tokens[:50]]
    with pytest.raises(IndexError):
        tape[len(tokens)]


def test_the_lens_arithmetic_reads_a_tape_as_it_reads_a_list() -> None:
    tokens = [_token(i) for i in range(2000)]
    tape = TokenTape(tokens)
    assert mean_logprob(tape) == pytest.approx(mean_logprob(tokens))
    assert stored_lens([], tape) == stored_lens([], tokens)


def test_a_long_tape_leaves_nothing_per_token_for_the_collector() -> None:
    gc.collect()
    before = len(gc.get_objects())
    tape = TokenTape(_token(i) for i in range(20000))
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # a list of tokens would leave ~50k objects
    assert len(tape) == 20000


def test_the_tape_makes_the_stored_form_of_its_tokens_without_building_them() -> None:
    tokens = [_token(i) for i in range(40)] + [TokenLogprob("", -math.inf, (), 0), TokenLogprob("\u00e9\n", -0.5)]
    tape = TokenTape(tokens)
    assert tape.to_json() == [t.to_json() for t in tokens]  # ids, empty alternatives and odd texts too
    assert tape.to_json(7) == [t.to_json() for t in tokens[:7]] and tape.to_json(0) == []
    assert tape.to_json(10_000) == tape.to_json()
    assert tokens_to_json(tape, 5) == tokens_to_json(tokens, 5) == tokens_to_json(tokens[:5])
