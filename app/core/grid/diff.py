"""A word-level diff of two answers (the Workbench shows it for two selected cells)."""

from __future__ import annotations

import difflib
import re
from typing import Literal

Op = Literal["equal", "delete", "insert"]
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    """Words, runs of whitespace and single punctuation marks, in order (joined: ``text``)."""
    return _TOKEN.findall(text)


def word_diff(a: str, b: str) -> list[tuple[Op, str]]:
    """The pieces of ``a`` -> ``b``: ``("equal", text)``, ``("delete", text of a)`` and
    ``("insert", text of b)``; joining equal+delete gives ``a``, equal+insert gives ``b``."""
    ta, tb = tokens(a), tokens(b)
    out: list[tuple[Op, str]] = []

    def add(op: Op, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag == "equal":
            add("equal", "".join(ta[i1:i2]))
        else:
            add("delete", "".join(ta[i1:i2]))
            add("insert", "".join(tb[j1:j2]))
    return out


def changed_words(a: str, b: str) -> tuple[list[str], list[str]]:
    """(words only in ``a``, words only in ``b``) along the diff, whitespace left out."""
    removed: list[str] = []
    added: list[str] = []
    for op, text in word_diff(a, b):
        words = [t for t in tokens(text) if not t.isspace()]
        if op == "delete":
            removed += words
        elif op == "insert":
            added += words
    return removed, added


def similarity(a: str, b: str) -> float:
    """How alike the two answers are, word by word (1.0: the same)."""
    ta, tb = tokens(a), tokens(b)
    if not ta and not tb:
        return 1.0
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()
