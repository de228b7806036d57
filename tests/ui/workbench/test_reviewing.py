"""The Workbench's human review (:mod:`app.ui.workbench.reviewing`, through a real window):
rating cells (kept with the run, restored when it reopens), the filters, blind mode (names
hidden everywhere, columns shuffled, Reveal), pair votes and win rates, and the exports."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel

from app.core.grid.model import Assertion, GridConfig, Prompt, TestCase, Variant
from app.core.grid.review import blind_order
from app.ui.workbench.grid_model import CELL_ROLE, REVIEW_ROLE

LABELS = ("alpha", "bravo", "charlie")


def grid() -> GridConfig:
    """Row 0: both answers "yes" (alike, pass); row 1: "yes" vs "no" (differ, one fails);
    row 2: "yes" vs "maybe" (differ, nothing checked)."""
    yes = (Assertion("icontains", "yes"),)
    return GridConfig(description="Review check", prompts=(Prompt("{{q}}"),),
                      variants=(Variant("mock:fixed?text=yes", label=LABELS[0]), Variant("mock:echo", label=LABELS[1]),
                                Variant("mock:fixed?text=yes", label=LABELS[2])),
                      tests=(TestCase({"q": "yes"}, yes), TestCase({"q": "no"}, yes), TestCase({"q": "maybe"})))  # fmt: skip


def ran(bench: Any, drive: Callable[..., Any]) -> str:
    bench.load_config(grid(), None)
    drive(asyncio.wait_for(bench.run(), 10))
    return str(bench.runner.run_id)


def footer(bench: Any, variant: int) -> str:
    return str(bench.footer_model.data(bench.footer_model.index(0, bench.model.column_of(variant))))


def shown_rows(bench: Any) -> list[int]:
    return [r for r in range(bench.model.rowCount()) if not bench.table.isRowHidden(r)]


def test_rating_a_cell_shows_counts_and_comes_back_when_the_run_reopens(bench: Any, drive: Callable[..., Any]) -> None:
    run_id = ran(bench, drive)
    panel = bench.review_panel
    assert "2/3 pass" in footer(bench, 1)  # echo says "no" to "no": fails
    bench.select_cell(1, 1)
    bench.tabs.setCurrentWidget(panel)
    assert "row" not in panel.title.text() and LABELS[1] in panel.title.text() and panel.cell_box.isEnabled()
    panel.pass_button.click()
    panel.score_buttons[3].click()
    panel.comment.setPlainText("a fair answer to a bad question")
    panel.commit()
    index = bench.model.index(1, bench.model.column_of(1))
    review = bench.model.data(index, REVIEW_ROLE)
    assert (review.passed, review.score, review.comment) == (True, 4, "a fair answer to a bad question")
    assert "By hand: ✔ ★4" in bench.model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert "3/3 pass (1 by hand) · ★4.0" in footer(bench, 1)  # the person's verdict overrides the check's
    assert bench.runner.cells[(1, 1)].passed is False  # the automatic verdict is kept
    bench.select_cell(2, 1)
    assert not panel.pass_button.isChecked() and panel.comment.toPlainText() == ""
    panel.fail_button.click()
    panel.fail_button.click()  # clicked again: no verdict, so nothing is kept
    assert bench.model.data(bench.model.index(2, bench.model.column_of(1)), REVIEW_ROLE) is None
    bench.new_grid()
    assert bench.model.data(bench.model.index(0, bench.model.column_of(0)), REVIEW_ROLE) is None
    assert bench.runs.select(run_id)
    bench.runs.reopen_button.click()
    bench.select_cell(1, 1)
    assert panel.pass_button.isChecked() and panel.score_buttons[3].isChecked()
    assert panel.comment.toPlainText() == "a fair answer to a bad question" and "(1 by hand)" in footer(bench, 1)


def test_a_comment_typed_just_before_closing_is_kept(bench: Any, drive: Callable[..., Any]) -> None:
    run_id = ran(bench, drive)
    bench.select_cell(1, 1)
    bench.tabs.setCurrentWidget(bench.review_panel)
    bench.review_panel.comment.setPlainText("typed, then the window closed")
    bench.commit_edits()  # what closing does first, before the comment's pause has passed
    assert bench.runs.select(run_id)
    bench.runs.reopen_button.click()
    bench.select_cell(1, 1)
    assert bench.review_panel.comment.toPlainText() == "typed, then the window closed"


def test_a_grid_not_run_cannot_be_rated(bench: Any) -> None:
    bench.load_config(grid(), None)
    bench.select_cell(0, 0)
    assert not bench.review_panel.cell_box.isEnabled() and "no answer yet" in bench.review_panel.title.text()
    assert not bench.rate(0, 0, True) and "Cannot rate" in bench.message.text()


def test_the_filters_show_the_right_rows(bench: Any, drive: Callable[..., Any]) -> None:
    ran(bench, drive)
    assert shown_rows(bench) == [0, 1, 2]
    assert bench.set_only_failures(True) == 1 and shown_rows(bench) == [1]
    assert "Showing 1 of 3 rows" in bench.message.text()
    bench.set_only_failures(False)
    assert bench.set_only_differs(True) == 2 and shown_rows(bench) == [1, 2]
    bench.only_failures_action.trigger()  # both: failing rows that differ
    assert shown_rows(bench) == [1]
    bench.rate(1, 1, True)  # a person passes the failing cell: no failure left
    assert shown_rows(bench) == []
    bench.set_only_differs(False)
    bench.rate(0, 2, False)
    assert shown_rows(bench) == [0]
    bench.set_only_failures(False)
    assert shown_rows(bench) == [0, 1, 2]


def _texts(bench: Any) -> list[str]:
    """What the window shows as text: labels, buttons, headers and every tooltip of the grid."""
    out = [w.text() for w in bench.findChildren(QLabel) + bench.findChildren(QAbstractButton)]
    out += [w.toolTip() for w in bench.findChildren(QAbstractButton)]
    model = bench.model
    for section in range(model.columnCount()):
        for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            out.append(str(model.headerData(section, Qt.Orientation.Horizontal, role)))
    for r in range(model.rowCount()):
        for c in range(model.columnCount()):
            out.append(str(model.data(model.index(r, c), Qt.ItemDataRole.ToolTipRole)))
    out += [bench.diff.title.text(), bench.answer.title.text(), bench.code.text.toPlainText()]
    return out


def test_blind_mode_hides_the_names_everywhere_and_shuffles_until_reveal(bench: Any, drive: Callable[..., Any]) -> None:
    ran(bench, drive)
    seed = next(s for s in range(100) if blind_order(3, s)[0] != 0)
    order = blind_order(3, seed)
    bench.set_blind(True, seed)
    model, fixed = bench.model, bench.model.fixed
    assert [model.headerData(fixed + p, Qt.Orientation.Horizontal) for p in range(3)] == [
        "Variant A", "Variant B", "Variant C"]
    assert [model.variant_of(fixed + p) for p in range(3)] == order
    for p in range(3):  # each column shows its variant's cells
        assert model.data(model.index(2, fixed + p), CELL_ROLE) is bench.runner.cells[(2, order[p])]
    assert not bench.tabs.isTabEnabled(bench.tabs.indexOf(bench.variant_editor))
    assert not bench.tabs.isTabEnabled(bench.tabs.indexOf(bench.code))
    bench.select_cell(2, 1)
    assert "Variant " in bench.answer.title.text() and "Variant " in bench.review_panel.title.text()
    bench.select_cell(2, 0, add=True)
    assert bench.review_panel.left_button.text().startswith("◀ Variant")
    bench.table.horizontalHeader().sectionClicked.emit(model.column_of(1))  # no Variant tab
    assert bench.tabs.currentWidget() is not bench.variant_editor
    assert bench.copy_selected_code() is None and "Reveal first" in bench.message.text()
    shown = "\n".join(_texts(bench))
    assert not any(label in shown for label in LABELS) and "mock:" not in shown
    bench.select_cell(0, order[0])
    assert bench.rate(0, order[0], True, 5)
    assert bench.store.load_review(bench.runner.run_id).get(0, order[0]).blind  # type: ignore[union-attr]
    bench.reveal_action.trigger()
    assert [model.headerData(fixed + p, Qt.Orientation.Horizontal) for p in range(3)] == list(LABELS)
    assert [model.variant_of(fixed + p) for p in range(3)] == [0, 1, 2]
    assert bench.tabs.isTabEnabled(bench.tabs.indexOf(bench.variant_editor)) and not bench.blind_action.isChecked()


def test_pair_votes_give_each_variant_a_win_rate(bench: Any, drive: Callable[..., Any]) -> None:
    run_id = ran(bench, drive)
    panel = bench.review_panel
    bench.tabs.setCurrentWidget(panel)
    bench.select_cell(1, 0)
    bench.select_cell(1, 1, add=True)
    assert bench.tabs.currentWidget() is panel and panel.pair_box.isVisibleTo(panel)
    assert panel.title.text().endswith("which answer is better?") and not panel.cell_box.isVisibleTo(panel)
    assert panel.left_button.text() == f"◀ {LABELS[0]}" and panel.right_button.text() == f"{LABELS[1]} ▶"
    panel.left_button.click()  # alpha's "yes" beats bravo's "no"
    bench.select_cell(2, 1)
    bench.select_cell(2, 2, add=True)
    panel.tie_button.click()
    seed = next(s for s in range(100) if blind_order(3, s)[:2] == [2, 0])  # blind: charlie left of alpha
    bench.set_blind(True, seed)
    bench.select_cell(0, 0)
    bench.select_cell(0, 2, add=True)
    assert bench.selected_pair() == (0, 2, 0)
    panel.left_button.click()  # the left one, charlie, wins
    review = bench.store.load_review(run_id)
    assert {k: v.winner_col for k, v in review.votes.items()} == {(1, 0, 1): 0, (2, 1, 2): None, (0, 0, 2): 2}
    assert review.votes[(0, 0, 2)].blind and not review.votes[(1, 0, 1)].blind
    bench.reveal()
    assert "wins 50% (1-1-0)" in footer(bench, 0) and "wins 25% (0-1-1)" in footer(bench, 1)
    assert "wins 75% (1-0-1)" in footer(bench, 2)
    bench.select_cell(1, 0)
    bench.select_cell(1, 1, add=True)
    assert panel.left_button.isChecked() and f"{LABELS[2]} wins 75%" in panel.wins.text()
    panel.unvote_button.click()
    assert (1, 0, 1) not in bench.store.load_review(run_id).votes


def test_the_exports_carry_the_review(bench: Any, drive: Callable[..., Any], tmp_path: Path) -> None:
    run_id = ran(bench, drive)
    bench.rate(1, 1, True, 3, "ok by me")
    bench.select_cell(1, 0)
    bench.select_cell(1, 1, add=True)
    assert bench.vote("b")
    assert bench.export_current(tmp_path / "run.json")
    data = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    cell = next(c for c in data["cells"] if (c["row"], c["col"]) == (1, 1))
    assert (cell["pass"], cell["verdict"], cell["verdict_by"], cell["review"]["comment"]) == (False, True, "person", "ok by me")
    assert [w["rate"] for w in data["review"]["win_rates"]] == [0.0, 1.0, None]
    assert bench.export_current(tmp_path / "run.csv")
    lines = list(csv.DictReader(io.StringIO((tmp_path / "run.csv").read_text(encoding="utf-8"))))
    line = next(r for r in lines if (r["row"], r["col"]) == ("1", "1"))
    assert (line["review_score"], line["verdict_by"], line["votes"], line["variant_win_rate"]) == (
        "3", "person", f"won over {LABELS[0]}", "1.0")
    assert bench.export_stored(run_id, tmp_path / "run.html")  # a stored run's export reads its review
    page = (tmp_path / "run.html").read_text(encoding="utf-8")
    assert "By hand:</b> PASS ★3" in page and "ok by me" in page and "wins 100% (1-0-0)" in page
