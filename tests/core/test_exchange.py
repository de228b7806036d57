"""One exchange, the same for the window and the CLI: the seed in force, the context of a
branch, what an answer records and the state restored from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.exchange import (
    SEED_LIMIT,
    adapters_from_json,
    adapters_json,
    answer_state,
    choose_seed,
    context_messages,
    conversation_state,
    remember_state,
    start_answer,
    title_for,
)
from app.core.history import HistoryStore
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path / "h.sqlite3")
    yield s
    s.close()


def test_a_seed_is_always_in_force() -> None:
    assert choose_seed(GenerationParams(seed=42)).seed == 42
    seeds = {choose_seed(GenerationParams()).seed for _ in range(20)}
    assert all(isinstance(s, int) and 0 <= s < SEED_LIMIT for s in seeds) and len(seeds) > 1
    assert choose_seed(GenerationParams(temperature=1.2)).validated().temperature == 1.2


def test_adapters_round_trip_and_bad_entries_are_skipped() -> None:
    specs = (AdapterSpec("/a", 0.5, "a", "ff"), AdapterSpec("/b"))
    assert adapters_from_json(adapters_json(specs)) == specs
    assert adapters_from_json([{"path": ""}, {"scale": 1}, "x", {"path": "/c", "scale": "bad"}]) == (AdapterSpec("/c"),)
    assert adapters_from_json(None) == ()


def test_context_is_the_path_only_with_the_system_prompt_first(store: HistoryStore) -> None:
    conv = store.create_conversation()
    q = store.add_message(conv.id, "user", "q")
    store.add_message(conv.id, "assistant", "old answer")
    a2 = store.add_message(conv.id, "assistant", "partial", parent_id=q.id, status="cancelled")
    path = store.path_to(conv.id, a2.id)
    assert context_messages(path, "sys") == [ChatMessage("system", "sys"), ChatMessage("user", "q"),
                                             ChatMessage("assistant", "partial")]  # fmt: skip
    assert context_messages(path, "  ") == [ChatMessage("user", "q"), ChatMessage("assistant", "partial")]
    assert title_for("  a  long\n title  ") == "a long title" and title_for(" ") == "New conversation"


def test_an_answer_records_what_it_was_made_with_and_gives_it_back(store: HistoryStore) -> None:
    conv = store.create_conversation()
    q = store.add_message(conv.id, "user", "q")
    user_params = GenerationParams(temperature=0.9)
    seeded = choose_seed(user_params)
    adapters = (AdapterSpec("/ad/x", 0.5, "x", "cd" * 32),)
    request = GenerationRequest(ModelRef("local", "tiny"), (), seeded, None, adapters)
    row = start_answer(store, conv.id, q.id, request, "Be brief.", seed_chosen=True)
    remember_state(store, conv.id, request, "Be brief.", user_params)
    assert (row.status, row.parent_id, row.system_prompt, row.seed) == ("streaming", q.id, "Be brief.", seeded.seed)
    assert (row.adapter, row.adapter_sha256) == ("x:0.5", "cd" * 32)
    state = answer_state(store.get_message(row.id))  # type: ignore[arg-type]
    assert (state.model, state.adapters, state.system_prompt) == ("local:tiny", adapters, "Be brief.")
    assert state.params["seed"] is None and state.params["temperature"] == 0.9  # the box shows "random" again
    saved = conversation_state(store.require(conv.id))
    assert (saved.model, saved.adapters, saved.params["seed"], saved.system_prompt) == (
        "local:tiny", adapters, None, "Be brief.")
    fixed = start_answer(store, conv.id, q.id, request.__class__(request.model, (), GenerationParams(seed=5)), "")
    assert answer_state(fixed).params["seed"] == 5  # a seed the user set stays


def test_schema_1_answers_leave_the_adapters_alone(store: HistoryStore) -> None:
    conv = store.create_conversation()
    old = store.add_message(conv.id, "assistant", "a", model="local:tiny", adapter="pirate:1")  # no paths kept
    assert answer_state(old).adapters is None
    plain = store.add_message(conv.id, "assistant", "b", model="local:tiny")
    assert answer_state(plain).adapters == ()
