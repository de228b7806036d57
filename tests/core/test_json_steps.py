"""A long JSON list encoded in steps (app/core/json_steps.py): the same text as one encoding,
put into the history's JSON columns as it is, and journaled as its value when the history is
busy."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from app.core.history import HistoryStore
from app.core.history_journal import dumps, read_journal
from app.core.json_steps import Encoded, encode_steps, plain
from tests.support.sqlite_lock import LockHolder


def _tokens(n: int) -> list[dict[str, object]]:
    return [{"text": f" t\u00e9{i}\n\"", "logprob": -i / 7, "top": [{"text": f" a{k}", "logprob": -k / 3}
                                                                  for k in range(i % 4)]} for i in range(n)]


def _encoded(items: list[dict[str, object]], size: int) -> tuple[Encoded, int]:
    steps = list(encode_steps(items, size))
    assert all(s is None for s in steps[:-1])
    done = steps[-1]
    assert isinstance(done, Encoded) and done.value is items
    return done, len(steps)


def test_a_list_encoded_in_steps_is_the_text_of_one_encoding() -> None:
    for n, size, count in [(0, 4, 1), (1, 4, 2), (8, 4, 3), (9, 4, 4), (1024, 256, 5)]:
        items = _tokens(n)
        done, steps = _encoded(items, size)
        assert steps == count and done.text == dumps(items) and json.loads(done.text) == items
    meta = {"model": "m", "tokens": _tokens(9), "logprob_mean": -math.inf, "zz": "\x00encoded-x"}
    mixed = {**meta, "tokens": _encoded(meta["tokens"], 2)[0]}  # type: ignore[arg-type]
    assert dumps(mixed) == dumps(meta) and plain(mixed) == meta and plain(meta) is meta


def stored_meta(db_path: Path, message_id: int) -> object:
    db = sqlite3.connect(db_path)
    try:
        return json.loads(db.execute("SELECT meta FROM messages WHERE id = ?", (message_id,)).fetchone()[0])
    finally:
        db.close()


def test_an_encoded_meta_is_written_as_its_value_and_journaled_as_it_when_busy(store: HistoryStore,
                                                                             db_path: Path) -> None:
    conv = store.create_conversation()
    answer = store.add_message(conv.id, "assistant", "Hi", status="complete")
    meta = {"model": "m", "tokens": _tokens(5)}
    store.update_message(answer.id, meta={**meta, "tokens": _encoded(meta["tokens"], 2)[0]})
    assert stored_meta(db_path, answer.id) == meta
    later = {"model": "m", "tokens": _tokens(7)}
    with LockHolder(db_path):  # another program holds the history: the write waits in the journal
        store.update_message(answer.id, meta={**later, "tokens": _encoded(later["tokens"], 3)[0]})
        assert store.pending == 1 and store.get_message(answer.id).meta == later  # type: ignore[union-attr]
        records, _ = read_journal(store.journal.path)
        assert records[-1]["meta"] == later
    assert store.flush(0) and stored_meta(db_path, answer.id) == later
