"""History store: conversations, messages, streaming updates, crash recovery, exports."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.core.errors import ConfigError, StorageBusy, register_secret
from app.core.history import INTERRUPTED, SCHEMA_VERSION, HistoryStore
from tests.support.history_writer import HistoryWriter
from tests.support.sqlite_lock import LockHolder


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


def test_messages_chain_by_default_and_branch_under_a_parent(store: HistoryStore) -> None:
    conv = store.create_conversation()
    other = store.create_conversation()
    ids = [store.add_message(conv.id, r, t).id for r, t in [("user", "1"), ("assistant", "2"), ("user", "3"), ("assistant", "4")]]
    keep = store.add_message(other.id, "user", "other")
    assert [m.parent_id for m in store.messages(conv.id)] == [None, *ids[:3]]
    sibling = store.add_message(conv.id, "user", "3, edited", parent_id=ids[1])
    assert store.get_conversation(conv.id).active_leaf_id == sibling.id  # type: ignore[union-attr]
    assert [m.content for m in store.path_to(conv.id)] == ["1", "2", "3, edited"]
    assert [m.content for m in store.path_to(conv.id, ids[3])] == ["1", "2", "3", "4"]
    assert [m.content for m in store.messages(conv.id)] == ["1", "2", "3", "4", "3, edited"]  # nothing dropped
    store.set_active_leaf(conv.id, ids[3])
    assert store.add_message(conv.id, "user", "5").parent_id == ids[3]  # appends to the active branch
    assert store.messages(other.id) == [keep] and keep.parent_id is None
    with pytest.raises(ConfigError, match="has no message"):
        store.add_message(conv.id, "user", "x", parent_id=keep.id)  # another conversation's message
    with pytest.raises(ConfigError, match="has no message"):
        store.set_active_leaf(conv.id, 10_000)


def test_fork_copies_the_path_with_its_figures(store: HistoryStore) -> None:
    conv = store.create_conversation("Trip", model="mock:echo", system_prompt="terse", params={"seed": 3},
                                     endpoint="http://user:sk-secretsecretsecret1234@host/v1",
                                     adapters=[{"path": "/a", "scale": 0.5, "name": "a", "sha256": "ff"}])
    q = store.add_message(conv.id, "user", "q")
    a = store.add_message(conv.id, "assistant", "a", model="mock:echo", params={"seed": 3}, adapter="a:0.5",
                          adapter_sha256="ff", meta={"completion_tokens": 1, "cost_usd": "0"}, system_prompt="terse")
    store.add_message(conv.id, "user", "later")
    fork = store.fork(conv.id, a.id)
    assert fork.title == "Fork of Trip" and fork.id != conv.id
    assert (fork.model, fork.system_prompt, fork.params, fork.adapters) == ("mock:echo", "terse", {"seed": 3},
                                                                            conv.adapters)
    assert fork.endpoint == "http://host/v1"  # no credentials, ever
    copied = store.path_to(fork.id)
    assert [(m.role, m.content) for m in copied] == [("user", "q"), ("assistant", "a")]
    assert copied[1].parent_id == copied[0].id and fork.active_leaf_id == copied[1].id
    assert (copied[1].meta, copied[1].params, copied[1].adapter_sha256, copied[1].system_prompt) == (
        a.meta, a.params, "ff", "terse")
    assert copied[0].created_at == q.created_at and copied[0].id != q.id
    assert fork.meta["forked_from"] == {"conversation_id": conv.id, "message_id": a.id}
    assert len(store.messages(conv.id)) == 3  # the source is untouched
    with pytest.raises(ConfigError, match="no conversation"):
        store.fork("missing", a.id)


def test_the_draft_belongs_to_its_conversation_and_does_not_reorder(store: HistoryStore) -> None:
    a = store.create_conversation("A")
    b = store.create_conversation("B")
    store.set_draft(a.id, "half a thought")
    assert store.get_conversation(a.id).draft == "half a thought"  # type: ignore[union-attr]
    assert store.get_conversation(b.id).draft == ""  # type: ignore[union-attr]
    assert [c.id for c in store.list_conversations()] == [b.id, a.id]
    assert [(c.id, c.message_count) for c in store.list_conversations()] == [(b.id, 0), (a.id, 0)]


def test_survives_restart_and_recovers_streaming_messages(db_path: Path) -> None:
    s = HistoryStore(db_path)
    conv = s.create_conversation("Persisted", system_prompt="sys")
    s.add_message(conv.id, "user", "question")
    s.close()
    reply_id = HistoryWriter(db_path, conv.id, "partial ans").crash()  # the app died mid-stream
    s = HistoryStore(db_path)
    cancelled = s.add_message(conv.id, "assistant", "stopped", status="cancelled")
    s.close()

    s2 = HistoryStore(db_path)
    try:
        got = s2.get_conversation(conv.id)
        assert got is not None and (got.title, got.system_prompt, got.created_at) == ("Persisted", "sys", conv.created_at)
        assert got.updated_at >= conv.updated_at
        msgs = s2.messages(conv.id)
        assert [m.content for m in msgs] == ["question", "partial ans", "stopped"]
        assert (msgs[1].id, msgs[1].status, msgs[1].error) == (reply_id, "error", INTERRUPTED)
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
                   "figures: 12 in / 3 out tokens \u00b7 $0.000004 \u00b7 first token 0.31 s",
                   "status: error (Unreachable)"):
        assert needle in md
    assert "cost_usd" not in md  # a sentence, not a dict
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


# -- busy is never damage; damage is salvaged ------------------------------------------------


def make_history(path: Path, conversations: int = 300) -> list[str]:
    store = HistoryStore(path)
    try:
        ids = []
        for i in range(conversations):
            conv = store.create_conversation(f"chat {i}")
            store.add_message(conv.id, "user", f"question {i}")
            ids.append(conv.id)
        return ids
    finally:
        store.close()


def asides(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".corrupt-" in p.name]


def test_300_conversations_are_never_moved_aside_when_locked(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PLAYGROUND_DB_BUSY_TIMEOUT", "0.3")
    make_history(db_path)
    with LockHolder(db_path):  # another instance writing: reading goes on
        store = HistoryStore(db_path)
        try:
            assert len(store.list_conversations()) == 300 and store.warnings == []
        finally:
            store.close()
    with LockHolder(db_path, exclusive=True):  # another program locking it all: busy
        with pytest.raises(StorageBusy, match="busy: another instance holds the history database"):
            HistoryStore(db_path)
    assert asides(db_path.parent) == []
    store = HistoryStore(db_path)
    try:
        assert len(store.list_conversations()) == 300
    finally:
        store.close()


def test_interrupted_answers_wait_for_a_free_database(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PLAYGROUND_DB_BUSY_TIMEOUT", "0.2")
    store = HistoryStore(db_path)
    conv = store.create_conversation()
    store.close()
    HistoryWriter(db_path, conv.id, "half an ans").crash()
    with LockHolder(db_path):
        store = HistoryStore(db_path)  # cannot mark it now: opens anyway, marks it next time
        try:
            assert store.messages(conv.id)[0].status == "streaming"
        finally:
            store.close()
    store = HistoryStore(db_path)
    try:
        [again] = store.messages(conv.id)
        assert (again.status, again.error, again.content) == ("error", INTERRUPTED, "half an ans")
    finally:
        store.close()


def test_salvage_keeps_messages_whose_conversation_row_was_lost(db_path: Path) -> None:
    store = HistoryStore(db_path)
    convs = [store.create_conversation(f"chat {i}") for i in range(3)]
    for conv in convs:
        for j in range(30):
            store.add_message(conv.id, "user", f"{conv.title} message {j} " + "words " * 40)
    store.close()
    db = sqlite3.connect(db_path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'conversations'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(db_path.read_bytes())
    data[(root - 1) * page : root * page] = b"\xff" * page  # the conversations' only page
    db_path.write_bytes(bytes(data))
    store = HistoryStore(db_path)
    try:
        [warning] = store.warnings
        assert "kept for recovery" in warning and "90 rows" in warning
        listed = store.list_conversations()
        assert {c.id for c in listed} == {c.id for c in convs}
        assert all(c.title == "Recovered conversation" for c in listed)
        assert [len(store.messages(c.id)) for c in convs] == [30, 30, 30]
        assert store.messages(convs[1].id)[5].content.startswith("chat 1 message 5 ")
    finally:
        store.close()


def test_another_live_instance_keeps_its_streaming_answer(db_path: Path) -> None:
    store = HistoryStore(db_path)
    conv = store.create_conversation()
    store.close()
    with HistoryWriter(db_path, conv.id, "still coming") as writer:
        opened = HistoryStore(db_path)  # this instance starts while the other one streams
        try:
            [msg] = opened.messages(conv.id)
            assert (msg.id, msg.status, msg.error) == (writer.message_id, "streaming", None)
        finally:
            opened.close()
    reopened = HistoryStore(db_path)  # that instance ended without finishing its answer
    try:
        [msg] = reopened.messages(conv.id)
        assert (msg.status, msg.error, msg.content) == ("error", INTERRUPTED, "still coming")
    finally:
        reopened.close()


def test_this_process_does_not_interrupt_its_own_streaming_answer(db_path: Path) -> None:
    first = HistoryStore(db_path)
    conv = first.create_conversation()
    msg = first.add_message(conv.id, "assistant", "coming", status="streaming")
    second = HistoryStore(db_path)  # e.g. the CLI's store beside the window's, in one process
    try:
        assert second.get_message(msg.id).status == "streaming"  # type: ignore[union-attr]
    finally:
        second.close()
        first.close()
