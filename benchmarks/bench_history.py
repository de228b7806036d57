"""Cost of the conversation tree, measured against baselines in the same run.

    .venv/bin/python -m benchmarks.bench_history [--conversations 2000] [--messages 20] [--long 1000] [--runs 5]

- upgrade: the first ``HistoryStore(path)`` on a schema-1 history of ``--conversations`` x
  ``--messages`` rows (copy aside, new columns, every conversation chained, in one
  transaction) against copying the same file with ``shutil.copyfile``; then opening the
  upgraded file again (what every later start pays) against opening the schema-1 file the
  way the schema-1 app did.
- open: reading one conversation of ``--long`` messages as a tree and its active path
  (``HistoryStore.tree(...).path()``) against the bare ``SELECT`` of its rows.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from app.core.history import HistoryStore
from tests.support.history_v1 import V1Conversation, V1Message, open_v1, write_v1_history


def _v1(path: Path, conversations: int, messages: int) -> None:
    convs = [V1Conversation(f"{i:032x}", f"chat {i}", "mock:echo", "", {},
                            [V1Message("user" if j % 2 == 0 else "assistant", f"message {j} " + "words " * 30,
                                       meta={"prompt_tokens": 10, "completion_tokens": 20})
                             for j in range(messages)]) for i in range(conversations)]  # fmt: skip
    write_v1_history(path, convs)


def _upgrade(conversations: int, messages: int, runs: int, folder: Path) -> tuple[float, float, float, float]:
    source = folder / "v1.sqlite3"
    _v1(source, conversations, messages)
    copies, upgrades, reopens, v1_opens = [], [], [], []
    for i in range(runs):
        start = time.perf_counter()
        open_v1(source).close()
        v1_opens.append(time.perf_counter() - start)
        path = folder / f"run{i}.sqlite3"
        start = time.perf_counter()
        shutil.copyfile(source, path)
        copies.append(time.perf_counter() - start)
        start = time.perf_counter()
        HistoryStore(path).close()
        upgrades.append(time.perf_counter() - start)
        start = time.perf_counter()
        HistoryStore(path).close()
        reopens.append(time.perf_counter() - start)
    return (statistics.median(copies), statistics.median(upgrades), statistics.median(reopens),
            statistics.median(v1_opens))


def _open(long: int, runs: int, folder: Path) -> tuple[float, float]:
    path = folder / "long.sqlite3"
    store = HistoryStore(path)
    conv = store.create_conversation("long")
    for j in range(long):
        store.add_message(conv.id, "user" if j % 2 == 0 else "assistant", f"message {j} " + "words " * 30)
    bare, tree = [], []
    db = sqlite3.connect(path)
    for _ in range(runs):
        start = time.perf_counter()
        db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conv.id,)).fetchall()
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert len(store.tree(conv.id).path()) == long
        tree.append(time.perf_counter() - start)
    db.close()
    store.close()
    return statistics.median(bare), statistics.median(tree)


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        copy, upgrade, reopen, v1_open = _upgrade(args.conversations, args.messages, args.runs, folder)
        size = (folder / "v1.sqlite3").stat().st_size / 1e6
        rows = args.conversations * args.messages
        print(f"upgrade of {args.conversations} conversations x {args.messages} messages ({rows} rows, {size:.1f} MB): "
              f"{upgrade * 1000:.0f} ms (x{upgrade / copy:.1f} of a file copy, {copy * 1000:.0f} ms); "
              f"later opens {reopen * 1000:.1f} ms (x{reopen / v1_open:.2f} of a schema-1 open, {v1_open * 1000:.1f} ms)")
        bare, tree = _open(args.long, args.runs, folder)
        print(f"open a {args.long}-message conversation as a tree + path: {tree * 1000:.1f} ms "
              f"(x{tree / bare:.2f} of the bare SELECT, {bare * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
