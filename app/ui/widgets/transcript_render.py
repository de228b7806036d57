"""Incremental Markdown rendering for streamed answers (used by the transcript).

The text of one message lives in one ``QTextDocument``. A :class:`StreamRenderer` splits the
stream into Markdown blocks (paragraphs, lists, fenced code...) line by line:

- a finished block is rendered once (Qt's own Markdown parser for prose, Pygments with inline
  styles for code) and appended at the end of the document; it is never parsed again;
- only the unfinished tail block is re-drawn on each flush, and only while it is small;
- a tail longer than ``TAIL_RENDER_LIMIT`` switches to plain appends (linear cost), and a block
  longer than ``BIG_BLOCK`` stays plain text when it completes (no big re-parse on the GUI
  thread). Plain runs are broken into paragraphs of at most ``RAW_RUN`` characters, because Qt
  lays out a whole paragraph again on every append (quadratic for one huge paragraph).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from PySide6.QtGui import (
    QFont,
    QFontDatabase,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
)

from app.ui.theme import DARK_CODE, LIGHT_CODE, CodeStyle  # noqa: F401  (re-exported)

TAIL_RENDER_LIMIT = 4000
BIG_BLOCK = 20000
RAW_RUN = 1500
PARAGRAPH_GAP = 6.0
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)")




def highlight_html(code: str, language: str, style: CodeStyle) -> str:
    """Pygments HTML (inline styles, so QTextDocument understands it) for ``code``."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    fmt = HtmlFormatter(noclasses=True, nowrap=True, style=style.pygments_style)
    return highlight(code, lexer, fmt)


def code_block_html(code: str, language: str, index: int, style: CodeStyle, *, colour: bool = True) -> str:
    """A code block as a one-cell table: a header with the language and a Copy link, then code."""
    body = highlight_html(code, language, style) if colour else html.escape(code)
    body = body.rstrip("\n")
    lang = html.escape(language or "text")
    return (
        f'<table width="100%" cellspacing="0" cellpadding="8" bgcolor="{style.background}" '
        f'style="margin-top:6px; margin-bottom:6px;">'
        f'<tr><td><span style="color:{style.header}; font-size:small;">{lang}</span>'
        f'&nbsp;&nbsp;&nbsp;<a href="copy:{index}" style="color:{style.link}; '
        f'text-decoration:none; font-size:small;">Copy</a>'
        f'<pre style="margin:0; white-space:pre-wrap;">{body}</pre></td></tr></table>'
    )


@dataclass
class Block:
    """One finished Markdown block: prose (``code`` False) or a fenced code block."""

    text: str
    code: bool = False
    language: str = ""
    body: str = ""


@dataclass
class BlockSplitter:
    """Splits streamed text into finished :class:`Block`s, keeping the unfinished tail."""

    lines: list[str] = field(default_factory=list)
    partial: str = ""
    fence: str | None = None
    language: str = ""
    size: int = 0

    def feed_line(self, line: str) -> Block | None:
        """Add one complete line; return a block when this line finishes one."""
        if self.fence is not None:
            self._add(line)
            stripped = line.strip()
            if stripped.startswith(self.fence) and not stripped.strip(self.fence[0]):
                return self.take()
            return None
        if not line.strip():
            return self.take() if self.lines else None
        m = _FENCE.match(line)
        if m:
            before = self.take() if self.lines else None
            self.fence, self.language = m.group(1), m.group(2)
            self._add(line)
            return before
        self._add(line)
        return None

    def _add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line) + 1

    def tail_text(self) -> str:
        """The unfinished block (complete lines plus the partial last line)."""
        return "".join(line + "\n" for line in self.lines) + self.partial

    def tail_is_code(self) -> bool:
        """True while inside an open code fence."""
        return self.fence is not None

    def take(self) -> Block:
        """Finish the current block (also used at the end of the stream)."""
        text = "".join(line + "\n" for line in self.lines)
        if self.fence is not None or (self.lines and _FENCE.match(self.lines[0])):
            inner = self.lines[1:]
            if inner and inner[-1].strip().startswith(("```", "~~~")) and self.fence is None:
                inner = inner[:-1]
            elif self.fence is not None and inner and inner[-1].strip().startswith(self.fence):
                inner = inner[:-1]
            block = Block(text, True, self.language, "".join(x + "\n" for x in inner))
        else:
            block = Block(text)
        self.lines, self.fence, self.language, self.size = [], None, "", 0
        return block


def mono_format() -> QTextCharFormat:
    """Character format for plain code."""
    fmt = QTextCharFormat()
    fmt.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return fmt


class StreamRenderer:
    """Appends a streamed Markdown answer to ``document`` incrementally (see module doc)."""

    def __init__(self, document: QTextDocument, style: CodeStyle = LIGHT_CODE) -> None:
        self.doc = document
        self.style = style
        self.code_blocks: list[str] = []
        self._split = BlockSplitter()
        self._tail_start = 0
        self._raw = False
        self._raw_pending: list[str] = []
        self._raw_run = 0
        self._plain = QTextCharFormat()
        self._plain.setFont(QFont(document.defaultFont()))
        self._mono = mono_format()
        self._parts: list[str] = []
        self.finished = False

    @property
    def text(self) -> str:
        """All text fed so far."""
        return "".join(self._parts)

    # -- public API -------------------------------------------------------------------------
    def feed(self, text: str) -> None:
        """Append a piece of streamed text (call from a coalescing timer, not per token)."""
        if not text:
            return
        self._parts.append(text)
        cursor = QTextCursor(self.doc)
        cursor.beginEditBlock()
        try:
            start = 0
            while True:
                nl = text.find("\n", start)
                if nl < 0:
                    rest = text[start:]
                    self._split.partial += rest
                    if self._raw:
                        self._raw_pending.append(rest)
                    break
                line = self._split.partial + text[start:nl]
                self._split.partial = ""
                if self._raw:
                    self._raw_pending.append(text[start : nl + 1])
                block = self._split.feed_line(line)
                if block is not None:
                    self._commit(cursor, block)
                start = nl + 1
            if self._raw:
                self._flush_raw(cursor)
            else:
                self._draw_tail(cursor)
        finally:
            cursor.endEditBlock()

    def finish(self) -> None:
        """Render whatever is left as finished blocks."""
        if self.finished:
            return
        self.finished = True
        cursor = QTextCursor(self.doc)
        cursor.beginEditBlock()
        try:
            if self._split.partial:
                partial = self._split.partial
                self._split.partial = ""
                block = self._split.feed_line(partial)
                if block is not None:
                    self._commit(cursor, block)
            if self._split.lines:
                self._commit(cursor, self._split.take())
            elif not self._raw:
                self._clear_tail(cursor)
            if self._raw:
                self._flush_raw(cursor)
                self._raw = False
        finally:
            cursor.endEditBlock()

    def set_text(self, text: str) -> None:
        """Render a complete message at once (history, edits)."""
        self.feed(text)
        self.finish()

    # -- internals --------------------------------------------------------------------------
    def _end(self, cursor: QTextCursor) -> None:
        cursor.movePosition(QTextCursor.MoveOperation.End)

    def _clear_tail(self, cursor: QTextCursor) -> None:
        cursor.setPosition(self._tail_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        if cursor.hasSelection():
            cursor.removeSelectedText()

    def _new_block(self, cursor: QTextCursor) -> None:
        """Move to the end, starting a fresh default paragraph if the last one has text."""
        self._end(cursor)
        if cursor.block().length() > 1 or cursor.currentList() is not None or cursor.currentTable():
            cursor.insertBlock(QTextBlockFormat(), self._plain)
        else:
            cursor.setBlockFormat(QTextBlockFormat())
            cursor.setCharFormat(self._plain)

    def _commit(self, cursor: QTextCursor, block: Block) -> None:
        if self._raw:
            self._flush_raw(cursor)
            self._raw = False
            if len(block.text) > BIG_BLOCK:  # keep the plain text already shown
                self._end(cursor)
                self._tail_start = cursor.position()
                return
        self._clear_tail(cursor)
        self._insert_block(cursor, block, final=True)
        self._end(cursor)
        self._tail_start = cursor.position()

    def _insert_block(self, cursor: QTextCursor, block: Block, *, final: bool) -> None:
        if block.code:
            if final:
                index = len(self.code_blocks)
                self.code_blocks.append(block.body)
                html_text = code_block_html(block.body, block.language, index, self.style,
                                            colour=len(block.body) <= BIG_BLOCK)
                self._new_block(cursor)
                cursor.insertHtml(html_text)
            else:
                self._new_block(cursor)
                cursor.insertText(block.text.rstrip("\n"), self._mono)
            return
        text = block.text.strip("\n")
        if not text:
            return
        self._new_block(cursor)
        if len(text) > BIG_BLOCK:
            self._insert_plain(cursor, text)
        else:
            start = cursor.position()
            cursor.insertFragment(QTextDocumentFragment.fromMarkdown(text))
            self._space_paragraphs(start, cursor.position())

    def _space_paragraphs(self, start: int, end: int) -> None:
        """Give the paragraphs just inserted some room below (Qt's Markdown sets none)."""
        block = self.doc.findBlock(start)
        while block.isValid() and block.position() <= end:
            if block.textList() is None:
                fmt = block.blockFormat()
                if fmt.bottomMargin() < PARAGRAPH_GAP:
                    fmt.setBottomMargin(PARAGRAPH_GAP)
                    QTextCursor(block).setBlockFormat(fmt)
            block = block.next()

    def _draw_tail(self, cursor: QTextCursor) -> None:
        tail = self._split.tail_text()
        if len(tail) > TAIL_RENDER_LIMIT:
            self._clear_tail(cursor)
            self._raw = True
            self._raw_run = 0
            self._new_block(cursor)
            self._tail_start = cursor.position()
            self._raw_pending = [tail]
            self._flush_raw(cursor)
            return
        self._clear_tail(cursor)
        if tail.strip():
            code = self._split.tail_is_code()
            self._insert_block(cursor, Block(tail, code=code), final=False)

    def _flush_raw(self, cursor: QTextCursor) -> None:
        if not self._raw_pending:
            return
        text = "".join(self._raw_pending)
        self._raw_pending = []
        self._end(cursor)
        self._insert_plain(cursor, text)

    def _insert_plain(self, cursor: QTextCursor, text: str) -> None:
        """Insert plain text, breaking very long runs so no paragraph grows without bound."""
        fmt = self._mono if self._split.tail_is_code() else self._plain
        out: list[str] = []
        run = self._raw_run
        pos = 0
        while pos < len(text):
            nl = text.find("\n", pos)
            seg_end = len(text) if nl < 0 else nl
            seg = text[pos:seg_end]
            while run + len(seg) > RAW_RUN:
                cut = max(0, RAW_RUN - run)
                space = seg.rfind(" ", 0, cut) if cut else -1
                if space <= 0:
                    space = seg.find(" ", cut)
                if space <= 0:
                    space = cut or len(seg)
                out.append(seg[:space])
                out.append("\n")
                seg = seg[space:].lstrip(" ") if space < len(seg) else ""
                run = 0
            out.append(seg)
            run += len(seg)
            if nl >= 0:
                out.append("\n")
                run = 0
                pos = nl + 1
            else:
                pos = len(text)
        self._raw_run = run
        cursor.insertText("".join(out), fmt)
