"""Human review in the Workbench (a mixin of the window): a person rates the selected cell
(Pass / Fail, 1-5, a comment) or picks the better of two cells of a row, kept with the run in
the run store; the filters "only failures" and "only rows where variants differ"; the blind
mode, which hides the variants' names (headers, tooltips, details; the Variant and Code tabs
are off) and shuffles their columns by a seeded order kept until Reveal.

A person's verdict shows as a purple badge in the cell and counts in the column's footer
instead of the checks' verdict (``2/3 pass (1 by hand)``)."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from app.core.errors import AppError
from app.core.grid.review import CellReview, PairVote, RunReview, row_differs, row_fails

if TYPE_CHECKING:
    from app.core.grid.cells import Cell
    from app.ui.workbench.bench import Bench

SWAP = {"a": "b", "b": "a", "tie": "tie"}


class ReviewActions:
    """See the module doc."""

    def _vw(self) -> Bench:
        return self  # type: ignore[return-value]  # the window (see bench.py)

    # -- the review of the run on screen --------------------------------------------------------
    def current_review(self) -> RunReview:
        """The reviews and votes of the run on screen (read from the store when it changes)."""
        w = self._vw()
        if w._review is None or w._review.run_id != w.runner.run_id:
            w._review = w.store.load_review(w.runner.run_id)
        return w._review

    @property
    def blind(self) -> bool:
        """True while the variants' names are hidden."""
        return self._vw().model.blind_seed is not None

    def variant_name(self, variant: int) -> str:
        """A variant's title (``Variant B`` in blind mode)."""
        return self._vw().model.variant_name(variant)

    def _why_not(self, cell: Cell | None) -> str:
        w = self._vw()
        if cell is None:
            return "select a cell first"
        if cell.status == "invalid":
            return "this cell was not sent"
        if not cell.ended:
            return "this cell has no answer yet"
        if not w.store.has_run(w.runner.run_id):
            return "run the grid first: ratings are kept with a run"
        return ""

    def rate(self, row: int, col: int, passed: bool | None, score: int | None = None, comment: str = "") -> bool:
        """Keep a person's verdict, score and comment on a cell (all None / "": forget them)."""
        w = self._vw()
        why = self._why_not(w.runner.cell(row, col))
        if why:
            w.show_message(f"Cannot rate: {why}.", "warning")
            return False
        review = self.current_review()
        try:
            new = CellReview(passed, score, comment, self.blind, time.time())
            w.store.save_review(review.run_id, row, col, new)
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return False
        review.put(row, col, new)
        index = w.model.index(row, w.model.column_of(col))
        w.model.dataChanged.emit(index, index)  # the badge, and the footer follows
        self.apply_filters()
        return True

    def _on_review_edited(self, passed: object, score: object, comment: str) -> None:
        keys = self._vw().selected_cells()
        if len(keys) == 1:
            self.rate(*keys[0], passed if isinstance(passed, bool) else None,
                      score if isinstance(score, int) else None, comment)  # fmt: skip

    def selected_pair(self) -> tuple[int, int, int] | None:
        """``(row, left variant, right variant)`` when two cells of one row are selected
        (left and right as shown, which blind mode shuffles)."""
        w = self._vw()
        keys = w.selected_cells()
        if len(keys) != 2 or keys[0][0] != keys[1][0]:
            return None
        left, right = sorted((keys[0][1], keys[1][1]), key=w.model.column_of)
        return keys[0][0], left, right

    def vote(self, winner: str) -> bool:
        """The selected pair: "a" (the left answer is better), "b", "tie", or "" (forget)."""
        w = self._vw()
        pair = self.selected_pair()
        if pair is None:
            w.show_message("Select two cells of the same row (Ctrl+click) to pick the better one.", "warning")
            return False
        row, left, right = pair
        why = self._why_not(w.runner.cell(row, left)) or self._why_not(w.runner.cell(row, right))
        if why:
            w.show_message(f"Cannot vote: {why}.", "warning")
            return False
        review = self.current_review()
        try:
            if winner:
                vote = PairVote.of(row, left, right, winner, blind=self.blind)  # type: ignore[arg-type]
                w.store.save_vote(review.run_id, vote)
                review.vote(vote)
            else:
                w.store.delete_vote(review.run_id, row, left, right)
                review.unvote(row, left, right)
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return False
        w.footer_model.refresh()
        self._review_selection()
        return True

    def _review_selection(self) -> None:
        """Show the selected cell's review, or the vote on the selected pair."""
        w = self._vw()
        review = self.current_review()
        keys = w.selected_cells()
        pair = self.selected_pair()
        if len(keys) == 1:
            cell = w.runner.cell(*keys[0])
            w.review_panel.show_cell(review.get(*keys[0]), w._title(*keys[0]), why_not=self._why_not(cell))
        else:
            w.review_panel.show_cell(None)
        if pair is None:
            w.review_panel.show_pair(None)
        else:
            row, left, right = pair
            vote = review.vote_on(row, left, right)
            winner = None if vote is None else (vote.winner if vote.a == left else SWAP[vote.winner])
            w.review_panel.show_pair((self.variant_name(left), self.variant_name(right)), winner,
                                     w.model.rows[row].label)  # fmt: skip
        rates = review.win_rates(len(w.config.variants))
        shown = sorted(range(len(rates)), key=w.model.column_of)
        parts = [f"{self.variant_name(v)} {rates[v].sentence()}" for v in shown if rates[v].games]
        w.review_panel.show_win_rates("Win rates: " + " · ".join(parts) if parts else
                                      "No pair votes yet: select two cells of a row to pick the better one.")  # fmt: skip

    # -- filters --------------------------------------------------------------------------------
    def set_only_failures(self, on: bool) -> int:
        """Show only the rows with a failed cell; returns how many rows are shown."""
        self._vw().only_failures_action.setChecked(on)
        return self.apply_filters(tell=True)

    def set_only_differs(self, on: bool) -> int:
        """Show only the rows whose variants' answers or verdicts differ; returns how many are shown."""
        self._vw().only_differs_action.setChecked(on)
        return self.apply_filters(tell=True)

    def apply_filters(self, tell: bool = False) -> int:
        """Hide the rows the filters leave out; returns how many rows are shown."""
        w = self._vw()
        fails, differs = w.only_failures_action.isChecked(), w.only_differs_action.isChecked()
        review = self.current_review()
        shown = 0
        for r in range(len(w.model.rows)):
            cells = [c for v in range(len(w.config.variants)) if (c := w.runner.cell(r, v)) is not None]
            hide = (fails and not row_fails(cells, review)) or (differs and not row_differs(cells, review))
            w.table.setRowHidden(r, hide)
            shown += not hide
        if tell and (fails or differs):
            w.show_message(f"Showing {shown} of {len(w.model.rows)} rows (Review menu: the filters).")
        return shown

    # -- blind mode -----------------------------------------------------------------------------
    def set_blind(self, on: bool, seed: int | None = None) -> None:
        """Hide the variants' names and shuffle their columns (by ``seed``; a random one when
        None), or reveal them."""
        w = self._vw()
        if on == self.blind and seed is None:
            return
        w.model.set_blind((secrets.randbelow(2**31) if seed is None else seed) if on else None)
        w.blind_action.setChecked(on)
        w.reveal_action.setEnabled(on)
        for tab in (w.variant_editor, w.code):
            w.tabs.setTabEnabled(w.tabs.indexOf(tab), not on)
        if on:
            w.variant_editor.set_variant(None, None)
            w.code.show_code("Hidden in blind mode (Review > Reveal).")
            if w.tabs.currentWidget() in (w.variant_editor, w.code):
                w.tabs.setCurrentWidget(w.review_panel)
        w.answer.show_cell(None)
        w.size_columns()
        w.size_rows()
        self._review_selection()
        w.show_message("Blind mode: the variants are hidden and shuffled until you reveal them (Review > Reveal)."
                       if on else "Revealed: the columns show their variants again.")  # fmt: skip

    def reveal(self) -> None:
        """Leave blind mode: the names and the columns' order come back."""
        self.set_blind(False)

    def _blind_refusal(self) -> bool:
        """True (and says so) in blind mode, where what names the model is off."""
        if self.blind:
            self._vw().show_message("That would show the model: Reveal first (Review > Reveal).", "warning")
        return self.blind

    def _fill_review_menu(self, menu: QMenu) -> None:
        w = self._vw()

        def toggle(text: str, tip: str) -> QAction:
            act = menu.addAction(text)
            act.setCheckable(True)
            act.setToolTip(tip)
            return act

        w.only_failures_action = toggle("Show only failures", "Only the rows where a cell failed")
        w.only_differs_action = toggle("Only rows where variants differ", "Only the rows whose answers or verdicts differ")
        menu.addSeparator()
        w.blind_action = toggle("Blind mode", "Hide the variants' names and shuffle their columns until you reveal")
        w.reveal_action = menu.addAction("Reveal")
        w.reveal_action.setEnabled(False)
        menu.addSeparator()
        menu.addAction("Rate the selected cell…").triggered.connect(lambda _c=False: w.tabs.setCurrentWidget(w.review_panel))
        w.only_failures_action.triggered.connect(lambda on: self.set_only_failures(bool(on)))
        w.only_differs_action.triggered.connect(lambda on: self.set_only_differs(bool(on)))
        w.blind_action.triggered.connect(lambda on: self.set_blind(bool(on)))
        w.reveal_action.triggered.connect(lambda _c=False: self.reveal())
        w.review_panel.review_edited.connect(self._on_review_edited)
        w.review_panel.vote_cast.connect(self.vote)
        w.model.modelReset.connect(self.apply_filters)
        w.model.cells_flushed.connect(lambda _keys: self.apply_filters() if self._filtering() else None)

    def _filtering(self) -> bool:
        w = self._vw()
        return w.only_failures_action.isChecked() or w.only_differs_action.isChecked()
