"""``history``: the conversations the window and ``ask --conversation`` store.

- ``history list [--search Q] [--json]``: ``[{id, title, created_at, updated_at, model, message_count}]``
- ``history show ID [--all-branches] [--json]``: ``{id, title, model, system_prompt, params,
  active_leaf_id, messages: [...]}``, the active path root first (every branch with
  ``--all-branches``, oldest first)
- ``history fork ID MESSAGE_ID [--json]``: the new conversation's id
- ``history export ID --format md|json [-o FILE]``
- ``history delete ID``

Unknown ids exit 2 with a message saying how to find the right one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from app.cli.common import EXIT_OK, output_path, print_warnings
from app.core.errors import ConfigError, InvalidParams
from app.core.history_export import cli_message, redacted

if TYPE_CHECKING:
    from app.core.history import Conversation, HistoryStore


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``history`` subcommand and its actions."""
    p = sub.add_parser("history", help="list, show, fork, export and delete conversations",
                       description="The stored conversations (the window's history).")  # fmt: skip
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", help="list conversations, newest first")
    ls.add_argument("--search", metavar="Q", help="only those whose title or messages contain Q")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    show = actions.add_parser("show", help="print a conversation's messages")
    show.add_argument("id", metavar="ID")
    show.add_argument("--all-branches", action="store_true", help="every message of every branch, not only the active path")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    fork = actions.add_parser("fork", help="copy the path up to a message into a new conversation")
    fork.add_argument("id", metavar="ID")
    fork.add_argument("message_id", metavar="MESSAGE_ID", type=int)
    fork.add_argument("--json", action="store_true", help='print {"id": ...}')
    export = actions.add_parser("export", help="write a conversation as Markdown or JSON")
    export.add_argument("id", metavar="ID")
    export.add_argument("--format", choices=("md", "json"), required=True)
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    delete = actions.add_parser("delete", help="delete a conversation and all its messages")
    delete.add_argument("id", metavar="ID")
    p.set_defaults(func=run_history)


def _open() -> HistoryStore:
    from app.core.history import HistoryStore
    from app.core.paths import AppPaths

    paths = AppPaths.default().ensure()
    return HistoryStore(paths.history_db)


def run_history(args: argparse.Namespace) -> int:
    """Run ``history ACTION``; return the exit code."""
    store = _open()
    try:
        return {"list": _list, "show": _show, "fork": _fork, "export": _export, "delete": _delete}[args.action](
            store, args, sys.stdout)
    finally:
        store.close()
        print_warnings(store.warnings)


def _dump(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, ensure_ascii=False) + "\n")
    out.flush()


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def _list(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    convs = store.list_conversations(search=args.search, limit=100_000)
    if args.json:
        _dump(out, redacted([{"id": c.id, "title": c.title, "created_at": c.created_at, "updated_at": c.updated_at,
                              "model": c.model, "message_count": c.message_count} for c in convs]))  # fmt: skip
        return EXIT_OK
    if not convs:
        out.write("No conversations match.\n" if args.search else "No conversations yet.\n")
    for c in convs:
        out.write(f"{c.id}  {_stamp(c.updated_at)}  {c.message_count:>4} msg  {c.model or '-':<24}  {c.title}\n")
    return EXIT_OK


def _header(conv: Conversation) -> dict[str, Any]:
    return {"id": conv.id, "title": conv.title, "model": conv.model, "system_prompt": conv.system_prompt,
            "params": conv.params}  # fmt: skip


def _show(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    conv = store.require(args.id)
    tree = store.tree(conv.id)
    messages = tree.messages() if args.all_branches else tree.path()
    if args.json:
        _dump(out, {**redacted(_header(conv)), "active_leaf_id": tree.active_leaf_id,
                    "messages": [cli_message(m) for m in messages]})  # fmt: skip
        return EXIT_OK
    out.write(f"# {conv.title}  ({conv.id})\n")
    if conv.model:
        out.write(f"model: {conv.model}\n")
    if conv.system_prompt:
        out.write(f"system: {conv.system_prompt}\n")
    for m in messages:
        k, n = tree.position(m.id)
        branch = f"  [{k}/{n}]" if n > 1 else ""
        parent = f" \u2190 {m.parent_id}" if args.all_branches and m.parent_id is not None else ""
        state = "" if m.status == "complete" else f"  ({m.status}{': ' + m.error if m.error else ''})"
        out.write(f"\n[{m.id}{parent}] {m.role}{branch}{state}\n{redacted(m.content)}\n")
    return EXIT_OK


def _fork(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    store.require(args.id)
    store.require_message(args.id, args.message_id)
    new = store.fork(args.id, args.message_id)
    if args.json:
        _dump(out, {"id": new.id})
    else:
        out.write(new.id + "\n")
    return EXIT_OK


def _export(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    store.require(args.id)
    if args.format == "json":
        text = json.dumps(store.export_json(args.id), indent=2, ensure_ascii=False) + "\n"
    else:
        text = store.export_markdown(args.id)
    if args.output is None:
        out.write(text)
        out.flush()
        return EXIT_OK
    path = output_path(args.output, "-o")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidParams(f"Could not write {path}: {exc.strerror or exc}.",
                           hint="Pick another file or folder.") from exc  # fmt: skip
    sys.stderr.write(f"exported to {path}\n")
    return EXIT_OK


def _delete(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    conv = store.get_conversation(args.id)
    if conv is None:
        raise ConfigError(f"There is no conversation '{args.id}'.",
                          hint="Run 'python -m app history list' to see the ids.")  # fmt: skip
    store.delete(conv.id)
    out.write(f"deleted {conv.id} ({conv.title}, {conv.message_count} messages)\n")
    return EXIT_OK
