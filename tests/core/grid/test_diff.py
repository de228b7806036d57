"""The word-level diff of two answers."""

from __future__ import annotations

from app.core.grid.diff import changed_words, similarity, word_diff


def test_the_diff_shows_the_changed_words_and_rebuilds_both_texts() -> None:
    a, b = "The capital of France is Paris.", "The capital of Italy is Rome, I think."
    pieces = word_diff(a, b)
    assert "".join(t for op, t in pieces if op != "insert") == a
    assert "".join(t for op, t in pieces if op != "delete") == b
    removed, added = changed_words(a, b)
    assert removed == ["France", "Paris"]
    assert added == ["Italy", "Rome", ",", "I", "think"]
    assert similarity(a, a) == 1.0 and 0 < similarity(a, b) < 1
