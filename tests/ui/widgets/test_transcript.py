"""The streaming transcript: incremental Markdown rendering, code copy, coalesced flushes."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication, QTextDocument

from app.providers.mock import DEMO_MARKDOWN, split_tokens
from app.ui.widgets.transcript import TranscriptView, format_figures
from app.ui.widgets.transcript_render import BIG_BLOCK, RAW_RUN, BlockSplitter, StreamRenderer


def _render_streamed(text: str, piece: int = 1) -> tuple[QTextDocument, StreamRenderer]:
    doc = QTextDocument()
    r = StreamRenderer(doc)
    toks = split_tokens(text)
    for i in range(0, len(toks), piece):
        r.feed("".join(toks[i : i + piece]))
    r.finish()
    return doc, r


def test_streamed_markdown_renders_like_whole_text(qapp: Any) -> None:
    whole = QTextDocument()
    StreamRenderer(whole).set_text(DEMO_MARKDOWN)
    streamed, r = _render_streamed(DEMO_MARKDOWN)
    assert streamed.toPlainText() == whole.toPlainText()
    assert "**" not in streamed.toPlainText()  # bold was rendered, not shown raw
    assert "def fib(n: int) -> int:" in streamed.toPlainText()
    assert r.code_blocks == [DEMO_MARKDOWN.split("```python\n")[1].split("```")[0]]
    assert r.text == DEMO_MARKDOWN


def test_code_is_highlighted_with_inline_colours(qapp: Any) -> None:
    doc, _ = _render_streamed("```python\ndef f():\n    return 1\n```\n")
    html = doc.toHtml()
    assert "color:#" in html.replace(" ", "")  # Pygments inline styles survived
    assert "copy:0" in html


def test_finished_blocks_are_never_touched_again(qapp: Any) -> None:
    doc = QTextDocument()
    doc.documentLayout()  # change notifications need a layout
    r = StreamRenderer(doc)
    changes: list[tuple[int, int, int]] = []
    doc.contentsChange.connect(lambda pos, removed, added: changes.append((pos, removed, added)))
    r.feed("First paragraph with **bold**.\n\n")
    frozen = doc.characterCount() - 1
    first = doc.toPlainText()
    changes.clear()
    for tok in split_tokens("Second paragraph streams in many pieces " * 20):
        r.feed(tok)
    assert changes and min(pos for pos, _, _ in changes) >= frozen - 1
    assert doc.toPlainText().startswith(first)


def test_long_tail_switches_to_plain_appends_in_bounded_paragraphs(qapp: Any) -> None:
    doc = QTextDocument()
    r = StreamRenderer(doc)
    text = "".join(f" tok{i}" for i in range(8000))  # one paragraph, ~60k chars
    for i in range(0, len(text), 300):
        r.feed(text[i : i + 300])
    r.finish()
    assert len(text) > BIG_BLOCK
    plain = doc.toPlainText()
    assert plain.replace("\n", " ").split() == text.split()
    longest = max(doc.findBlockByNumber(i).length() for i in range(doc.blockCount()))
    assert longest <= RAW_RUN + 20  # no paragraph grows without bound (Qt relayouts it per append)


def test_block_splitter_handles_fences_and_blank_lines() -> None:
    s = BlockSplitter()
    assert s.feed_line("para one") is None
    block = s.feed_line("")
    assert block is not None and block.text == "para one\n" and not block.code
    assert s.feed_line("```py") is None
    assert s.feed_line("") is None  # blank lines inside a fence do not end it
    assert s.feed_line("x = 1") is None
    code = s.feed_line("```")
    assert code is not None and code.code and code.language == "py" and code.body == "\nx = 1\n"


def test_transcript_coalesces_and_copies(qloop: Any, qapp: Any) -> None:
    view = TranscriptView()
    view.resize(700, 500)
    view.show()
    card = view.start_stream("g1", title="mock:echo")
    for tok in split_tokens(DEMO_MARKDOWN):
        view.append("g1", tok)
    assert card.body.toPlainText() == ""  # nothing drawn until the timer flushes
    view.flush()
    assert "quick answer" in card.body.toPlainText()
    view.finish_stream("g1", meta={"model": "mock:echo", "prompt_tokens": 3, "completion_tokens": 7,
                                   "cost_usd": "0", "ttft_s": 0.01, "tokens_per_s": 50.0})
    assert not view.is_streaming()
    assert "3 in / 7 out tokens" in card.figures.text() and "free" in card.figures.text()
    assert card.regen_button.isVisibleTo(card)
    card.body.anchorClicked.emit(QUrl("copy:0"))
    assert QGuiApplication.clipboard().text().startswith("def fib(n: int) -> int:")
    card.copy_text()
    assert QGuiApplication.clipboard().text() == DEMO_MARKDOWN
    view.clear()
    assert view.cards() == []


def test_error_and_cancel_are_shown_on_the_card(qapp: Any) -> None:
    view = TranscriptView()
    view.start_stream("a")
    view.append("a", "partial text")
    view.finish_stream("a", status="error", error="Server failed.")
    card = view.card("a")
    assert card is not None
    assert card.body.toPlainText() == "partial text"
    assert "Server failed." in card.error_label.text() and card.error_label.isVisibleTo(card)


def test_format_figures_marks_estimates() -> None:
    line = format_figures({"prompt_tokens": 1200, "completion_tokens": 5, "estimated": True,
                           "cost_usd": "0.000125", "ttft_s": 0.5, "tokens_per_s": 12.34})
    assert line == "~1,200 in / ~5 out tokens · $0.000125 · first token 0.50 s · 12.3 tok/s"
    reused = format_figures({"prompt_tokens": 37, "cached_prompt_tokens": 30, "completion_tokens": 11})
    assert reused == "37 in (30 cached) / 11 out tokens"  # a prefix cache's share of the prompt


def test_fast_stream_is_drawn_in_bounded_chunks_before_finishing(qloop: Any, qapp: Any) -> None:
    import asyncio

    from app.ui.widgets.transcript import FLUSH_CHUNK
    from app.ui.widgets.transcript_render import TAIL_RENDER_LIMIT
    from tests.conftest import wait_signal

    view = TranscriptView()
    view.show()
    card = view.start_stream("k")
    text = "".join(f" tok{i}" for i in range(5000))  # ~39k chars arrive at once
    view.append("k", text)
    drawn: list[int] = []
    card.body.document().contentsChange.connect(lambda _p, _r, added: drawn.append(added))
    view.finish_stream("k", meta={"prompt_tokens": 9, "completion_tokens": 5000})
    assert view.is_streaming()  # still draining: the end is drawn in bounded chunks

    async def scenario() -> None:
        (key,) = await wait_signal(view.stream_finished, 10)
        assert key == "k"

    qloop.run_until_complete(asyncio.wait_for(scenario(), 15))
    assert not view.is_streaming() and card.status == "complete"
    assert card.body.toPlainText().split() == text.split()
    # one draw is at most a chunk plus the small rendered tail it replaces when going plain
    assert len(drawn) > 3 and max(drawn) <= FLUSH_CHUNK + TAIL_RENDER_LIMIT + 200
    assert "5,000 out tokens" in card.figures.text()


def test_reasoning_streams_into_a_collapsible_thinking_section(qloop: Any, qapp: Any) -> None:
    view = TranscriptView()
    view.resize(700, 500)
    view.show()
    card = view.start_stream("g1", title="mock:echo")
    for tok in ("Let", " me", " think."):
        view.append_reasoning("g1", tok)
    assert card.thinking is None and card.reasoning == "Let me think."  # drawn on the next flush
    view.flush()
    section = card.thinking
    assert section is not None and section.is_expanded() and section.thinking
    assert section.text == "Let me think." and "Thinking\u2026 \u00b7 3 tokens" in section.toggle.text()
    assert card.body.toPlainText() == ""
    doc_before = section.view.document()
    view.append_reasoning("g1", " Done")
    view.append("g1", "Four.")
    view.flush()  # the answer starts: the reasoning folds away, appended in the same document
    assert section.view.document() is doc_before and section.text == "Let me think. Done"
    assert not section.is_expanded() and "\u00b7 4 tokens" in section.toggle.text()
    assert card.body.toPlainText() == "Four." and card.text == "Four."
    section.toggle.click()
    assert section.is_expanded() and section.view.isVisibleTo(card)
    view.finish_stream("g1", meta={"reasoning": "Let me think. Done", "reasoning_tokens": 4})
    assert section.is_expanded()  # the user's choice stands
    restored = view.add_message("m2", "assistant", "Four.", meta={"model": "x", "reasoning": "old", "reasoning_tokens": 7})
    assert restored.thinking is not None and not restored.thinking.is_expanded()
    assert restored.thinking.text == "old" and "7 tokens" in restored.thinking.toggle.text()
    plain = view.add_message("m3", "assistant", "No thoughts.", meta={"model": "x"})
    assert plain.thinking is None


def test_an_answer_cut_while_thinking_says_why_it_is_empty(qapp: Any) -> None:
    view = TranscriptView()
    card = view.start_stream("g1")
    view.append_reasoning("g1", "so many thoughts")
    view.finish_stream("g1", meta={"finish_reason": "length", "reasoning": "so many thoughts"})
    assert "spent all its tokens thinking" in card.error_label.text() and card.error_label.isVisibleTo(card)
    restored = view.add_message("m1", "assistant", "", meta={"finish_reason": "length", "reasoning": "x"})
    assert "Max tokens" in restored.error_label.text()
    answered = view.add_message("m2", "assistant", "Yes.", meta={"finish_reason": "length", "reasoning": "x"})
    assert answered.error_label.text() == ""


def test_branch_switcher_and_fork_in_the_message_menu(qapp: Any) -> None:
    view = TranscriptView()
    steps: list[tuple[int, int]] = []
    forks: list[int] = []
    view.branch_requested.connect(lambda mid, step: steps.append((mid, step)))
    view.fork_requested.connect(forks.append)
    single = view.add_message("a", "user", "hi", message_id=1)
    card = view.add_message("b", "assistant", "answer", message_id=2, branch=(2, 3))
    view.show()
    assert not single.branch.isVisible() and card.branch.isVisible()
    assert card.branch.text() == "\u2039 2/3 \u203a" and card.branch.label.text() == "2/3"
    card.branch.prev_button.click()
    card.branch.next_button.click()
    assert steps == [(2, -1), (2, 1)]
    assert [a.text() for a in card.menu.actions()] == ["Fork from here", "Copy", "Copy as code", "Show probabilities"]
    card.fork_action.trigger()
    assert forks == [2]
    streaming = view.start_stream("c", message_id=3, branch=(3, 3))
    assert streaming.branch.isVisibleTo(streaming) and streaming.branch.text() == "\u2039 3/3 \u203a"
    view.deleteLater()


def test_a_long_figures_line_wraps_instead_of_widening_the_card(qapp: Any) -> None:
    """Seen in a real window at 1024x700: the lens's longer footer pushed the card past the view."""
    view = TranscriptView()
    view.resize(420, 300)
    view.show()
    card = view.add_message("a", "assistant", "Short.", message_id=1,
                            meta={"model": "m", "prompt_tokens": 123456, "completion_tokens": 654321, "cost_usd": "0.1234",
                                  "ttft_s": 0.25, "tokens_per_s": 31.5, "load_s": 19.7, "estimated": True})  # fmt: skip
    qapp.processEvents()
    assert card.minimumSizeHint().width() < view.viewport().width()


LONG_PATH = "local:/home/someone/models/" + "a-very-long-folder-name/" * 6 + "model.safetensors"


def test_cards_never_exceed_the_transcript_and_long_headers_elide(qapp: Any) -> None:
    """Seen in a real window at 1024x700: a LoRA answer's or a long local path's header pushed the
    card (its Edit / Regenerate / ⋯ actions) past the transcript's right edge."""
    from PySide6.QtCore import QRect

    view = TranscriptView()
    view.resize(520, 400)
    view.show()
    code = "```python\nprint('" + "x" * 300 + "')\n```\n"
    cards = [
        view.add_message("u", "user", "q", message_id=1),
        view.add_message("a", "assistant", "Unbroken" + "y" * 400 + "\n\n" + code, message_id=2,
                         meta={"model": LONG_PATH, "adapter": "my-adapter-" + "z" * 80}),
        view.add_message("b", "assistant", "Short.", message_id=3,
                         meta={"model": "mock:fixed?text=" + "long%20answer%20" * 20}),
    ]
    view.start_stream("s", title=LONG_PATH, message_id=4)
    cards.append(view.card("s"))  # type: ignore[arg-type]
    for _ in range(3):
        qapp.processEvents()
    inner = view.viewport()
    for card in cards:
        assert card is not None
        where = QRect(card.mapTo(inner, card.rect().topLeft()), card.size())
        assert where.right() <= inner.width(), (card.model_label.text(), where, inner.width())
        for button in (card.copy_button, card.menu_button):
            spot = QRect(button.mapTo(inner, button.rect().topLeft()), button.size())
            assert inner.rect().contains(spot), button.text()
        # the answer wraps: no line of it is wider than the body, the code block included
        assert card.body.document().idealWidth() <= card.body.viewport().width() + 1
    assert cards[1].model_label.toolTip() == f"{LONG_PATH}  +  LoRA my-adapter-{'z' * 80}"
    assert cards[1].model_label.width() < cards[1].model_label.fontMetrics().horizontalAdvance(LONG_PATH)
    assert view.horizontalScrollBar().maximum() == 0
    view.deleteLater()


def test_answers_on_screen_follow_a_switch_to_the_dark_theme(qapp: Any) -> None:
    """Answers kept their light-theme token shading (and code colours) after switching to dark."""
    from PySide6.QtGui import QTextCursor

    from app.core.events import TokenLogprob
    from app.core.lens import tokens_to_json
    from app.ui import theme

    def shade(card: Any) -> Any:
        doc = card.lens.view.document()
        cursor = QTextCursor(doc)
        cursor.setPosition(2)  # inside the first token
        return cursor.charFormat().background().color()

    tokens = [TokenLogprob("Hello", -2.5), TokenLogprob(" world", -0.01)]
    light = theme.apply(qapp, "light")
    try:
        view = TranscriptView(code_style=light.code)
        view.resize(500, 400)
        view.show()
        card = view.add_message("a", "assistant", "Hello world\n\n```python\nx = 1\n```\n", message_id=1,
                                meta={"model": "m", "tokens": tokens_to_json(tokens)})
        card.show_probabilities(True)
        before = shade(card)
        assert before.lightness() > 128
        assert light.code.background in card.body.toHtml()
        dark = theme.apply(qapp, "dark")
        view.set_code_style(dark.code)
        assert shade(card).lightness() < 128 and shade(card) != before
        assert card.lens.plain_text().startswith("Hello world")  # drawn once, not twice
        assert card.lens.plain_text().count("Hello") == 1
        card.show_probabilities(False)
        assert dark.code.background in card.body.toHtml() and light.code.background not in card.body.toHtml()
        assert card.text == "Hello world\n\n```python\nx = 1\n```\n"
        assert view.add_message("b", "assistant", "```\ny\n```\n").renderer.style == dark.code
        view.deleteLater()
    finally:
        theme.apply(qapp, "light")
        qapp.setStyleSheet("")


def test_a_backlog_is_drawn_with_pauses_as_long_as_each_draw(qapp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ui.widgets import transcript

    ticks = iter(i * 0.007 for i in range(1000))  # each draw "takes" 7 ms
    monkeypatch.setattr(transcript, "_clock", lambda: next(ticks))
    view = TranscriptView()
    view.show()
    view.start_stream("k")
    view.append("k", "".join(f" tok{i}" for i in range(5000)))  # more than one chunk
    view.flush()
    assert view._timer.isActive() and view._timer.interval() == 7  # timers due meanwhile go first
    while view.card("k").pending_chars():
        view.flush()
    assert view._timer.interval() == transcript.FLUSH_MS  # caught up: the usual pace
