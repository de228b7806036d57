"""One message's card (app/ui/widgets/message_card.py): streamed text drawn in bounded flushes,
reasoning folded away when the answer starts, errors and notes, the figures line, the
probabilities view swapped with the Markdown without losing or parsing text twice, and the
actions that name their message."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtGui import QGuiApplication

from app.core.events import TokenLogprob
from app.core.lens import tokens_to_json
from app.ui.widgets.message_card import MessageCard


def card(qtbot: Any, role: str = "assistant", message_id: int | None = 7) -> MessageCard:
    c = MessageCard(role, message_id=message_id)
    qtbot.addWidget(c)
    c.show()
    return c


def tok(text: str, p: float = 0.5) -> TokenLogprob:
    return TokenLogprob(text, math.log(p))


def test_streamed_text_is_drawn_in_bounded_flushes_and_kept_whole(qtbot: Any) -> None:
    c = card(qtbot)
    c.streaming = True
    for piece in ("Hello ", "**world**", "! " * 20):
        c.queue(piece)
    assert c.pending_chars() == 55 and c.text.startswith("Hello **world**")
    assert c.flush(10) is True and c.pending_chars() == 45  # at most 10 characters drawn
    while c.flush(10):
        pass
    c.finish()
    assert c.text == "Hello **world**" + "! " * 20
    assert "world" in c.body.toPlainText() and "**" not in c.body.toPlainText()  # rendered as Markdown
    assert not c.streaming and c.status == "complete"


def test_reasoning_folds_away_when_the_answer_starts(qtbot: Any) -> None:
    c = card(qtbot)
    c.streaming = True
    c.queue_reasoning("Let me ")
    c.queue_reasoning("think.")
    c.flush()
    assert c.thinking is not None and c.reasoning == "Let me think."
    c.queue("Answer.")
    c.flush()
    c.finish(meta={"finish_reason": "stop"})
    assert c.text == "Answer." and c.reasoning == "Let me think."


def test_a_thinking_model_out_of_tokens_is_told_to_raise_max_tokens(qtbot: Any) -> None:
    c = card(qtbot)
    c.set_reasoning("a long thought", tokens=300)
    c.finish(meta={"finish_reason": "length"})
    assert c.error_label.isVisible() and "raise Max tokens" in c.error_label.text()


def test_errors_stops_notes_and_figures(qtbot: Any) -> None:
    failed = card(qtbot)
    failed.finish(status="error", error="the server said no")
    assert failed.error_label.text() == "Error: the server said no" and failed.status == "error"
    stopped = card(qtbot)
    stopped.finish(status="cancelled")
    assert stopped.error_label.text() == "Stopped by you."
    c = card(qtbot)
    c.set_text("Paris.")
    c.set_meta({"model": "openai:gpt-4o-mini", "adapter": "ada", "notes": ["no probabilities"],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2}})  # fmt: skip
    assert c.model_label.text() == "openai:gpt-4o-mini  +  LoRA ada"
    assert c.note_label.isVisible() and c.note_label.text() == "no probabilities"
    c.show_note("no probabilities")  # said once
    assert c.note_label.text() == "no probabilities"


def test_regenerate_instead_is_offered_only_for_a_stored_answer(qtbot: Any) -> None:
    stored = card(qtbot)
    stored.offer_regenerate("The server cannot continue a given start.")
    assert stored.regen_instead_button.isVisible()
    with qtbot.waitSignal(stored.regenerate_message_clicked, timeout=2000) as clicked:
        stored.regen_instead_button.click()
    assert clicked.args == [7]
    fresh = card(qtbot, message_id=None)
    fresh.offer_regenerate("x")
    assert fresh.error_label.isVisible() and not fresh.regen_instead_button.isVisible()


def test_probabilities_and_markdown_swap_without_losing_text(qtbot: Any) -> None:
    c = card(qtbot)
    assert c.lens_action is not None and not c.lens_action.isEnabled()
    c.streaming = True
    c.queue("The")
    c.attach_tokens([tok("The", 0.9)])
    assert c.lens_action.isEnabled()
    c.show_probabilities(True)
    assert c.showing_probabilities and not c.body.isVisible() and c.lens_action.isChecked()
    c.queue(" **end**")
    c.attach_tokens([tok(" **end**")])
    c.flush()
    c.finish(meta={"finish_reason": "stop"})
    assert c.lens.plain_text() == "The **end**"  # the token view shows the raw tokens
    assert "mean logprob" in c.figures.text()
    c.show_probabilities(False)  # the Markdown catches up, rendered once
    assert c.body.isVisible() and c.body.toPlainText().strip() == "The end" and c.text == "The **end**"
    assert not c.lens_action.isChecked()


def test_a_reopened_answer_gets_its_tokens_from_the_meta(qtbot: Any) -> None:
    c = card(qtbot)
    c.set_text("one two")
    c.set_meta({"tokens": tokens_to_json([tok("one"), tok(" two")]), "logprob_mean": -0.5})
    assert c.lens.has_tokens and c.lens_action is not None and c.lens_action.isEnabled()
    c.show_probabilities(True)
    assert c.lens.plain_text() == "one two"
    plain = card(qtbot)
    plain.set_text("no tokens")
    plain.show_probabilities(True)  # a finished answer without tokens keeps its Markdown
    assert not plain.showing_probabilities
    user = card(qtbot, role="user")
    user.show_probabilities(True)
    assert not user.showing_probabilities and user.lens_action is None


def test_actions_name_their_message(qtbot: Any) -> None:
    user = card(qtbot, role="user", message_id=3)
    user.set_text("Hi **there**")
    with qtbot.waitSignal(user.edit_clicked, timeout=2000) as edit:
        assert user.edit_button is not None
        user.edit_button.click()
    assert edit.args == [3]
    with qtbot.waitSignal(user.copied, timeout=2000):
        user.copy_button.click()
    assert QGuiApplication.clipboard().text() == "Hi **there**"
    with qtbot.waitSignal(user.fork_clicked, timeout=2000) as fork:
        user.fork_action.trigger()
    assert fork.args == [3]
    answer = card(qtbot, message_id=4)
    with qtbot.waitSignal(answer.code_requested, timeout=2000) as code:
        assert answer.code_menu is not None
        answer.code_menu.actions()[0].trigger()
    assert code.args[0] == 4
    with qtbot.waitSignal(answer.token_branch_clicked, timeout=2000) as branch:
        answer.lens.branch_requested.emit(2, " alt")
    assert branch.args == [4, 2, " alt"]
    unsaved = card(qtbot, message_id=None)
    assert not unsaved.menu_button.isVisible()  # nothing to fork or copy as code yet
    with qtbot.assertNotEmitted(unsaved.fork_clicked):
        unsaved.fork_action.trigger()


def test_the_token_view_draws_a_share_of_each_flush(qtbot: Any) -> None:
    from app.ui.widgets.message_card import LENS_SHARE

    c = card(qtbot)
    c.streaming = True
    c.show_probabilities(True)
    for i in range(2000):
        c.queue(f" t{i:04d}")  # 6 characters a token
        c.attach_tokens([tok(f" t{i:04d}")])
    before = c.lens.pending_chars()
    assert c.flush(3000) is True
    drawn = before - c.lens.pending_chars()
    assert 3000 // LENS_SHARE <= drawn <= 3000 // LENS_SHARE + 6
    while c.flush(3000):
        pass
    assert c.lens.plain_text().split() == [f"t{i:04d}" for i in range(2000)]
