"""The Review tab on its own (:class:`~app.ui.workbench.review.ReviewPanel`, offscreen): what it
shows for a cell or a pair, and what it says when the person rates, comments or votes. (The
window's side, keeping the review with the run, is in test_reviewing.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from app.core.grid.review import CellReview
from app.ui.workbench.review import COMMENT_DEBOUNCE_MS, HINT, ReviewPanel


@pytest.fixture
def panel(qtbot: Any) -> ReviewPanel:
    made = ReviewPanel()
    qtbot.addWidget(made)
    made.show()
    return made


def edits(panel: ReviewPanel) -> list[tuple[Any, Any, str]]:
    """Every ``review_edited`` emission from now on."""
    seen: list[tuple[Any, Any, str]] = []
    panel.review_edited.connect(lambda passed, score, comment: seen.append((passed, score, comment)))
    return seen


def test_a_cell_shows_its_review_and_showing_it_says_nothing(panel: ReviewPanel) -> None:
    assert panel.title.text() == HINT and panel.cell_box.isHidden() and panel.pair_box.isHidden()
    said = edits(panel)
    panel.show_cell(CellReview(False, 2, "too short"), "greeting × alpha")
    assert panel.title.text() == "greeting × alpha" and panel.cell_box.isVisible() and panel.cell_box.isEnabled()
    assert panel.passed() is False and panel.score() == 2 and panel.comment.toPlainText() == "too short"
    assert [b.isChecked() for b in panel.score_buttons] == [False, True, False, False, False]
    panel.show_cell(None, "greeting × bravo")  # a cell without a review: everything clear
    assert panel.passed() is None and panel.score() is None and panel.comment.toPlainText() == ""
    assert said == []  # showing is not rating


def test_verdict_and_score_are_said_at_once_and_a_second_click_clears_them(panel: ReviewPanel) -> None:
    panel.show_cell(None, "row × col")
    said = edits(panel)
    panel.pass_button.click()
    panel.fail_button.click()  # the verdicts exclude each other
    assert not panel.pass_button.isChecked() and panel.fail_button.isChecked()
    panel.score_buttons[4].click()
    panel.score_buttons[1].click()
    panel.score_buttons[1].click()  # again: no score
    panel.fail_button.click()  # again: no verdict
    assert said == [(True, None, ""), (False, None, ""), (False, 5, ""), (False, 2, ""), (False, None, ""),
                    (None, None, "")]  # fmt: skip


def test_a_comment_is_said_once_typing_stops_or_before_the_selection_moves(panel: ReviewPanel, qtbot: Any) -> None:
    panel.show_cell(CellReview(True), "row × col")
    said = edits(panel)
    panel.comment.setPlainText("fine")
    panel.comment.setPlainText("fine by me")
    assert said == []  # still typing
    with qtbot.waitSignal(panel.review_edited, timeout=COMMENT_DEBOUNCE_MS * 10):
        pass
    assert said == [(True, None, "fine by me")]
    panel.comment.setPlainText("changed my mind")
    panel.show_cell(None, "other row × col")  # the typed comment goes to the cell it was typed on
    assert said[-1] == (True, None, "changed my mind") and len(said) == 2
    assert panel.comment.toPlainText() == ""
    panel.commit()  # nothing is pending any more: the new cell gets no comment of the old
    assert len(said) == 2


def test_a_cell_that_cannot_be_rated_says_why_and_nothing_is_said(panel: ReviewPanel) -> None:
    panel.show_cell(None, "row × col", why_not="this cell has no answer yet")
    assert panel.title.text() == "row × col — this cell has no answer yet" and not panel.cell_box.isEnabled()
    said = edits(panel)
    panel.clear()
    panel.comment.setPlainText("typed anyway")
    panel.commit()
    assert said == []
    panel.show_cell(None)  # no cell: the hint, and the cell's part hidden
    assert panel.title.text() == HINT and panel.cell_box.isHidden()


def test_clear_forgets_verdict_score_and_comment(panel: ReviewPanel) -> None:
    panel.show_cell(CellReview(True, 4, "good"), "row × col")
    said = edits(panel)
    panel.clear_button.click()
    assert said == [(None, None, "")] and panel.passed() is None and panel.score() is None
    assert panel.comment.toPlainText() == ""


def test_a_pair_shows_its_vote_and_the_person_votes(panel: ReviewPanel) -> None:
    votes: list[str] = []
    panel.vote_cast.connect(votes.append)
    panel.show_pair(("alpha", "bravo"), "b", "greeting")
    assert panel.pair_box.isVisible() and panel.title.text() == "greeting: which answer is better?"
    assert panel.left_button.text() == "◀ alpha" and panel.right_button.text() == "bravo ▶"
    assert [b.isChecked() for b in (panel.left_button, panel.tie_button, panel.right_button)] == [False, False, True]
    panel.left_button.click()
    assert panel.left_button.isChecked() and not panel.right_button.isChecked()
    panel.tie_button.click()
    panel.unvote_button.click()
    assert votes == ["a", "tie", ""]
    assert not any(b.isChecked() for b in (panel.left_button, panel.tie_button, panel.right_button))
    panel.show_win_rates("Win rates: alpha wins 100% (1-0-0)")
    assert panel.wins.text() == "Win rates: alpha wins 100% (1-0-0)"
    panel.show_pair(None)
    assert panel.pair_box.isHidden()
