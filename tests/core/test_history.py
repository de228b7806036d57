"""History store: conversations, messages, streaming updates, crash recovery, exports."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.errors import ConfigError, register_secret
from app.core.history import INTERRUPTED, SCHEMA_VERSION, HistoryStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(db_path)
    yield s
    s.close()


def test_create_get_and_defaults(store: HistoryStore) -> None:
    conv = store.create_conversation()
    assert len(conv.id) == 32 and int(conv.id, 16) >= 0
    assert (conv.title, conv.model, conv.system_prompt, conv.params) == ("New chat", None, "", {})
    assert store.get_conversation(conv.id) == conv
    assert store.get_conversation("missing") is None


def test_list_newest_first_and_limit(store: HistoryStore) -> None:
    a = store.create_conversation("A")
    b = store.create_conversation("B")
    c = store.create_conversation("C")
    assert [x.id for x in store.list_conversations()] == [c.id, b.id, a.id]
    store.add_message(a.id, "user", "bump")  # a new message makes it the newest
    assert [x.id for x in store.list_conversations()] == [a.id, c.id, b.id]
    assert len(store.list_conversations(limit=2)) == 2


def test_search_title_and_content_case_insensitive(store: HistoryStore) -> None:
    a = store.create_conversation("Trip to Zürich")
    b = store.create_conversation("Other")
    store.add_message(b.id, "user", "How do I use PEFT adapters?")
    store.create_conversation("Unrelated")
    assert [x.id for x in store.list_conversations("zÜRICH")] == [a.id]
    assert [x.id for x in store.list_conversations("peft")] == [b.id]
    assert store.list_conversations("nothing-matches") == []
    assert store.list_conversations("%") == []  # no LIKE wildcards
    assert len(store.list_conversations("  ")) == 3


def test_rename_update_delete(store: HistoryStore) -> None:
    conv = store.create_conversation("t", model="mock:echo", system_prompt="be brief", params={"seed": 1})
    store.rename(conv.id, "Renamed")
    store.update_conversation(conv.id, params={"seed": 2, "temperature": 0.1})
    got = store.get_conversation(conv.id)
    assert got is not None
    assert (got.title, got.model, got.system_prompt, got.params) == ("Renamed", "mock:echo", "be brief", {"seed": 2, "temperature": 0.1})
    store.update_conversation(conv.id, model=None, system_prompt="")
    got = store.get_conversation(conv.id)
    assert got is not None and (got.model, got.system_prompt, got.params["seed"]) == (None, "", 2)
    store.add_message(conv.id, "user", "hi")
    store.delete(conv.id)
    assert store.get_conversation(conv.id) is None
    assert store.messages(conv.id) == []  # cascade


def test_messages_roundtrip_with_all_fields(store: HistoryStore) -> None:
    conv = store.create_conversation()
    user = store.add_message(conv.id, "user", "Hello")
    reply = store.add_message(
        conv.id,
        "assistant",
        "",
        model="local:smollm2",
        endpoint=None,
        adapter="/adapters/pirate",
        adapter_sha256="ab" * 32,
        params={"seed": 42, "temperature": 0.0},
        status="streaming",
    )
    assert reply.id > user.id
    store.update_message(reply.id, content="Ahoy")
    store.update_message(reply.id, content="Ahoy there", status="complete", meta={"prompt_tokens": 5, "cost_usd": "0"})
    msgs = store.messages(conv.id)
    assert [m.content for m in msgs] == ["Hello", "Ahoy there"]
    m = msgs[1]
    assert (m.model, m.adapter, m.adapter_sha256, m.params, m.status, m.error, m.meta) == (
        "local:smollm2", "/adapters/pirate", "ab" * 32, {"seed": 42, "temperature": 0.0}, "complete", None,
        {"prompt_tokens": 5, "cost_usd": "0"},
    )
    assert msgs[0] == user
    with pytest.raises(ValueError):
        store.update_message(reply.id, status="bogus")  # type: ignore[arg-type]


def test_delete_messages_from(store: HistoryStore) -> None:
    conv = store.create_conversation()
    other = store.create_conversation()
    ids = [store.add_message(conv.id, r, t).id for r, t in [("user", "1"), ("assistant", "2"), ("user", "3"), ("assistant", "4")]]
    keep = store.add_message(other.id, "user", "other")
    store.delete_messages_from(conv.id, ids[2])
    assert [m.content for m in store.messages(conv.id)] == ["1", "2"]
    assert store.messages(other.id) == [keep]


def test_survives_restart_and_recovers_streaming_messages(db_path: Path) -> None:
    s = HistoryStore(db_path)
    conv = s.create_conversation("Persisted", system_prompt="sys")
    s.add_message(conv.id, "user", "question")
    reply = s.add_message(conv.id, "assistant", "", status="streaming")
    s.update_message(reply.id, content="partial ans")
    cancelled = s.add_message(conv.id, "assistant", "stopped", status="cancelled")
    s.close()  # as if the app died mid-stream: status is still 'streaming'

    s2 = HistoryStore(db_path)
    try:
        got = s2.get_conversation(conv.id)
        assert got is not None and (got.title, got.system_prompt, got.created_at) == ("Persisted", "sys", conv.created_at)
        assert got.updated_at >= conv.updated_at
        msgs = s2.messages(conv.id)
        assert [m.content for m in msgs] == ["question", "partial ans", "stopped"]
        assert (msgs[1].status, msgs[1].error) == ("error", INTERRUPTED)
        assert (msgs[2].status, msgs[2].error) == ("cancelled", None)
        assert msgs[2].id == cancelled.id
    finally:
        s2.close()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_export_json_and_markdown(store: HistoryStore) -> None:
    secret = "my-registered-secret-7788"
    register_secret(secret)
    conv = store.create_conversation("Export me", model="openai:gpt-4o-mini", system_prompt="You are terse.", params={"seed": 7})
    store.add_message(conv.id, "user", f"my key is {secret} and sk-abcdefghijklmnopqrstu")
    store.add_message(
        conv.id, "assistant", "Short answer.", model="openai:gpt-4o-mini", endpoint="OpenAI",
        adapter="pirate", adapter_sha256="cd" * 32, params={"seed": 7, "temperature": 0.2},
        meta={"prompt_tokens": 12, "completion_tokens": 3, "cost_usd": "0.0000036", "ttft_s": 0.31},
    )
    store.add_message(conv.id, "assistant", "cut", status="error", error="Unreachable")
    data = store.export_json(conv.id)
    text = json.dumps(data)
    assert secret not in text and "sk-abcdefghijklmnopqrstu" not in text
    assert data["conversation"]["system_prompt"] == "You are terse."
    reply = data["messages"][1]
    assert reply["params"]["seed"] == 7 and reply["adapter_sha256"] == "cd" * 32
    assert reply["meta"]["cost_usd"] == "0.0000036" and reply["endpoint"] == "OpenAI"
    md = store.export_markdown(conv.id)
    assert md.startswith("# Export me\n")
    for needle in ("You are terse.", "Short answer.", "openai:gpt-4o-mini", "cd" * 32, '"seed": 7',
                   "cost_usd 0.0000036", "status: error (Unreachable)"):
        assert needle in md
    assert secret not in md
    with pytest.raises(ConfigError):
        store.export_json("missing")


def test_damaged_file_is_moved_aside_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    junk = b"not sqlite at all" * 200
    path.write_bytes(junk)
    store = HistoryStore(path)
    try:
        assert store.list_conversations() == []
        store.create_conversation("fresh")
        [aside] = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
        assert aside.read_bytes() == junk
        assert "kept for recovery" in store.warnings[0]
    finally:
        store.close()


def test_newer_schema_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="newer version"):
        HistoryStore(path)


def test_repeated_streaming_updates_keep_the_latest_text(store: HistoryStore) -> None:
    """Many updates of a growing reply (as while streaming) leave exactly the last text."""
    conv = store.create_conversation()
    msg = store.add_message(conv.id, "assistant", "", status="streaming")
    text = ""
    for i in range(300):
        text += f" w{i}"
        store.update_message(msg.id, content=text)
    assert store.messages(conv.id)[0].content == text
