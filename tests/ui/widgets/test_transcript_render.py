"""The incremental Markdown renderer on a real QTextDocument: blocks, code, the tail, and the
cost of streaming (each finished block is parsed once)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QTextDocument, QTextDocumentFragment

from app.ui.widgets import transcript_render as render_mod
from app.ui.widgets.transcript_render import (
    LIGHT_CODE,
    RAW_RUN,
    TAIL_RENDER_LIMIT,
    BlockSplitter,
    StreamRenderer,
    code_block_html,
    highlight_html,
)

ANSWER = (
    "# Title\n\nA paragraph with **bold** text.\n\n"
    "- one\n- two\n\n"
    "```python\nprint('hi')\nx = 1\n```\n\n"
    "The end."
)


def _feed_in_pieces(renderer: StreamRenderer, text: str, size: int = 3) -> None:
    for i in range(0, len(text), size):
        renderer.feed(text[i : i + size])


def test_the_splitter_finishes_blocks_at_blank_lines_and_fences() -> None:
    split = BlockSplitter()
    done = [b for line in ANSWER.split("\n") if (b := split.feed_line(line)) is not None]
    assert [b.code for b in done] == [False, False, False, True]
    code = done[3]
    assert code.language == "python" and code.body == "print('hi')\nx = 1\n"
    assert split.tail_text() == "The end.\n"  # not finished until a blank line or the end
    assert split.take().text == "The end.\n"


def test_a_blank_line_inside_a_fence_does_not_end_the_code() -> None:
    split = BlockSplitter()
    for line in ("```", "a = 1", "", "b = 2"):
        assert split.feed_line(line) is None
    assert split.tail_is_code()
    block = split.feed_line("```")
    assert block is not None and block.code and block.body == "a = 1\n\nb = 2\n"


def test_streamed_in_tiny_pieces_it_shows_what_a_whole_render_shows(qapp: Any) -> None:
    streamed, whole = QTextDocument(), QTextDocument()
    renderer = StreamRenderer(streamed)
    _feed_in_pieces(renderer, ANSWER)
    renderer.finish()
    StreamRenderer(whole).set_text(ANSWER)
    assert streamed.toPlainText() == whole.toPlainText()
    assert "bold" in streamed.toPlainText() and "**" not in streamed.toPlainText()
    assert renderer.text == ANSWER
    assert renderer.code_blocks == ["print('hi')\nx = 1\n"]
    assert "copy:0" in streamed.toHtml()


def test_each_finished_block_is_parsed_once(qapp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finished part of a long answer is never parsed again: what the Markdown parser sees
    over the whole stream stays within a small multiple of the answer (quadratic otherwise)."""
    parsed: list[int] = []
    real = QTextDocumentFragment.fromMarkdown

    def counting(text: str, *args: Any) -> QTextDocumentFragment:
        parsed.append(len(text))
        return real(text, *args)

    monkeypatch.setattr(render_mod.QTextDocumentFragment, "fromMarkdown", staticmethod(counting))
    answer = "".join(f"Paragraph {i} has a few words in it.\n\n" for i in range(300))
    renderer = StreamRenderer(QTextDocument())
    _feed_in_pieces(renderer, answer, size=8)
    renderer.finish()
    assert sum(parsed) <= 8 * len(answer)  # each flush re-draws only the small tail
    assert len(parsed) >= 300


def test_a_long_tail_goes_plain_and_no_paragraph_grows_without_bound(qapp: Any) -> None:
    doc = QTextDocument()
    renderer = StreamRenderer(doc)
    words = " ".join(f"w{i}" for i in range(3 * TAIL_RENDER_LIMIT // 3))  # one huge paragraph
    _feed_in_pieces(renderer, words, size=500)
    renderer.finish()
    assert doc.toPlainText().split() == words.split()
    longest = max(len(doc.findBlockByNumber(i).text()) for i in range(doc.blockCount()))
    assert longest <= RAW_RUN + 20


def test_code_html_highlights_known_languages_and_escapes_unknown_ones() -> None:
    assert "style=" in highlight_html("def f(): pass", "python", LIGHT_CODE)
    plain = highlight_html("<b>x</b>", "no-such-language", LIGHT_CODE)
    assert "&lt;b&gt;" in plain
    block = code_block_html("a < b", "", 2, LIGHT_CODE, colour=False)
    assert 'href="copy:2"' in block and "a &lt; b" in block and ">text<" in block
