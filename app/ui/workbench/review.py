"""The Workbench's Review tab: a person's verdict on the selected cell (Pass / Fail, a 1-5
score, a comment) and, when two cells of a row are selected, which answer is better (or a
tie), with the variants' win rates. It only shows and asks; the window keeps the review
with the run (:mod:`app.ui.workbench.reviewing`).

Signals:
    review_edited(object passed, object score, str comment): the person changed the
        selected cell's verdict (True / False / None), score (1-5 / None) or comment.
    vote_cast(str winner): "a" (the left cell is better), "b", "tie", or "" (forget the vote).
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.grid.review import SCORES, CellReview
from app.ui.workbench.details import titled_pane

HINT = "Select a cell to rate it: Pass / Fail, a score and a comment; select two cells of a row to pick the better."
COMMENT_DEBOUNCE_MS = 600


def _toggle(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setCheckable(True)
    button.setToolTip(tip)
    return button


class ReviewPanel(QWidget):
    """See the module doc."""

    review_edited = Signal(object, object, str)
    vote_cast = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay, self.title = titled_pane(self, HINT)
        lay.addWidget(self.title)
        self.cell_box = QWidget()
        cell_lay = QVBoxLayout(self.cell_box)
        cell_lay.setContentsMargins(0, 0, 0, 0)
        verdicts = QHBoxLayout()
        self.pass_button = _toggle("✔ Pass", "This answer is good (overrides the checks' verdict in the summary)")
        self.fail_button = _toggle("✘ Fail", "This answer is not good (overrides the checks' verdict in the summary)")
        verdicts.addWidget(self.pass_button)
        verdicts.addWidget(self.fail_button)
        verdicts.addSpacing(12)
        verdicts.addWidget(QLabel("Score"))
        self.score_buttons: list[QPushButton] = []
        for n in SCORES:
            button = _toggle(str(n), f"Score {n} of 5 (click again to clear)")
            button.setFixedWidth(30)
            self.score_buttons.append(button)
            verdicts.addWidget(button)
        verdicts.addStretch(1)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget this cell's verdict, score and comment")
        verdicts.addWidget(self.clear_button)
        cell_lay.addLayout(verdicts)
        self.comment = QPlainTextEdit()
        self.comment.setPlaceholderText("A comment on this answer (kept with the run)")
        self.comment.setMaximumHeight(70)
        cell_lay.addWidget(self.comment)
        lay.addWidget(self.cell_box)
        self.pair_box = QWidget()
        pair_lay = QHBoxLayout(self.pair_box)
        pair_lay.setContentsMargins(0, 0, 0, 0)
        pair_lay.addWidget(QLabel("Better:"))
        self.left_button = _toggle("◀ left", "The left cell's answer is better")
        self.tie_button = _toggle("Tie", "Both answers are as good")
        self.right_button = _toggle("right ▶", "The right cell's answer is better")
        self.unvote_button = QPushButton("Clear vote")
        for button in (self.left_button, self.tie_button, self.right_button):
            pair_lay.addWidget(button, 1)
        pair_lay.addWidget(self.unvote_button)
        lay.addWidget(self.pair_box)
        self.wins = QLabel("")
        self.wins.setWordWrap(True)
        self.wins.setStyleSheet("color: palette(placeholder-text);")
        lay.addWidget(self.wins)
        lay.addStretch(1)
        self._comment_timer = QTimer(self)
        self._comment_timer.setSingleShot(True)
        self._comment_timer.setInterval(COMMENT_DEBOUNCE_MS)
        self._loading = False
        self._wire()
        self.show_cell(None)
        self.show_pair(None)

    def _wire(self) -> None:
        self.pass_button.clicked.connect(lambda on: self._pick_verdict(True if on else None))
        self.fail_button.clicked.connect(lambda on: self._pick_verdict(False if on else None))
        for n, button in zip(SCORES, self.score_buttons, strict=True):
            button.clicked.connect(lambda on, n=n: self._pick_score(n if on else None))
        self.clear_button.clicked.connect(self.clear)
        self.comment.textChanged.connect(self._on_comment_typed)
        self._comment_timer.timeout.connect(self._emit)  # a fired single-shot timer is no longer active
        for button, winner in ((self.left_button, "a"), (self.tie_button, "tie"), (self.right_button, "b")):
            button.clicked.connect(lambda _on, w=winner: self._vote(w))
        self.unvote_button.clicked.connect(lambda: self._vote(""))

    # -- what the window shows ------------------------------------------------------------------
    def show_cell(self, review: CellReview | None, title: str = "", *, why_not: str = "") -> None:
        """Show the selected cell's review (``why_not``: why it cannot be rated; ``title`` ""
        for no cell)."""
        self.commit()
        self._loading = True
        try:
            self.title.setText(title or HINT)
            self.cell_box.setVisible(bool(title))
            self.cell_box.setEnabled(not why_not)
            if why_not:
                self.title.setText(f"{title} — {why_not}")
            self._set(review)
        finally:
            self._loading = False

    def _set(self, review: CellReview | None) -> None:
        self.pass_button.setChecked(review is not None and review.passed is True)
        self.fail_button.setChecked(review is not None and review.passed is False)
        for n, button in zip(SCORES, self.score_buttons, strict=True):
            button.setChecked(review is not None and review.score == n)
        text = review.comment if review is not None else ""
        if self.comment.toPlainText() != text:
            self.comment.setPlainText(text)
        self._comment_timer.stop()

    def show_pair(self, titles: tuple[str, str] | None, winner: str | None = None, heading: str = "") -> None:
        """Two cells of a row are selected (their titles, left then right, and the vote on
        them: "a", "b", "tie" or None; ``heading`` names the row); None hides the vote."""
        self.pair_box.setVisible(titles is not None)
        if titles is None:
            return
        if heading:
            self.title.setText(f"{heading}: which answer is better?")
        self.left_button.setText(f"◀ {titles[0]}")
        self.right_button.setText(f"{titles[1]} ▶")
        for button, w in ((self.left_button, "a"), (self.tie_button, "tie"), (self.right_button, "b")):
            button.setChecked(winner == w)

    def show_win_rates(self, text: str) -> None:
        """The variants' win rates (a line)."""
        self.wins.setText(text)

    # -- what the person does -------------------------------------------------------------------
    def passed(self) -> bool | None:
        """The verdict the buttons show."""
        return True if self.pass_button.isChecked() else False if self.fail_button.isChecked() else None

    def score(self) -> int | None:
        """The score the buttons show."""
        return next((n for n, b in zip(SCORES, self.score_buttons, strict=True) if b.isChecked()), None)

    def _emit(self) -> None:
        if not self._loading and not self.cell_box.isHidden() and self.cell_box.isEnabled():
            self.review_edited.emit(self.passed(), self.score(), self.comment.toPlainText())

    def _pick_verdict(self, passed: bool | None) -> None:
        self.pass_button.setChecked(passed is True)
        self.fail_button.setChecked(passed is False)
        self._comment_timer.stop()
        self._emit()

    def _pick_score(self, score: int | None) -> None:
        for n, button in zip(SCORES, self.score_buttons, strict=True):
            button.setChecked(n == score)
        self._comment_timer.stop()
        self._emit()

    def _on_comment_typed(self) -> None:
        if not self._loading:
            self._comment_timer.start()

    def commit(self) -> None:
        """Take in a comment still being typed (also done a moment after typing stops)."""
        if self._comment_timer.isActive():
            self._comment_timer.stop()
            self._emit()

    def clear(self) -> None:
        """Forget the cell's verdict, score and comment."""
        self._loading = True
        try:
            self._set(None)
        finally:
            self._loading = False
        self._emit()

    def _vote(self, winner: str) -> None:
        for button, w in ((self.left_button, "a"), (self.tie_button, "tie"), (self.right_button, "b")):
            button.setChecked(winner == w)
        self.vote_cast.emit(winner)
