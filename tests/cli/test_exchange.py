"""``ask --conversation`` with the history write-locked by another program (issue 18, item 2),
with the real ``python -m app`` in subprocesses: the answer is sent, streamed and printed, its
messages are written once the lock frees (or at the next start, from the journal), the user
is told, the ledger row says so; ``history delete|fork`` say busy and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.history import HistoryStore
from app.core.paths import AppPaths
from tests.cli.test_data_safety import app, read_until, rows, start_app, wait_for
from tests.support.openai_server import OpenAIServer, tokens
from tests.support.sqlite_lock import LockHolder

FAST = {"LLM_PLAYGROUND_DB_BUSY_TIMEOUT": "0.5"}


def history_path() -> Path:
    return AppPaths.default().ensure().history_db


def journals(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".journal-*"))


def conversation(path: Path, cid: str) -> list[tuple[str, str, str, str | None]]:
    store = HistoryStore(path)
    try:
        return [(m.role, m.content, m.status, m.error) for m in store.tree(cid).path()]
    finally:
        store.close()


def existing() -> str:
    store = HistoryStore(history_path())
    try:
        conv = store.create_conversation("before")
        store.add_message(conv.id, "user", "first")
        return conv.id
    finally:
        store.close()


@pytest.mark.parametrize("new", [True, False], ids=["new", "existing"])
def test_ask_on_a_locked_history_answers_and_journals_the_exchange(new: bool) -> None:
    path = history_path()
    cid = None if new else existing()
    HistoryStore(path).close()  # the history exists (a first start would create it)
    with LockHolder(path):  # held for the whole run
        done = app("ask", "-m", "mock:echo", "--json", "--conversation", cid or "new", "Hi", env=FAST)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        [note] = done.stderr.splitlines()
        assert note.startswith("note: the history is busy") and "at the next start" in note
        assert len(journals(path)) == 1 and str(journals(path)[0]) in note
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["text"] == "Hi" and answer["message_id"] is None  # not in the history yet
    cid = cid or answer["conversation_id"]
    [row] = rows(AppPaths.default().usage_db)
    assert row["finish_reason"] == "stop" and "history busy: saving the answer is pending" in row["error"]
    listed = app("history", "list", "--json")  # the next start writes the journal in
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert journals(path) == []
    expected = [("user", "Hi", "complete", None), ("assistant", "Hi", "complete", None)]
    assert conversation(path, cid) == ([] if new else [("user", "first", "complete", None)]) + expected


def test_ask_writes_the_exchange_as_soon_as_the_lock_frees() -> None:
    path = history_path()
    cid = existing()
    with OpenAIServer() as server:
        server.enqueue(tokens(40, hold_after=16))  # 16 tokens, then the server waits for the test
        holder = LockHolder(path)
        proc = start_app("ask", "-m", "test-model", "--base-url", server.base_url, "--conversation", cid, "count")
        try:
            assert proc.stdout is not None
            read_until(proc.stdout, "tok15")
            holder.start()  # the history is locked 16 tokens into the stream
            server.release()
            read_until(proc.stdout, "tok39")  # the stream goes on to its end
            wait_for(lambda: journals(path), what="the answer waiting in the journal")
        finally:
            holder.release()  # while ask waits (the busy timeout) to write the answer
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == "" and journals(path) == []
    [(_, _, _, _), user, answer] = conversation(path, cid)
    assert user == ("user", "count", "complete", None)
    assert answer[2:] == ("complete", None) and answer[1].endswith("tok39")
    [row] = rows(AppPaths.default().usage_db)
    assert row["finish_reason"] == "stop" and row["error"].startswith("history busy: the answer was saved")


@pytest.mark.parametrize("action", ["delete", "fork"])
def test_history_delete_and_fork_say_busy_and_exit_1(action: str) -> None:
    path = history_path()
    cid = existing()
    with LockHolder(path):
        done = app("history", action, cid, *(["1"] if action == "fork" else []), env=FAST)
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: busy: another instance holds the history database") and "try again" in line
    assert conversation(path, cid) == [("user", "first", "complete", None)]
    assert app("history", action, cid, *(["1"] if action == "fork" else [])).returncode == 0
