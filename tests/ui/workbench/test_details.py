"""The Workbench's details tabs: the word diff of two answers."""

from __future__ import annotations

from typing import Any

from app.ui.workbench.details import DiffView


def test_replaced_words_are_kept_apart_in_the_diff(qapp: Any) -> None:
    """Seen in a real window: removed and added words ran together ("TheWhat", "isOne")."""
    view = DiffView()
    view.show_diff("The answer is two.", "What answer is One.", "left", "right")
    text = view.body.toPlainText()
    assert "The What" in text and "two One" in text and "TheWhat" not in text
    assert view.removed == ["The", "two"] and view.added == ["What", "One"]
    view.show_diff("a b", "a  c", "left", "right")  # whitespace between them already: nothing added
    assert view.body.toPlainText().count(" ") == 3
    view.deleteLater()
