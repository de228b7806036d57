"""The history's upgrade from schema 1 (linear conversations) to schema 2 (a message tree), on a
file written by the schema-1 statements: in place, in one transaction, the original copied
aside first; a process killed half-way leaves a file the app still opens with nothing lost."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.history import INTERRUPTED, SCHEMA_VERSION, HistoryStore
from tests.support.history_v1 import FIGURES, SHA, open_v1, write_v1_history


@pytest.fixture
def v1_path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return [tuple(r) for r in db.execute(sql)]
    finally:
        db.close()


def _copies(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".schema1-" in p.name and not p.name.endswith(("-wal", "-shm")))


V1_MESSAGES = ("SELECT id, conversation_id, role, content, created_at, model, endpoint, adapter, adapter_sha256, "
               "params, status, error, meta FROM messages ORDER BY id")  # fmt: skip


def test_a_schema_1_history_upgrades_with_every_message_kept_and_chained(v1_path: Path) -> None:
    convs = write_v1_history(v1_path)
    before = _rows(v1_path, V1_MESSAGES)
    titles = _rows(v1_path, "SELECT id, title, created_at, model, system_prompt, params FROM conversations ORDER BY id")
    store = HistoryStore(v1_path)
    try:
        assert store.warnings == []
        assert _rows(v1_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        after = _rows(v1_path, V1_MESSAGES)
        streaming = convs[1].message_ids[3]
        # every column of every row as it was; only the answer left streaming by the old app is now an error
        assert [r for r in after if r[0] != streaming] == [r for r in before if r[0] != streaming]
        got = store.get_message(streaming)
        assert got is not None and (got.content, got.status, got.error) == ("one two three", "error", INTERRUPTED)
        assert _rows(v1_path, "SELECT id, title, created_at, model, system_prompt, params FROM conversations "
                              "ORDER BY id") == titles  # fmt: skip
        for conv in convs:
            msgs = store.messages(conv.id)
            assert [m.id for m in msgs] == conv.message_ids
            assert [m.parent_id for m in msgs] == [None, *conv.message_ids][:len(conv.message_ids)]  # a chain
            assert store.get_conversation(conv.id).active_leaf_id == (conv.message_ids or [None])[-1]  # type: ignore[union-attr]
            assert [m.id for m in store.path_to(conv.id)] == conv.message_ids
        pirate = store.messages(convs[0].id)
        assert (pirate[1].adapter, pirate[1].adapter_sha256, pirate[1].params["seed"]) == ("pirate:0.8", SHA, 7)
        assert pirate[1].meta["cost_usd"] == FIGURES["cost_usd"] and pirate[1].meta["ttft_s"] == 0.21
        assert (pirate[3].status, pirate[3].error) == ("error", "The connection was cut mid-way.")
        assert store.messages(convs[1].id)[1].status == "cancelled"
        # the upgraded tree works like a new one: a sibling answer keeps the old one
        sibling = store.add_message(convs[0].id, "assistant", "Buried deep", parent_id=convs[0].message_ids[2])
        assert store.tree(convs[0].id).position(sibling.id) == (2, 2)
    finally:
        store.close()
    [copy] = _copies(v1_path.parent)
    assert _rows(copy, "PRAGMA user_version") == [(1,)]
    assert _rows(copy, V1_MESSAGES) == before  # the original, as it was before the upgrade


def test_an_upgraded_file_is_not_upgraded_or_copied_again(v1_path: Path) -> None:
    write_v1_history(v1_path)
    HistoryStore(v1_path).close()
    HistoryStore(v1_path).close()
    assert len(_copies(v1_path.parent)) == 1


KILL_HALF_WAY = """
import os, sys
from pathlib import Path
from app.core import history_schema
from app.core.history import HistoryStore

real = history_schema.chain_messages
def chain_then_die(db):
    history_schema.add_columns(db)   # the columns are added (uncommitted)...
    db.execute("UPDATE messages SET parent_id = id - 1")   # ...and the chain is half made
    os._exit(9)                       # killed before the commit
history_schema.chain_messages = chain_then_die
HistoryStore(Path(sys.argv[1]))
"""


def test_an_upgrade_killed_half_way_leaves_schema_1_and_the_next_start_upgrades(v1_path: Path) -> None:
    convs = write_v1_history(v1_path)
    before = _rows(v1_path, V1_MESSAGES)
    proc = subprocess.run([sys.executable, "-c", KILL_HALF_WAY, str(v1_path)], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert proc.returncode == 9, proc.stderr
    assert _rows(v1_path, "PRAGMA user_version") == [(1,)]  # nothing of the upgrade was committed
    assert "parent_id" not in {r[1] for r in _rows(v1_path, "PRAGMA table_info(messages)")}
    assert _rows(v1_path, V1_MESSAGES) == before
    db = open_v1(v1_path)  # the schema-1 app still reads it
    db.close()
    store = HistoryStore(v1_path)  # the app opens, upgrades, and nothing is lost
    try:
        assert store.warnings == []
        for conv in convs:
            msgs = store.messages(conv.id)
            assert [m.id for m in msgs] == conv.message_ids
            assert [m.parent_id for m in msgs] == [None, *conv.message_ids][:len(conv.message_ids)]
            assert [m.content for m in msgs] == [m.content for m in conv.messages]
    finally:
        store.close()
    assert len(_copies(v1_path.parent)) == 2  # each attempt copied the original first


def test_an_upgrade_that_fails_changes_nothing_and_says_so(v1_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core import history_schema
    from app.core.errors import StorageError

    write_v1_history(v1_path)
    before = _rows(v1_path, V1_MESSAGES)

    def full_disk(db: sqlite3.Connection) -> None:
        history_schema.add_columns(db)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(history_schema, "chain_messages", full_disk)
    with pytest.raises(StorageError, match="disk is full"):
        HistoryStore(v1_path)
    assert _rows(v1_path, "PRAGMA user_version") == [(1,)] and _rows(v1_path, V1_MESSAGES) == before
    monkeypatch.undo()
    store = HistoryStore(v1_path)
    try:
        assert len(store.list_conversations()) == 3
    finally:
        store.close()


def test_a_damaged_schema_1_file_is_salvaged_into_chains(v1_path: Path) -> None:
    convs = write_v1_history(v1_path)
    db = sqlite3.connect(v1_path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'conversations'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(v1_path.read_bytes())
    data[(root - 1) * page : root * page] = b"\xff" * page  # the conversations' only page
    v1_path.write_bytes(bytes(data))
    store = HistoryStore(v1_path)
    try:
        [warning] = store.warnings
        assert "kept for recovery" in warning
        for conv in convs[:2]:
            msgs = store.messages(conv.id)
            assert [m.parent_id for m in msgs] == [None, *conv.message_ids][:len(conv.message_ids)]
            assert store.get_conversation(conv.id).active_leaf_id == conv.message_ids[-1]  # type: ignore[union-attr]
    finally:
        store.close()


def test_salvage_keeps_a_branch_whose_parent_was_lost(tmp_path: Path) -> None:
    from app.core import history_schema

    path = tmp_path / "h.sqlite3"
    store = HistoryStore(path)
    conv = store.create_conversation()
    q = store.add_message(conv.id, "user", "q")
    a = store.add_message(conv.id, "assistant", "a")
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM messages WHERE id = ?", (q.id,))  # as if its page were lost
    db.execute("UPDATE conversations SET active_leaf_id = 999")
    history_schema.repair_after_salvage(db)
    assert db.execute("SELECT parent_id FROM messages WHERE id = ?", (a.id,)).fetchone() == (None,)
    assert db.execute("SELECT active_leaf_id FROM conversations").fetchone() == (a.id,)
    db.close()
