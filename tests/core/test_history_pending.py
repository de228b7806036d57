"""A history another process holds write-locked: an exchange's writes wait in the journal
(never the busy timeout, never an error), show in reads, and are written once it is free or
at the next open; rename, delete and fork wait the busy timeout and then say busy."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from app.core.errors import StorageBusy
from app.core.history import INTERRUPTED, HistoryStore
from app.core.history_journal import PENDING_ID_BASE, journals
from tests.support.sqlite_lock import LockHolder


def stored(path: Path) -> list[tuple[str, str, str, str | None]]:
    """(role, content, status, error) of every message, read by another connection."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT role, content, status, error FROM messages ORDER BY id").fetchall()
    finally:
        db.close()


def exchange(store: HistoryStore, title: str = "locked") -> tuple[str, int, int]:
    conv = store.create_conversation(title, model="mock:echo")
    user = store.add_message(conv.id, "user", "Hi")
    answer = store.add_message(conv.id, "assistant", "", parent_id=user.id, status="streaming")
    store.update_conversation(conv.id, model="mock:echo", system_prompt="be brief")
    store.update_message(answer.id, content="Hel")
    return conv.id, user.id, answer.id


def test_an_exchange_goes_on_while_locked_and_is_written_when_the_lock_frees(
        store: HistoryStore, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(store, "busy_timeout_s", 30.0)  # the exchange must not wait this long
    with LockHolder(db_path):
        start = time.monotonic()
        cid, user_id, answer_id = exchange(store)
        store.update_message(answer_id, content="Hello", status="complete")
        assert time.monotonic() - start < 5  # one short wait, then everything is journaled
        assert store.pending == 6 and answer_id >= PENDING_ID_BASE
        assert journals(db_path) == [store.journal.path]
        tree = store.tree(cid)  # reads show what waits
        assert [(m.role, m.content, m.status) for m in tree.path()] == [
            ("user", "Hi", "complete"), ("assistant", "Hello", "complete")]
        assert store.require(cid).system_prompt == "be brief"
        assert [c.title for c in store.list_conversations()] == ["locked"]
        assert not store.flush(0) and stored(db_path) == []
    assert store.flush(0)
    assert store.pending == 0 and journals(db_path) == []
    assert stored(db_path) == [("user", "Hi", "complete", None), ("assistant", "Hello", "complete", None)]
    real = store.resolve(answer_id)
    assert real < PENDING_ID_BASE and store.get_message(answer_id) == store.get_message(real)
    assert store.require(cid).active_leaf_id == real and store.require(cid).system_prompt == "be brief"


def test_a_lock_taken_mid_stream_leaves_no_answer_streaming(store: HistoryStore, db_path: Path) -> None:
    conv = store.create_conversation()
    user = store.add_message(conv.id, "user", "Count")
    answer = store.add_message(conv.id, "assistant", "", parent_id=user.id, status="streaming")
    store.update_message(answer.id, content="1 2")
    with LockHolder(db_path):  # taken while the answer streams
        store.update_message(answer.id, content="1 2 3")
        store.update_message(answer.id, content="1 2 3 4", status="complete")
        assert store.get_message(answer.id).status == "complete"  # type: ignore[union-attr]
        assert stored(db_path)[-1] == ("assistant", "1 2", "streaming", None)
    store.update_message(answer.id, meta={"note": 1})  # the next write writes what waited first
    assert store.pending == 0
    assert stored(db_path)[-1] == ("assistant", "1 2 3 4", "complete", None)


def test_what_waits_when_the_process_ends_is_written_at_the_next_open(db_path: Path) -> None:
    first = HistoryStore(db_path)
    with LockHolder(db_path):
        cid, _, answer_id = exchange(first)
        first.update_message(answer_id, content="Hello", status="complete")
        second_cid, _, _ = exchange(first, "cut")  # its answer still streams when the app ends
        first.close()
        assert len(journals(db_path)) == 1
    second = HistoryStore(db_path)
    try:
        assert journals(db_path) == [] and second.warnings == []
        assert [(m.content, m.status, m.error) for m in second.tree(cid).path()] == [
            ("Hi", "complete", None), ("Hello", "complete", None)]
        assert [(m.content, m.status, m.error) for m in second.tree(second_cid).path()] == [
            ("Hi", "complete", None), ("Hel", "error", INTERRUPTED)]  # cut, never left streaming
    finally:
        second.close()


def test_a_next_start_that_is_still_locked_keeps_the_journal(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = HistoryStore(db_path)
    with LockHolder(db_path):
        cid, _, _ = exchange(first)
        first.close()
        second = HistoryStore(db_path)  # opens (readers go on), cannot write the journal yet
        try:
            assert "will be written into it at the next start" in " ".join(second.warnings)
            assert second.get_conversation(cid) is None and len(journals(db_path)) == 1
        finally:
            second.close()
    third = HistoryStore(db_path)
    try:
        assert third.require(cid).title == "locked" and journals(db_path) == []
    finally:
        third.close()


def test_a_running_instance_keeps_its_own_journal(store: HistoryStore, db_path: Path) -> None:
    with LockHolder(db_path):
        cid, _, _ = exchange(store)
    other = HistoryStore(db_path)  # another instance starting meanwhile leaves it alone
    try:
        assert other.get_conversation(cid) is None and journals(db_path) == [store.journal.path]
    finally:
        other.close()
    assert store.flush(0) and store.require(cid).title == "locked" and len(store.messages(cid)) == 2


def test_a_torn_journal_of_a_killed_process_gives_what_it_holds(store: HistoryStore, db_path: Path) -> None:
    with LockHolder(db_path):
        cid, _, _ = exchange(store)
    with store.journal.path.open("ab") as f:
        f.write(b'{"op": "update", "id": 107')  # killed mid-line
    text = store.journal.path.read_text().replace(store._writer, "999999999:gone")  # its process is gone
    journal = db_path.with_name(db_path.name + ".journal-999999999-dead")
    journal.write_text(text)
    store.journal.path.unlink()
    store._queue.clear()
    again = HistoryStore(db_path)
    try:
        assert [(m.content, m.status) for m in again.messages(cid)] == [("Hi", "complete"), ("Hel", "error")]
        assert not journal.exists()
    finally:
        again.close()


def test_rename_delete_and_fork_wait_the_busy_timeout_then_say_busy(
        store: HistoryStore, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    conv = store.create_conversation("kept")
    msg = store.add_message(conv.id, "user", "hello")
    monkeypatch.setattr(store, "busy_timeout_s", 0.3)
    with LockHolder(db_path):
        for action in (lambda: store.rename(conv.id, "new"), lambda: store.delete(conv.id),
                       lambda: store.fork(conv.id, msg.id)):  # fmt: skip
            start = time.monotonic()
            with pytest.raises(StorageBusy, match="busy: another instance holds the history database") as info:
                action()
            assert time.monotonic() - start >= 0.3
            assert "try again" in info.value.user_message()
    assert [c.title for c in store.list_conversations()] == ["kept"]  # nothing changed or moved
    store.rename(conv.id, "renamed")
    assert store.fork(conv.id, msg.id).title == "Fork of renamed"


def test_delete_writes_what_waits_first(store: HistoryStore, db_path: Path) -> None:
    with LockHolder(db_path):
        cid, _, _ = exchange(store)
    store.delete(cid)
    assert store.pending == 0 and store.get_conversation(cid) is None and stored(db_path) == []


def test_a_write_whose_conversation_was_deleted_meanwhile_is_skipped(store: HistoryStore, db_path: Path) -> None:
    gone = store.create_conversation("gone")
    kept = store.create_conversation("kept")
    with LockHolder(db_path):
        store.add_message(gone.id, "user", "lost with its conversation")
        store.add_message(kept.id, "user", "kept")
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("DELETE FROM conversations WHERE id = ?", (gone.id,))  # another instance deleted it
    db.close()
    assert store.flush(0)
    assert stored(db_path) == [("user", "kept", "complete", None)]
    assert "deleted meanwhile" in " ".join(store.warnings)


def test_an_answer_finished_while_locked_is_complete_at_the_next_start(db_path: Path) -> None:
    first = HistoryStore(db_path)
    conv = first.create_conversation()
    answer = first.add_message(conv.id, "assistant", "", status="streaming")
    with LockHolder(db_path):
        first.update_message(answer.id, content="all of it", status="complete")
        first.close()  # the app ends; the row in the file still says streaming
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("UPDATE messages SET writer = '999999999:gone'")  # as its process is gone now
    db.close()
    second = HistoryStore(db_path)  # marks it interrupted, then writes the journal in
    try:
        [msg] = second.messages(conv.id)
        assert (msg.content, msg.status, msg.error) == ("all of it", "complete", None)
    finally:
        second.close()
