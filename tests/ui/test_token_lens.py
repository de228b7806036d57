"""The token lens in the window (pytest-qt, qasync): View > Show probabilities shades a finished
answer and hover shows the alternatives, clicking an alternative branches (a sibling answer
that starts with the text before the token and the chosen alternative), a reopened answer
still shows its probabilities, a server that refuses logprobs gets a note and the answer still
comes, a server that cannot continue offers Regenerate instead."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QColor, QHelpEvent, QPalette, QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QToolTip

from app.core.lens import tokens_from_meta
from app.core.services import Services
from app.providers.mock import MockProvider
from app.ui.backend_manager import BackendManager
from app.ui.main_window import MainWindow
from app.ui.widgets.message_card import MessageCard
from tests.conftest import expect_signal
from tests.support.openai_server import OpenAIServer, text

PROMPT = "one two three four five"


@pytest.fixture
def window(qloop: Any, qapp: Any, services: Services) -> Any:
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend)
    win.resize(1024, 700)
    win.show()
    yield win
    win.close()
    qloop.run_until_complete(backend.aclose())


def _run(qloop: Any, coro: Any, timeout: float = 30) -> Any:
    return qloop.run_until_complete(asyncio.wait_for(coro, timeout))


async def _send(win: MainWindow, message: str, timeout: float = 10) -> str:
    done = expect_signal(win.session.answer_done)
    win.editor.set_message(message)
    QTest.mouseClick(win.editor.send_button, Qt.MouseButton.LeftButton)
    (_gen, status), = await done.wait(timeout)
    return str(status)


def _mock(win: MainWindow) -> MockProvider:
    provider = win.services.registry.get("mock")
    assert isinstance(provider, MockProvider)
    return provider


def _token_point(card: MessageCard, index: int) -> QPoint:
    """The middle of token ``index`` in the card's probabilities view (viewport coordinates)."""
    view, doc = card.lens.view, card.lens.document
    assert view is not None and doc is not None
    cursor = QTextCursor(view.document())
    cursor.setPosition(doc.starts[index] + 1)
    return view.cursorRect(cursor).center()


def _background(card: MessageCard, index: int) -> QColor:
    assert card.lens.view is not None and card.lens.document is not None
    cursor = QTextCursor(card.lens.view.document())
    cursor.setPosition(card.lens.document.starts[index] + 1)
    return cursor.charFormat().background().color()


def _distance(a: QColor, b: QColor) -> int:
    return abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue())


def test_probabilities_shade_a_finished_answer_and_hover_shows_the_alternatives(window: MainWindow,
                                                                                qloop: Any) -> None:
    window.probabilities_action.trigger()  # View > Show probabilities
    assert window.services.settings.show_probabilities is True
    assert _run(qloop, _send(window, PROMPT)) == "complete"
    assert _mock(window).requests[-1].params.logprobs == 5  # the request asked (K from the settings)
    card = window.transcript.cards()[-1]
    assert card.showing_probabilities and card.lens.view is not None and card.lens.view.isVisible()
    assert not card.body.isVisible()
    assert card.lens.plain_text() == PROMPT and len(card.lens.tokens) == 5
    # the mock's chosen tokens have p 0.8, 0.7, 0.6, 0.5: less likely is shaded more
    base = card.palette().color(QPalette.ColorRole.Base)  # what the shades are mixed into
    shades = [_distance(_background(card, i), base) for i in range(4)]
    assert shades == sorted(shades) and shades[0] > 0 and shades[3] > shades[0]
    mean = sum(math.log(p) for p in (0.8, 0.7, 0.6, 0.5, 0.8)) / 5
    assert f"mean logprob \u2212{-mean:.2f}" in card.figures.text()
    assert f"perplexity {math.exp(-mean):.2f}" in card.figures.text()

    viewport = card.lens.view.viewport()
    pos = _token_point(card, 1)
    QApplication.sendEvent(viewport, QHelpEvent(QEvent.Type.ToolTip, pos, viewport.mapToGlobal(pos)))
    tip = QToolTip.text()
    assert "\u2423two" in tip and "70%" in tip and "\u2423alt1" in tip and "15%" in tip  # (1-0.7)/2

    window.probabilities_action.trigger()  # off: the Markdown again, with the whole text
    assert not card.showing_probabilities and card.body.isVisible()
    assert card.body.toPlainText() == PROMPT
    _run(qloop, _send(window, "no lens now"))
    assert _mock(window).requests[-1].params.logprobs is None  # requests no longer ask


@pytest.mark.qt_log_ignore("does not support grabbing the keyboard")  # the popup, on the offscreen platform
def test_clicking_an_alternative_makes_a_sibling_answer_that_starts_with_it(window: MainWindow,
                                                                             qloop: Any) -> None:
    window.probabilities_action.trigger()

    async def scenario() -> None:
        assert await _send(window, PROMPT) == "complete"
        first = window.session.path[-1]
        card = window.transcript.cards()[-1]
        QTest.mouseClick(card.lens.view.viewport(), Qt.MouseButton.LeftButton, pos=_token_point(card, 2))  # type: ignore[union-attr]
        popup = card.lens.popup
        assert popup is not None and popup.isVisible()
        assert not popup.buttons[" three"].isEnabled()  # the chosen token
        done = expect_signal(window.session.answer_done)
        QTest.mouseClick(popup.buttons[" alt1"], Qt.MouseButton.LeftButton)
        (_gen, status), = await done.wait(10)
        assert status == "complete"
        request = _mock(window).requests[-1]
        assert request.prefix == "one two alt1"
        assert request.params.seed == first.params["seed"] and request.params.logprobs == 5  # same parameters
        sibling = window.session.path[-1]
        assert sibling.id != first.id and sibling.parent_id == first.parent_id
        assert sibling.content.startswith("one two alt1 ")
        assert window.services.history.get_message(first.id).content == PROMPT  # type: ignore[union-attr]
        new_card = window.transcript.cards()[-1]
        assert new_card.branch.text() == "\u2039 2/2 \u203a"
        assert [t.text for t in new_card.lens.tokens[:3]] == ["one", " two", " alt1"]  # the start is shaded too
        stored = tokens_from_meta(sibling.meta)
        assert "".join(t.text for t in stored) == sibling.content

    _run(qloop, scenario())


def test_a_reopened_answer_still_shows_its_probabilities(window: MainWindow, qloop: Any, tmp_path: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    window.probabilities_action.trigger()
    _run(qloop, _send(window, PROMPT))
    cid = window.session.conversation_id
    assert cid is not None
    window.conversations.new_conversation()
    window.probabilities_action.trigger()  # off
    window.open_conversation(cid)
    card = window.transcript.cards()[-1]
    assert not card.showing_probabilities and card.body.toPlainText() == PROMPT
    assert card.lens_action is not None and card.lens_action.isEnabled()  # this answer has its tokens
    card.lens_action.trigger()  # the card's "⋯" > Show probabilities
    assert card.showing_probabilities and card.lens.plain_text() == PROMPT
    assert "perplexity" in card.figures.text()
    user_card = window.transcript.cards()[0]
    assert user_card.lens_action is None
    window.probabilities_action.trigger()  # on: reopened answers show theirs too
    window.open_conversation(cid)
    assert window.transcript.cards()[-1].showing_probabilities
    path = tmp_path / "c.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(path), "")))
    window.conversations.export_json()
    answer = [m for m in json.loads(path.read_text(encoding="utf-8"))["messages"] if m["role"] == "assistant"][0]
    assert [t["text"] for t in answer["meta"]["tokens"]] == ["one", " two", " three", " four", " five"]


def test_a_server_that_refuses_logprobs_gets_a_note_and_the_answer_still_comes(window: MainWindow,
                                                                               qloop: Any) -> None:
    with OpenAIServer(reject_logprobs=True) as server:
        window.backend.set_model("openai:test-model", endpoint=server.base_url)
        window.probabilities_action.trigger()
        server.enqueue(text("Paris", " is", " big"))
        assert _run(qloop, _send(window, "Capital?")) == "complete"
    card = window.transcript.cards()[-1]
    assert card.text == "Paris is big" and card.body.toPlainText() == "Paris is big"
    assert "does not give token probabilities" in card.note_label.text() and card.note_label.isVisible()
    assert "does not give token probabilities" in window.status_label.text()
    assert not card.showing_probabilities  # nothing to shade: the Markdown stays
    stored = window.session.path[-1]
    assert "does not give token probabilities" in " ".join(stored.meta.get("notes", []))
    window.open_conversation(window.session.conversation_id or "")
    assert "does not give token probabilities" in window.transcript.cards()[-1].note_label.text()


def test_a_server_that_cannot_continue_says_so_and_offers_regenerate(window: MainWindow, qloop: Any,
                                                                    openai_server: OpenAIServer) -> None:
    services = window.services
    services.settings.endpoints = [openai_server.endpoint("OpenAI", kind="openai", needs_key=True),
                                   *[e for e in services.settings.endpoints if e.name != "OpenAI"]]
    services.secrets.set("openai", "sk-test-lens-0123456789")
    window.backend.set_model("openai:gpt-4o-mini")
    window.probabilities_action.trigger()
    openai_server.enqueue(text("Paris", " is", " big"), text("Lyon"))

    async def scenario() -> None:
        assert await _send(window, "Capital?") == "complete"
        first = window.session.path[-1]
        card = window.transcript.cards()[-1]
        assert [t.text for t in card.lens.tokens] == ["Paris", " is", " big"]
        done = expect_signal(window.session.answer_done)
        assert window.chat.branch_from_token(first.id, 1, "alt1") is not None
        (_gen, status), = await done.wait(10)
        assert status == "error"
        failed = window.transcript.cards()[-1]
        assert "cannot continue" in failed.error_label.text() and failed.regen_instead_button.isVisible()
        assert len(openai_server.chat_requests) == 1  # nothing was sent for the branch
        done = expect_signal(window.session.answer_done)
        QTest.mouseClick(failed.regen_instead_button, Qt.MouseButton.LeftButton)
        (_gen, status), = await done.wait(10)
        assert status == "complete" and window.transcript.cards()[-1].text == "Lyon"
        kept = [m.content for m in services.history.messages(window.session.conversation_id or "")]
        assert kept.count("Paris is big") == 1 and "Lyon" in kept  # nothing lost

    _run(qloop, scenario())


def test_a_long_answer_reopens_with_its_first_tokens_and_the_mean_of_all(window: MainWindow, qloop: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import app.core.lens as lens

    monkeypatch.setattr(lens, "STORED_TOKENS_MAX", 3)
    window.probabilities_action.trigger()
    _run(qloop, _send(window, PROMPT))
    live = window.transcript.cards()[-1]
    assert len(live.lens.tokens) == 5  # the streamed card has them all
    footer = live.figures.text()
    answer = window.session.path[-1]
    assert len(answer.meta["tokens"]) == 3 and answer.meta["tokens_total"] == 5
    window.open_conversation(window.session.conversation_id or "")
    card = window.transcript.cards()[-1]
    assert card.showing_probabilities and len(card.lens.tokens) == 3
    assert card.lens.plain_text() == PROMPT  # the rest shown as plain text
    assert card.figures.text() == footer  # the mean of all 5 tokens
    assert window.chat.branch_from_token(answer.id, 4, " alt1") is None
    assert "first 3 tokens" in window.status_label.text()


def _stored(window: MainWindow, message_id: int) -> dict[str, Any]:
    row = window.services.history.get_message(message_id)
    assert row is not None
    return dict(row.meta)


def _long_answer(window: MainWindow, qloop: Any) -> tuple[MessageCard, int]:
    """A 1,500-token answer with probabilities (more than the history keeps): its card and id."""
    window.backend.set_model("mock:tokens?n=1500")
    window.editor.max_tokens.setValue(0)  # no limit: the whole answer
    window.probabilities_action.trigger()
    assert _run(qloop, _send(window, "count")) == "complete"
    card, answer_id = window.transcript.cards()[-1], window.session.leaf_id
    assert answer_id is not None and len(card.lens.tokens) == 1500
    return card, answer_id


def test_a_long_answers_tokens_are_stored_exactly_as_the_lens_has_them_in_short_steps(window: MainWindow,
                                                                                      qloop: Any) -> None:
    card, answer_id = _long_answer(window, qloop)
    writer = window.session.lens_writer
    while writer.pending():  # each step makes or encodes a piece; only the last writes
        assert "tokens" not in _stored(window, answer_id)
        writer.step()
    meta = _stored(window, answer_id)
    assert meta["tokens"] == [t.to_json() for t in card.lens.tokens[:1024]] and meta["tokens_total"] == 1500
    assert tokens_from_meta(meta) == tuple(card.lens.tokens[:1024])  # every probability and alternative
    assert window.session.tree.by_id[answer_id].meta["tokens"] == meta["tokens"]  # the session's tree too


def test_closing_the_window_while_the_tokens_wait_writes_them(window: MainWindow, qloop: Any) -> None:
    card, answer_id = _long_answer(window, qloop)
    writer = window.session.lens_writer
    for _ in range(2):
        if writer.pending():
            writer.step()  # the list made, a piece encoded: the rest waits
    window.close()
    assert not writer.pending()
    meta = _stored(window, answer_id)
    assert meta["tokens"] == [t.to_json() for t in card.lens.tokens[:1024]] and meta["tokens_total"] == 1500
