"""The probabilities view of one answer card ("Show probabilities"): the answer's pieces (its
tokens with their probabilities, and plain text where none came), a token view beside the
Markdown body that is built when first shown and then fed incrementally while the answer
streams, hover and the alternatives popup.

Signals of :class:`AnswerLens`:
    branch_requested(int index, str text): an alternative of token ``index`` was clicked.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPoint, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QTextBrowser, QWidget

from app.core.events import TokenLogprob
from app.core.lens import lens_sentence, text_around
from app.core.token_tape import TokenTape

if TYPE_CHECKING:  # the token view's module loads when a lens is first shown, not at start-up
    from app.ui.widgets.token_view import Piece, TokenDocument, TokenLens, TokenPopup

HOVER_HINT = "Click for the alternatives; click one to branch from here."


class AnswerLens(QObject):
    """The pieces of one answer and, once shown, their token view (``make_view`` makes the
    text widget; the card places it with ``place``)."""

    branch_requested = Signal(int, str)

    def __init__(self, owner: QWidget, make_view: Callable[[], QTextBrowser],
                 place: Callable[[QTextBrowser], None]) -> None:
        super().__init__(owner)
        self._owner = owner
        self._make_view = make_view
        self._place = place
        self._pieces: list[str | int] = []  # plain text, or a token's index in ``tokens``
        self._ends = array("q")  # characters up to the end of each piece (pending and steps: no walk)
        self.tokens = TokenTape()
        """The answer's tokens, kept compactly (a long answer adds nothing for the garbage
        collector to walk); the token view reads them from here."""
        self.view: QTextBrowser | None = None
        self.document: TokenDocument | None = None
        self.interaction: TokenLens | None = None
        self.popup: TokenPopup | None = None
        self.shown = False
        self.can_branch = True
        self._drawn = 0
        self._last_plain = -1

    @property
    def has_tokens(self) -> bool:
        """True when the answer came with its tokens' probabilities."""
        return bool(self.tokens)

    def sentence(self, mean: float | None = None) -> str:
        """``mean logprob −0.42 · perplexity 1.52`` ('' without tokens; ``mean``: the whole
        answer's, stored apart when its stored tokens were cut)."""
        return lens_sentence(self.tokens, mean) if self.tokens else ""

    # -- pieces ----------------------------------------------------------------------------------
    @property
    def pieces(self) -> list[Piece]:
        """What the token view shows, in order: plain text and tokens."""
        return [p if isinstance(p, str) else self.tokens[p] for p in self._pieces]

    def queue(self, text: str) -> None:
        """A streamed delta (plain until :meth:`attach` gives its tokens)."""
        if text:
            self._last_plain = len(self._pieces)
            self._pieces.append(text)
            self._ends.append((self._ends[-1] if self._ends else 0) + len(text))

    def attach(self, tokens: Sequence[TokenLogprob]) -> bool:
        """The tokens of the delta queued last (they replace it in the token view); True when
        they are the answer's first (one call per streamed token: kept lean)."""
        if not tokens:
            return False
        pieces, ends = self._pieces, self._ends
        if self._last_plain == len(pieces) - 1 and self._last_plain >= self._drawn:
            pieces.pop()
            ends.pop()
        self._last_plain = -1
        first = len(self.tokens)
        self.tokens.extend(tokens)
        total = ends[-1] if ends else 0
        for token in tokens:
            total += len(token.text)
            ends.append(total)
        pieces.extend(range(first, first + len(tokens)))
        return first == 0

    def set_tokens(self, text: str, tokens: Sequence[TokenLogprob]) -> None:
        """A finished answer's tokens (from the history): the start the tokens do not cover,
        the tokens, then the rest of the text when the stored tokens were cut."""
        lead, tail = text_around(text, tokens)
        self.tokens = TokenTape(tokens)
        self._pieces = [*([lead] if lead else []), *range(len(self.tokens)), *([tail] if tail else [])]
        self._ends = array("q", accumulate(len(p) if isinstance(p, str) else len(self.tokens.text(p)) for p in self._pieces))
        self._last_plain = -1
        self._reset_view()

    def pending_chars(self) -> int:
        """Characters not drawn yet in the shown token view."""
        if not self.shown or not self._ends:
            return 0
        return self._ends[-1] - (self._ends[self._drawn - 1] if self._drawn else 0)

    # -- the view --------------------------------------------------------------------------------
    def show(self, on: bool) -> None:
        """Show (build on first use) or hide the token view."""
        self.shown = on
        if on and self.view is None:
            view = self._make_view()
            self.view = view
            self._place(view)
            self._reset_view()
        if self.view is not None:
            self.view.setVisible(on)
        if on:
            self.flush()

    def _reset_view(self) -> None:
        if self.view is None:
            return
        from app.ui.widgets.token_view import LensColours, TokenDocument, TokenLens

        self.view.clear()
        self.document = TokenDocument(self.view.document(), LensColours.for_widget(self._owner), tokens=self.tokens)
        self._drawn = 0
        if self.interaction is not None:
            self.interaction.document = self.document
        else:
            self.interaction = TokenLens(self.view, self.document, self._tooltip)
            self.interaction.token_clicked.connect(self._on_token_clicked)
        if self.shown:
            self.flush()

    def restyle(self) -> None:
        """Shade the tokens again in the palette's colours (the theme changed)."""
        self._reset_view()

    def flush(self, max_chars: int | None = None) -> bool:
        """Draw pieces not drawn yet (about ``max_chars`` of them); True when more are left."""
        pieces, ends, drawn = self._pieces, self._ends, self._drawn
        if not self.shown or self.document is None or drawn >= len(pieces):
            return False
        end = len(pieces)
        if max_chars is not None:  # up to the piece that reaches ``max_chars``
            end = min(end, bisect.bisect_left(ends, (ends[drawn - 1] if drawn else 0) + max_chars, drawn) + 1)
        self.document.append(pieces[drawn:end])
        self._drawn = end
        return end < len(pieces)

    def plain_text(self) -> str:
        """What the token view shows (long paragraphs may be broken into lines)."""
        return self.view.document().toPlainText() if self.view is not None else ""

    def _tooltip(self, index: int) -> str:
        from app.ui.widgets.token_view import alternatives_html

        assert self.document is not None
        return alternatives_html(self.document.tokens[index], hint=HOVER_HINT if self.can_branch else "")

    def _on_token_clicked(self, index: int, where: QPoint) -> None:
        self.open_popup(index, where)

    def open_popup(self, index: int, where: QPoint | None = None) -> TokenPopup | None:
        """The alternatives of token ``index`` in a popup at ``where`` (global; default: under
        the token)."""
        if self.document is None or not 0 <= index < len(self.document) or self.view is None:
            return None
        if self.popup is not None:
            self.popup.close()
            self.popup.deleteLater()
        from app.ui.widgets.token_view import TokenPopup

        popup = TokenPopup(self.document.tokens[index], index, self._owner, can_branch=self.can_branch)
        popup.chosen.connect(self.branch_requested.emit)
        if where is None:
            cursor = QTextCursor(self.view.document())
            cursor.setPosition(self.document.starts[index])
            where = self.view.viewport().mapToGlobal(self.view.cursorRect(cursor).bottomLeft())
        popup.move(where + QPoint(0, 4))
        popup.show()
        self.popup = popup
        return popup
