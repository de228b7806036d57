"""Find in the conversation (app/ui/widgets/find_bar.py) over a real transcript: every match
of every message, case-insensitive, stepped through with wrap-around, highlighted, and the
highlights gone when the bar closes."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from app.ui.widgets.find_bar import FindBar
from app.ui.widgets.transcript import TranscriptView


def make(qtbot: Any) -> tuple[TranscriptView, FindBar]:
    view = TranscriptView()
    qtbot.addWidget(view)
    view.add_message("u1", "user", "Where is Paris? I mean paris, France.")
    view.add_message("a1", "assistant", "Paris is the capital of France.")
    view.add_message("u2", "user", "Thanks.")
    bar = FindBar(view)
    qtbot.addWidget(bar)
    view.show()
    return view, bar


def test_every_match_in_every_message_is_found_and_counted(qtbot: Any) -> None:
    view, bar = make(qtbot)
    bar.open_bar()
    assert bar.isVisible()
    qtbot.keyClicks(bar.edit, "paris")
    assert bar.match_count() == 3 and bar.count_label.text() == "1 of 3"
    first = bar.current()
    assert first is not None and first.card is view.card("u1") and (first.start, first.end) == (9, 14)
    assert len(view.card("u1").body.extraSelections()) == 2  # both matches in that message highlighted
    assert len(view.card("a1").body.extraSelections()) == 1
    assert view.card("u2").body.extraSelections() == []
    bar.edit.setText("nowhere")
    assert bar.match_count() == 0 and bar.count_label.text() == "no match" and bar.current() is None
    bar.edit.setText("")
    assert bar.count_label.text() == ""


def test_enter_steps_forward_shift_enter_back_and_both_wrap(qtbot: Any) -> None:
    view, bar = make(qtbot)
    bar.open_bar()
    bar.edit.setText("paris")
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return)
    assert bar.count_label.text() == "2 of 3"
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return)
    current = bar.current()
    assert bar.count_label.text() == "3 of 3" and current is not None and current.card is view.card("a1")
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return)
    assert bar.count_label.text() == "1 of 3"  # wrapped to the first
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert bar.count_label.text() == "3 of 3"  # and back to the last
    assert bar._next.isEnabled() and bar._prev.isEnabled()
    bar.edit.setText("thanks")
    assert not bar._next.isEnabled()  # one match: nothing to step to


def test_escape_closes_the_bar_and_clears_the_highlights(qtbot: Any) -> None:
    view, bar = make(qtbot)
    bar.open_bar()
    bar.edit.setText("france")
    assert view.card("a1").body.extraSelections()
    with qtbot.waitSignal(bar.closed, timeout=2000):
        qtbot.keyClick(bar.edit, Qt.Key.Key_Escape)
    assert not bar.isVisible() and bar.match_count() == 0
    assert all(card.body.extraSelections() == [] for card in view.cards())


def test_reopening_searches_again_for_what_the_conversation_now_holds(qtbot: Any) -> None:
    view, bar = make(qtbot)
    bar.open_bar()
    bar.edit.setText("capital")
    assert bar.match_count() == 1
    bar.close_bar()
    view.add_message("a2", "assistant", "Capital letters: CAPITAL.")
    bar.open_bar()
    assert bar.match_count() == 3 and bar.edit.selectedText() == "capital"
    bar.close_bar()
    view.remove("a2")  # a card deleted while matched: stepping and closing stay safe
    bar.step(1)
    bar.close_bar()
