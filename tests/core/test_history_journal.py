"""The history's journal file: one fsync'd JSON line a record, torn lines salvaged, and whose
journal may be written in by another process."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.history_journal import Journal, adoptable, journals, read_journal
from app.core.process_id import current_writer

GONE = "999999999:gone"  # no process has this pid


def test_records_come_back_in_order_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    journal = Journal(db)
    for i in range(3):
        journal.append({"op": "draft", "cid": "c", "text": f"draft {i}", "by": GONE})
    with journal.path.open("ab") as f:  # a process killed while writing its fourth line
        f.write(b'{"op": "draft", "cid": "c", "te')
    assert journals(db) == [journal.path]
    records, torn = read_journal(journal.path)
    assert [r["text"] for r in records] == ["draft 0", "draft 1", "draft 2"] and torn == 1


def test_a_torn_line_in_the_middle_costs_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3.journal-1-x"
    lines = [json.dumps({"op": "draft", "cid": "c", "text": "a"}), '{"op": "dr\xff', "[1, 2]",
             json.dumps({"op": "draft", "cid": "c", "text": "b"})]  # fmt: skip
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    records, torn = read_journal(path)
    assert [r["text"] for r in records] == ["a", "b"] and torn == 2


def test_a_journal_is_written_in_only_when_its_process_is_gone_or_closed_it() -> None:
    alive = current_writer()
    assert not adoptable([{"op": "draft", "by": alive}])  # a running instance writes its own
    assert adoptable([{"op": "draft", "by": alive}, {"op": "closed", "by": alive}])
    assert adoptable([{"op": "draft", "by": GONE}])
    assert adoptable([])


def test_discard_removes_the_file_and_journals_ignores_other_files(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    (tmp_path / "history.sqlite3-wal").write_bytes(b"")
    (tmp_path / "usage.sqlite3.journal-1-x").write_text("{}\n")
    journal = Journal(db)
    journal.append({"op": "closed", "by": GONE})
    assert journals(db) == [journal.path]
    journal.discard()
    assert journals(db) == [] and not journal.path.exists()
