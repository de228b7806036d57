"""The token lens in a text view (app/ui/widgets/token_view.py): tokens appended with shades
by probability, positions mapped back to tokens, long paragraphs broken at token boundaries,
hover and click on tokens, and the popup whose alternatives branch."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import QTextBrowser

from app.core.events import TokenChoice, TokenLogprob
from app.ui.widgets.token_view import (
    LEVELS,
    RUN_BREAK,
    LensColours,
    TokenDocument,
    TokenLens,
    TokenPopup,
    alternatives_html,
)

LIGHT = LensColours(QColor("#ffffff"), QColor("#000000"), False)
SURE = math.log(0.99)
UNSURE = math.log(0.3)


def tok(text: str, p: float, *top: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(text, math.log(p), tuple(TokenChoice(t, math.log(q)) for t, q in top))


def background(doc: QTextDocument, position: int) -> QColor | None:
    cursor = QTextCursor(doc)
    cursor.setPosition(position + 1)  # the format of the character before the cursor
    fmt: QTextCharFormat = cursor.charFormat()
    return fmt.background().color() if fmt.background().style() != Qt.BrushStyle.NoBrush else None


def test_levels_shade_unlikely_tokens_more_and_dark_palettes_less() -> None:
    assert LIGHT.level(SURE) == 0 and LIGHT.shade(0) is None
    levels = [LIGHT.level(math.log(p)) for p in (0.9, 0.5, 0.1, 0.001)]
    assert levels == sorted(levels) and levels[-1] == LEVELS - 1 and levels[0] >= 1
    dark = LensColours(QColor("#000000"), QColor("#ffffff"), True)
    assert dark.strongest < LIGHT.strongest
    assert LIGHT.effect(1.0, True) != LIGHT.effect(1.0, False)


def test_tokens_and_plain_text_map_back_to_their_tokens(qapp: Any) -> None:
    doc = QTextDocument()
    tokens = TokenDocument(doc, LIGHT)
    tokens.append(["Given: ", tok("The", 0.99), tok(" capital", 0.3), "", tok("", 0.5)])
    tokens.append([])
    assert doc.toPlainText() == "Given: The capital"
    assert len(tokens) == 3
    assert tokens.token_at(0) is None  # the plain start
    assert tokens.token_at(7) == 0 and tokens.token_at(9) == 0
    assert tokens.token_at(10) == 1 and tokens.token_at(17) == 1
    assert tokens.token_at(18) is None  # the empty token has no characters
    assert background(doc, 7) is None  # likely: no shade
    assert background(doc, 11) == LIGHT.shade(LIGHT.level(UNSURE))


def test_a_long_paragraph_is_broken_at_a_token_that_starts_with_a_space(qapp: Any) -> None:
    doc = QTextDocument()
    tokens = TokenDocument(doc, LIGHT)
    tokens.append([tok(" word", 0.99) for _ in range(RUN_BREAK // 5 + 10)])
    assert doc.blockCount() >= 2
    assert all(block_len <= RUN_BREAK + 5 for block_len in (b.length() for b in _blocks(doc)))
    last = len(tokens) - 1
    assert tokens.token_at(tokens.starts[last]) == last  # positions still map after the break


def _blocks(doc: QTextDocument) -> list[Any]:
    out, block = [], doc.begin()
    while block.isValid():
        out.append(block)
        block = block.next()
    return out


def test_restyle_draws_tokens_again_with_the_given_format(qapp: Any) -> None:
    doc = QTextDocument()
    colour = [QColor("#ff0000")]

    def format_for(index: int, token: TokenLogprob) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setBackground(colour[0])
        return fmt

    tokens = TokenDocument(doc, LIGHT, format_for)
    tokens.append([tok("a", 0.99), tok("b", 0.99)])
    assert background(doc, 1) == QColor("#ff0000")
    colour[0] = QColor("#00ff00")
    tokens.restyle([1])
    assert background(doc, 1) == QColor("#00ff00") and background(doc, 0) == QColor("#ff0000")


def test_the_hover_text_lists_the_alternatives_most_likely_first() -> None:
    token = tok(" Paris", 0.8, (" Lyon", 0.05), (" Paris", 0.8), ("<b>", 0.1))
    text = alternatives_html(token, hint="Click to branch")
    assert text.index("Paris") < text.index("&lt;b&gt;") < text.index("Lyon")  # escaped, ordered
    assert "\u2423Paris" in text and "80%" in text and "<i>Click to branch</i>" in text


def test_a_click_on_a_token_emits_its_index_and_hover_asks_for_its_tooltip(qtbot: Any) -> None:
    view = QTextBrowser()
    view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # as the cards set it
    qtbot.addWidget(view)
    tokens = TokenDocument(view.document(), LIGHT)
    tokens.append([tok("Hello", 0.99), tok(" world", 0.3)])
    asked: list[int] = []
    lens = TokenLens(view, tokens, lambda i: asked.append(i) or f"token {i}")
    view.resize(400, 200)
    view.show()
    qtbot.waitExposed(view)
    cursor = QTextCursor(view.document())
    cursor.setPosition(tokens.starts[1] + 2)
    point = view.cursorRect(cursor).center()
    assert lens.index_at(point) == 1
    with qtbot.waitSignal(lens.token_clicked, timeout=2000) as clicked:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert clicked.args[0] == 1
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(view.viewport(), QHelpEvent(QEvent.Type.ToolTip, point, view.viewport().mapToGlobal(point)))
    assert asked == [1]
    assert lens.index_at(QPoint(390, 190)) is None


def test_the_popup_branches_with_an_alternative_but_not_the_chosen_token(qtbot: Any) -> None:
    token = tok(" Paris", 0.8, (" Lyon", 0.05), (" Paris", 0.8))
    popup = TokenPopup(token, 3)
    qtbot.addWidget(popup)
    assert not popup.buttons[" Paris"].isEnabled() and popup.buttons[" Lyon"].isEnabled()
    with qtbot.waitSignal(popup.chosen, timeout=2000) as chosen:
        popup.buttons[" Lyon"].click()
    assert chosen.args == [3, " Lyon"]
    readonly = TokenPopup(token, 0, can_branch=False)
    qtbot.addWidget(readonly)
    assert not any(b.isEnabled() for b in readonly.buttons.values())


def test_positions_count_as_qt_does_for_emoji_accents_and_line_ends(qapp: Any) -> None:
    doc = QTextDocument()
    tokens = TokenDocument(doc, LIGHT)
    texts = ["caf\u00e9", " \U0001f600", " ok", "\r\n", "x", "\n", "\U0001f680\U0001f680", " end"]
    tokens.append(["Start: ", *(tok(t, 0.6 if i % 3 else 0.99) for i, t in enumerate(texts))])
    tokens.append([tok(" more", 0.6), "plain", tok("\u00fc", 0.6)])
    for i in range(len(tokens)):
        cursor = QTextCursor(doc)
        cursor.setPosition(tokens.starts[i])
        cursor.setPosition(tokens.ends[i], QTextCursor.MoveMode.KeepAnchor)
        want = tokens.tokens[i].text.replace("\r\n", "\n").replace("\n", "\u2029")
        assert cursor.selectedText() == want, i  # each token's place is exactly its text
        assert tokens.token_at(tokens.starts[i]) == i
    assert tokens.ends[-1] == doc.characterCount() - 1
    assert background(doc, tokens.starts[1]) == LIGHT.shade(LIGHT.level(math.log(0.6)))
    assert background(doc, tokens.starts[0]) is None
