"""The probabilities view of one answer (app/ui/widgets/card_lens.py): streamed deltas replaced
by their tokens, a view built only when first shown and fed in bounded steps, a reopened
answer's text around its stored tokens, and the popup that asks to branch."""

from __future__ import annotations

import math
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from app.core.events import TokenChoice, TokenLogprob
from app.ui.widgets.card_lens import HOVER_HINT, AnswerLens


def tok(text: str, p: float = 0.9, *top: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(text, math.log(p), tuple(TokenChoice(t, math.log(q)) for t, q in top))


def make(qtbot: Any) -> tuple[QWidget, AnswerLens, list[QTextBrowser]]:
    owner = QWidget()
    qtbot.addWidget(owner)
    layout = QVBoxLayout(owner)
    made: list[QTextBrowser] = []

    def make_view() -> QTextBrowser:
        made.append(QTextBrowser())
        return made[-1]

    return owner, AnswerLens(owner, make_view, layout.addWidget), made


def test_streamed_deltas_are_replaced_by_their_tokens_and_the_view_waits_to_be_shown(qtbot: Any) -> None:
    _, lens, made = make(qtbot)
    lens.queue("The")
    lens.attach([tok("The")])
    lens.queue(" given")  # a delta that never gets tokens stays plain
    lens.queue(" end")
    lens.attach([tok(" end", 0.5)])
    lens.queue("")
    lens.attach([])
    assert [p if isinstance(p, str) else p.text for p in lens.pieces] == ["The", " given", " end"]
    assert [t.text for t in lens.tokens] == ["The", " end"] and lens.has_tokens
    assert made == [] and lens.plain_text() == "" and lens.pending_chars() == 0  # not built until shown
    lens.show(True)
    assert len(made) == 1 and lens.plain_text() == "The given end"
    assert "perplexity" in lens.sentence()
    lens.queue(" more")
    assert lens.pending_chars() == 5
    lens.flush()
    assert lens.plain_text() == "The given end more" and lens.pending_chars() == 0
    lens.show(False)
    lens.show(True)
    assert len(made) == 1  # built once


def test_flushing_in_steps_draws_a_bounded_amount_each_time(qtbot: Any) -> None:
    _, lens, _ = make(qtbot)
    lens.show(True)
    for i in range(10):
        lens.queue(f"w{i:02d} ")
        lens.attach([tok(f"w{i:02d} ")])
    assert lens.pending_chars() == 40  # queued while shown: drawn by the card's timed flushes
    assert lens.flush(8) is True and lens.plain_text() == "w00 w01 "
    while lens.flush(8):
        pass
    assert lens.plain_text().split() == [f"w{i:02d}" for i in range(10)]


def test_a_reopened_answer_shows_the_text_its_stored_tokens_do_not_cover(qtbot: Any) -> None:
    _, lens, _ = make(qtbot)
    lens.show(True)
    lens.set_tokens("Given start: one two", [tok("one"), tok(" two")])
    assert lens.plain_text() == "Given start: one two"
    assert len(lens.tokens) == 2 and lens.document is not None and lens.document.token_at(0) is None
    lens.restyle()  # the theme changed: drawn again, same text
    assert lens.plain_text() == "Given start: one two"
    lens.set_tokens("one two and the rest", [tok("one"), tok(" two")])  # stored tokens were cut
    assert lens.plain_text() == "one two and the rest"
    assert lens._tooltip(1).count(HOVER_HINT) == 1
    lens.can_branch = False
    assert HOVER_HINT not in lens._tooltip(1)


@pytest.mark.qt_log_ignore("does not support grabbing the keyboard")
def test_an_alternative_in_the_popup_asks_to_branch(qtbot: Any) -> None:
    _, lens, _ = make(qtbot)
    assert lens.open_popup(0) is None  # no view yet
    lens.show(True)
    lens.queue(" Paris")
    lens.attach([tok(" Paris", 0.8, (" Lyon", 0.1))])
    lens.flush()
    assert lens.open_popup(5) is None
    first = lens.open_popup(0)
    second = lens.open_popup(0)
    assert first is not None and second is not None and lens.popup is second and not first.isVisible()
    with qtbot.waitSignal(lens.branch_requested, timeout=2000) as asked:
        second.buttons[" Lyon"].click()
    assert asked.args == [0, " Lyon"]
    second.close()


def test_a_long_streamed_answer_keeps_no_objects_per_token_for_the_collector(qtbot: Any) -> None:
    import gc

    _, lens, _ = make(qtbot)
    lens.show(True)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(5000):  # as a stream comes: each token in its own event, dropped once handled
        lens.queue(f" w{i}")
        lens.attach([tok(f" w{i}", 0.6, (f" w{i}", 0.6), (" alt", 0.3))])
        if i % 500 == 499:
            lens.flush()
    gc.collect()
    assert len(gc.get_objects()) - before < 500  # tokens in lists would leave ~20k objects
    assert len(lens.tokens) == 5000 and lens.plain_text().endswith(" w4999")
    assert lens.document is not None and lens.document.tokens[4999].top[1].text == " alt"


@pytest.mark.qt_log_ignore("does not support grabbing the keyboard")
def test_a_long_stream_drawn_in_bounded_steps_ends_with_every_token_exact(qtbot: Any) -> None:
    """Streamed in small deltas (some never get tokens) and drawn in 1000-character steps, the
    view ends with the whole text, every token in its own place with the shade of its own
    probability, and the pending count agrees with what is left at every step."""
    from PySide6.QtGui import QTextCursor

    from app.ui.widgets.token_view import RUN_BREAK, LensColours

    _, lens, _ = make(qtbot)
    lens.show(True)
    words = [" w", "\u00e9t\u00e9", " \U0001f600", "\n", " long" * 3, "x", "\r\n", " end"]
    probs = [0.99, 0.9, 0.7, 0.5, 0.3, 0.1, 0.01, 0.96]
    text, steps = "", 0
    for i in range(6000):
        word = words[i % len(words)] + str(i % 10)
        lens.queue(word)
        text += word
        if i % 97 != 0:  # a delta without tokens stays plain text
            lens.attach([tok(word, probs[i % len(probs)])])
        if i % 500 == 499:
            more = True
            while more:
                before = lens.pending_chars()
                more = lens.flush(1000)
                steps += 1
                rest = "".join(p if isinstance(p, str) else p.text for p in lens.pieces[lens._drawn:])
                assert lens.pending_chars() == len(rest)
                assert 1000 <= before - len(rest) < 1020 or not more  # a step draws about 1000 characters
    while lens.flush(1000):
        steps += 1
    assert steps > 5 and lens.pending_chars() == 0
    doc = lens.document
    assert doc is not None and len(doc) == len(lens.tokens) == 6000 - len(range(0, 6000, 97))
    shown = lens.plain_text().replace("\u2029", "\n")
    assert shown.replace("\n", " ") == text.replace("\r\n", "\n").replace("\n", " ")  # breaks stand for spaces
    assert max(len(line) for line in shown.split("\n")) <= 2 * RUN_BREAK
    colours = LensColours.for_widget(lens.view)
    for i in range(len(doc)):
        token = lens.tokens[i]
        cursor = QTextCursor(doc.doc)
        cursor.setPosition(doc.starts[i])
        cursor.setPosition(doc.ends[i], QTextCursor.MoveMode.KeepAnchor)
        assert cursor.selectedText().replace("\u2029", "\n") in (token.text.replace("\r\n", "\n"),
                                                                  token.text.lstrip(" "))
        assert doc.token_at(doc.starts[i]) == i
        if doc.ends[i] > doc.starts[i]:
            cursor.setPosition(doc.ends[i])
            fmt = cursor.charFormat()  # the format of the token's last character
            shade = colours.shade(colours.level(token.logprob))
            assert (fmt.background().color() if fmt.background().style() != Qt.BrushStyle.NoBrush else None) == shade, i
    popup = lens.open_popup(len(doc) - 1)  # the last token still opens its alternatives
    assert popup is not None and popup.index == len(doc) - 1
    popup.close()
