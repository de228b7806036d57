"""Exports of a conversation tree: JSON holds the whole tree, Markdown the active branch and the
names of the others, the figures line as a sentence, never a key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.errors import register_secret
from app.core.history import HistoryStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path / "h.sqlite3")
    yield s
    s.close()


FIGS = {"prompt_tokens": 31, "completion_tokens": 8, "cost_usd": "0.000012", "ttft_s": 0.21, "tokens_per_s": 30.5}
ADAPTERS = [{"path": "/ad/pirate", "scale": 0.8, "name": "pirate", "sha256": "ab" * 32}]


def _tree(store: HistoryStore) -> tuple[str, dict[str, int]]:
    conv = store.create_conversation("Branches", model="local:tiny", system_prompt="Be brief.",
                                     params={"temperature": 0.7, "seed": None})
    q = store.add_message(conv.id, "user", "Tell me a joke")
    a1 = store.add_message(conv.id, "assistant", "First joke", model="local:tiny", adapter="pirate:0.8",
                           adapter_sha256="ab" * 32, params={"temperature": 0.7, "seed": 11},
                           meta={**FIGS, "adapters": ADAPTERS}, system_prompt="Be brief.")
    a2 = store.add_message(conv.id, "assistant", "Second joke", parent_id=q.id, model="local:tiny",
                           params={"temperature": 0.7, "seed": 12}, meta=FIGS, system_prompt="Be funny.")
    q2 = store.add_message(conv.id, "user", "Another one", parent_id=a1.id)
    a3 = store.add_message(conv.id, "assistant", "Third joke", model="local:tiny", params={"seed": 13})
    store.set_active_leaf(conv.id, a2.id)
    return conv.id, {"q": q.id, "a1": a1.id, "a2": a2.id, "q2": q2.id, "a3": a3.id}


def test_json_holds_the_whole_tree(store: HistoryStore) -> None:
    cid, ids = _tree(store)
    data = store.export_json(cid)
    assert (data["format"], data["version"]) == ("llm-playground.conversation", 2)
    assert data["conversation"]["active_leaf_id"] == ids["a2"] and data["active_path"] == [ids["q"], ids["a2"]]
    by_id = {m["id"]: m for m in data["messages"]}
    assert set(by_id) == set(ids.values())
    assert by_id[ids["q2"]]["parent_id"] == ids["a1"] and by_id[ids["q"]]["parent_id"] is None
    a1 = by_id[ids["a1"]]
    assert (a1["model"], a1["adapter_sha256"], a1["seed"], a1["system_prompt"]) == ("local:tiny", "ab" * 32, 11,
                                                                                      "Be brief.")
    assert a1["adapters"] == ADAPTERS and a1["params"]["temperature"] == 0.7
    assert a1["figures"]["cost_usd"] == "0.000012" and a1["sibling"] == [1, 2]
    assert a1["figures_text"] == "31 in / 8 out tokens \u00b7 $0.000012 \u00b7 first token 0.21 s \u00b7 30.5 tok/s"
    assert by_id[ids["a2"]]["system_prompt"] == "Be funny."
    json.dumps(data)  # JSON-ready
    assert "draft" not in data["conversation"]


def test_markdown_holds_the_active_branch_and_names_the_others(store: HistoryStore) -> None:
    cid, ids = _tree(store)
    md = store.export_markdown(cid)
    body, _, others = md.partition("## Other branches")
    assert "Second joke" in body and "First joke" not in body and "Third joke" not in body
    assert "## Assistant (answer 2 of 2)" in body
    assert "figures: 31 in / 8 out tokens \u00b7 $0.000012 \u00b7 first token 0.21 s \u00b7 30.5 tok/s" in body
    assert "system prompt: \u201cBe funny.\u201d" in body  # it differed from the conversation's
    assert "{" not in body.split("figures:")[1].splitlines()[0]  # a sentence, not a dict
    [line] = [x for x in others.splitlines() if x.startswith("- ")]
    assert f"from message {ids['a1']}" in line and "1 of 2" in line and "3 messages" in line
    assert f"ends with message {ids['a3']}" in line and "Third joke" in line


def test_exports_never_carry_a_key(store: HistoryStore) -> None:
    secret = "export-tree-secret-99887766"
    register_secret(secret)
    conv = store.create_conversation(f"title {secret}", endpoint="http://u:sk-abcdefghijklmnopqrstuvwx@h/v1")
    store.add_message(conv.id, "user", f"my key {secret} and sk-abcdefghijklmnopqrstu")
    store.add_message(conv.id, "assistant", "ok", meta={"note": secret})
    everything = json.dumps(store.export_json(conv.id)) + store.export_markdown(conv.id)
    assert secret not in everything and "sk-abcdefghijklmnopqrstu" not in everything
