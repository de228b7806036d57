"""The token lens in a text view: each token of an answer shaded by its probability (or, in
Compare with base, by how much the adapter moved it), its alternatives on hover, and a small
popup on click whose alternatives can be clicked (branch from a token).

:class:`TokenDocument` appends tokens to a ``QTextDocument`` as plain text with per-token
character formats - incremental and linear like the Markdown renderer (a handful of shared
formats, very long paragraphs broken at token boundaries, nothing ever re-parsed) - and keeps
where each token starts, so a position maps back to its token. :class:`TokenLens` adds hover
and click to any ``QTextBrowser`` showing such a document. Colours follow the palette (light
or dark): a shade is the palette's base colour mixed with a tint, the text keeps its colour.
"""

from __future__ import annotations

import bisect
import html
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QHelpEvent,
    QKeyEvent,
    QMouseEvent,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QPushButton,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.core.events import TokenLogprob
from app.core.lens import AdapterEffect, alternatives, percent, probability, signed, visible
from app.core.token_tape import TokenTape
from app.ui.widgets.common import laid_out

Piece = str | TokenLogprob | int
"""What a token view shows: a token (shaded, hoverable), given whole or as its index in the
document's :class:`~app.core.token_tape.TokenTape` (already there, the next one to draw), or
plain text (a given start whose tokens are not known, text a provider sent without tokens)."""
RUN_BREAK = 1500
"""A paragraph longer than this is broken at the next token that starts with a space (Qt
lays a whole paragraph out again on every append: quadratic for one huge paragraph)."""
HARD_BREAK = 2 * RUN_BREAK
LEVELS = 8
SURE = 0.95
"""A token at least this likely is not shaded."""
PROB_TINT = "#f97316"
RAISED_TINT = "#10b981"
LOWERED_TINT = "#a855f7"


def shade_level(logprob: float) -> int:
    """The probability level of a token: 0 (likely, no shade) .. LEVELS-1 (very unlikely)."""
    p = probability(logprob)
    return 0 if p >= SURE else min(LEVELS - 1, 1 + int((1.0 - p) * (LEVELS - 1)))


def _mix(base: QColor, tint: QColor, amount: float) -> QColor:
    a = max(0.0, min(1.0, amount))
    return QColor(round(base.red() + (tint.red() - base.red()) * a),
                  round(base.green() + (tint.green() - base.green()) * a),
                  round(base.blue() + (tint.blue() - base.blue()) * a))  # fmt: skip


@dataclass(frozen=True)
class LensColours:
    """The lens's colours for one palette: ``LEVELS`` probability shades (level 0: no shade)
    and the adapter effect's raised / lowered highlights."""

    base: QColor
    text: QColor
    dark: bool

    @classmethod
    def for_widget(cls, widget: QWidget) -> LensColours:
        """The colours for ``widget``'s palette."""
        pal = widget.palette()
        base = pal.color(QPalette.ColorRole.Base)
        return cls(base, pal.color(QPalette.ColorRole.Text), base.lightness() < 128)

    @property
    def strongest(self) -> float:
        """How far toward the tint the strongest shade goes (less on dark: text stays readable)."""
        return 0.5 if self.dark else 0.6

    def level(self, logprob: float) -> int:
        """0 (likely, no shade) .. LEVELS-1 (very unlikely)."""
        return shade_level(logprob)

    def shade(self, level: int) -> QColor | None:
        """The background of a probability level (None: level 0)."""
        if level <= 0:
            return None
        return _mix(self.base, QColor(PROB_TINT), self.strongest * level / (LEVELS - 1))

    def effect(self, strength: float, raised: bool) -> QColor:
        """The highlight of a token the adapter moved (``strength`` 0..1)."""
        return _mix(self.base, QColor(RAISED_TINT if raised else LOWERED_TINT), self.strongest * strength)


class TokenDocument:
    """Tokens appended to a QTextDocument (see the module doc). ``format_for(index, token)``
    overrides the probability shading (the adapter effect uses it)."""

    def __init__(self, document: QTextDocument, colours: LensColours,
                 format_for: Callable[[int, TokenLogprob], QTextCharFormat] | None = None,
                 tokens: TokenTape | None = None) -> None:
        self.doc = document
        self.colours = colours
        self.tokens = TokenTape() if tokens is None else tokens
        """The tokens (those drawn first): ``tokens`` when given, shared with its owner, who
        appends to it and passes indices; else the document's own, filled by :meth:`append`."""
        self.starts = array("q")
        self.ends = array("q")
        self._run = 0
        self._format_for = format_for
        self._plain = QTextCharFormat()
        self._plain.setForeground(colours.text)
        self._levels: list[QTextCharFormat] = []
        for level in range(LEVELS):
            fmt = QTextCharFormat()
            fmt.setForeground(colours.text)
            colour = colours.shade(level)
            if colour is not None:
                fmt.setBackground(colour)
            self._levels.append(fmt)

    def __len__(self) -> int:
        return len(self.starts)

    def append(self, pieces: Sequence[Piece]) -> None:
        """Append tokens and plain text at the end (one edit block). Neighbours that share a
        format go in with one insert (a shade bucket is one run, not one run per token); each
        token's place is counted (in UTF-16 units, as Qt counts), not asked of the cursor. A
        piece with a carriage return goes in on its own and is measured (Qt makes "\\r\\n" one
        position). One tight loop: it runs for every streamed token on the GUI thread."""
        if not pieces:
            return
        cursor = QTextCursor(self.doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        insert, format_for, levels, plain = cursor.insertText, self._format_for, self._levels, self._plain
        tokens, texts, logprobs = self.tokens, self.tokens.texts, self.tokens.logprobs
        add_start, add_end, level = self.starts.append, self.ends.append, shade_level
        index, pos, line = len(self.starts), cursor.position(), self._run
        parts: list[str] = []  # text of ``run_fmt`` not inserted yet
        run_fmt = plain
        try:
            for piece in pieces:
                if isinstance(piece, str):
                    text, fmt, is_token = piece, plain, False
                else:
                    if not isinstance(piece, int):
                        tokens.append(piece)
                    text, is_token = texts[index], True
                    fmt = levels[level(logprobs[index])] if format_for is None else format_for(index, tokens[index])
                start = pos
                if text:
                    n = len(text)
                    if line + n > RUN_BREAK and "\n" not in text and (text[0] == " " or line > HARD_BREAK):
                        if parts:
                            insert("".join(parts), run_fmt)
                            parts.clear()
                        cursor.insertBlock()
                        pos, line = pos + 1, 0
                        if text[0] == " ":  # the break stands for the space
                            text, n = text[1:], n - 1
                    nl = text.rfind("\n")
                    line = n - nl - 1 if nl >= 0 else line + n
                    if fmt is not run_fmt or "\r" in text:
                        if parts:
                            insert("".join(parts), run_fmt)
                            parts.clear()
                        run_fmt = fmt
                    start = pos
                    if "\r" in text:
                        insert(text, fmt)
                        pos = cursor.position()
                    elif text:
                        pos += n if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2
                        parts.append(text)
                if is_token:
                    add_start(start)
                    add_end(pos)
                    index += 1
            if parts:
                insert("".join(parts), run_fmt)
        finally:
            self._run = line
            cursor.endEditBlock()

    def token_at(self, position: int) -> int | None:
        """The index of the token at document ``position`` (None: plain text or nothing)."""
        i = bisect.bisect_right(self.starts, position) - 1
        if 0 <= i < len(self.starts) and position < self.ends[i]:
            return i
        return None

    def restyle(self, indices: Sequence[int]) -> None:
        """Draw these tokens again with ``format_for`` (e.g. once the adapter effect is known)."""
        if self._format_for is None:
            return
        cursor = QTextCursor(self.doc)
        cursor.beginEditBlock()
        try:
            for i in indices:
                cursor.setPosition(self.starts[i])
                cursor.setPosition(self.ends[i], QTextCursor.MoveMode.KeepAnchor)
                cursor.setCharFormat(self._format_for(i, self.tokens[i]))
        finally:
            cursor.endEditBlock()


def alternatives_html(token: TokenLogprob, *, hint: str = "") -> str:
    """The hover text of a token: its probability and its alternatives with percentages."""
    rows = "".join(
        f"<tr><td>{'<b>' if c.text == token.text else ''}{html.escape(visible(c.text))}"
        f"{'</b>' if c.text == token.text else ''}</td><td align='right'>&nbsp;&nbsp;{percent(c.logprob)}</td></tr>"
        for c in alternatives(token)
    )
    head = (f"<b>{html.escape(visible(token.text))}</b> &nbsp;{percent(token.logprob)}"
            f" &middot; logprob {signed(token.logprob)}")  # fmt: skip
    tail = f"<br><i>{html.escape(hint)}</i>" if hint else ""
    return f"<qt>{head}<table cellspacing='0'>{rows}</table>{tail}</qt>"


def effect_html(token: TokenLogprob, effect: AdapterEffect, index: int) -> str:
    """The hover text of a token in the adapter's answer: base vs. adapter probability."""
    e = effect.effects[index]
    mark = " (one of the most changed)" if index in effect.top else ""
    return (f"<qt><b>{html.escape(visible(token.text))}</b><br>base {percent(e.base_logprob)} \u2192 "
            f"with adapter {percent(e.adapter_logprob)}<br>\u0394 logprob {signed(e.diff)}{mark}</qt>")


class TokenLens(QObject):
    """Hover and click for a QTextBrowser showing a :class:`TokenDocument`: the tooltip is
    ``tooltip(index)``; a click on a token (not the end of a text selection) emits
    ``token_clicked(int index, QPoint global_pos)``."""

    token_clicked = Signal(int, QPoint)

    def __init__(self, view: QTextBrowser, document: TokenDocument, tooltip: Callable[[int], str]) -> None:
        super().__init__(view)
        self.view = view
        self.document = document
        self.tooltip = tooltip
        view.viewport().installEventFilter(self)
        view.viewport().setMouseTracking(True)

    def index_at(self, pos: QPoint) -> int | None:
        """The token under viewport position ``pos``."""
        return self.document.token_at(self.view.cursorForPosition(pos).position())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        """Tooltips and clicks on tokens."""
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            index = self.index_at(event.pos())
            if index is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.tooltip(index), self.view.viewport())
            return True
        if event.type() == QEvent.Type.MouseButtonRelease and isinstance(event, QMouseEvent):
            if event.button() == Qt.MouseButton.LeftButton and not self.view.textCursor().hasSelection():
                index = self.index_at(event.position().toPoint())
                if index is not None:
                    self.token_clicked.emit(index, event.globalPosition().toPoint())
        return False


class TokenPopup(QFrame):
    """The alternatives of one token in a small popup; clicking one emits
    ``chosen(int index, str text)`` (branch from this token) and closes the popup."""

    chosen = Signal(int, str)

    def __init__(self, token: TokenLogprob, index: int, parent: QWidget | None = None, *,
                 can_branch: bool = True) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("tokenPopup")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("QFrame#tokenPopup { background: palette(base); border: 1px solid palette(mid);"
                           " border-radius: 6px; } QPushButton { text-align: left; padding: 3px 8px; }")
        lay = laid_out(self, QVBoxLayout, (8, 6, 8, 8), 2)
        head = QLabel(f"Token {index + 1}: <b>{html.escape(visible(token.text))}</b> {percent(token.logprob)}")
        head.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(head)
        hint = QLabel("Click an alternative to branch: a new answer that says it here and goes on."
                      if can_branch else "Alternatives at this step.")  # fmt: skip
        hint.setStyleSheet("color: palette(placeholder-text);")
        hint.setWordWrap(True)
        hint.setMaximumWidth(320)
        lay.addWidget(hint)
        self.index = index
        self.buttons: dict[str, QPushButton] = {}
        for choice in alternatives(token):
            chosen = choice.text == token.text
            button = QPushButton(f"{visible(choice.text)}    {percent(choice.logprob)}" + ("   (chosen)" if chosen else ""))
            button.setFlat(True)
            button.setEnabled(can_branch and not chosen)
            if not chosen:
                button.setToolTip(f"Branch from here with {visible(choice.text)}")
                button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _c=False, t=choice.text: self._choose(t))
            lay.addWidget(button)
            self.buttons[choice.text] = button

    def _choose(self, text: str) -> None:
        self.close()
        self.chosen.emit(self.index, text)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        """Esc closes the popup."""
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)
