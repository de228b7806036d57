"""The Workbench's lower pane: the whole answer of the selected cell with Markdown (the
transcript's incremental renderer, fed as the cell streams) and its tool calls pretty-printed,
the word-level diff of two selected cells, and the cell's request as code."""

from __future__ import annotations

import html
import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core.grid.cells import Cell
from app.core.grid.diff import changed_words, similarity, word_diff
from app.ui.widgets.common import is_dark, selectable_label
from app.ui.widgets.effect_view import EffectView
from app.ui.widgets.transcript_render import DARK_CODE, LIGHT_CODE, StreamRenderer

HINT = "Click a cell to read its whole answer; select two cells (Ctrl+click) for a word-level diff."


def titled_pane(pane: QWidget, hint: str) -> tuple[QVBoxLayout, QLabel]:
    """A details pane's layout and its bold, wrapping title line (showing ``hint``)."""
    lay = QVBoxLayout(pane)
    lay.setContentsMargins(6, 6, 6, 6)
    lay.setSpacing(4)
    title = QLabel(hint)
    title.setWordWrap(True)
    title.setStyleSheet("font-weight: 600;")
    return lay, title


class AnswerView(QWidget):
    """One cell: its title, figures, checks and the answer rendered as Markdown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay, self.title = titled_pane(self, HINT)
        self.figures = selectable_label(wrap=False)
        self.figures.setStyleSheet("color: palette(placeholder-text);")
        self.checks = selectable_label(text_format=Qt.TextFormat.RichText)
        self.calls = selectable_label(wrap=False, text_format=Qt.TextFormat.PlainText,
                                      font=QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        """The cell's tool calls, their arguments pretty-printed."""
        self.calls.setVisible(False)
        self.body = QTextBrowser(self)
        self.body.setOpenExternalLinks(False)
        self.body.setOpenLinks(False)
        lay.addWidget(self.title)
        lay.addWidget(self.figures)
        lay.addWidget(self.checks)
        lay.addWidget(self.calls)
        lay.addWidget(self.body, 1)
        self.figures.setVisible(False)
        self.checks.setVisible(False)
        self.cell: Cell | None = None
        self._fed = 0
        self._renderer = StreamRenderer(self.body.document(), LIGHT_CODE)

    def show_cell(self, cell: Cell | None, title: str = "") -> None:
        """Show ``cell`` (from the start)."""
        self.cell = cell
        self.body.clear()
        self._renderer = StreamRenderer(self.body.document(), DARK_CODE if is_dark(self) else LIGHT_CODE)
        self._fed = 0
        self.title.setText(title if cell is not None else HINT)
        self.update_cell()

    def update_cell(self) -> None:
        """Draw what the cell received since the last call (linear while it streams)."""
        cell = self.cell
        self.figures.setVisible(cell is not None)
        self.calls.setText(calls_text(cell) if cell is not None else "")
        self.calls.setVisible(bool(cell is not None and cell.tool_calls))
        if cell is None:
            self.figures.setText("")
            self.checks.setText("")
            self.checks.setVisible(False)
            return
        text = cell.current_text
        if len(text) < self._fed or not text.startswith(self._renderer.text[: min(64, self._fed)]):
            self.body.clear()  # the cell was rerun: start again
            self._renderer = StreamRenderer(self.body.document(), DARK_CODE if is_dark(self) else LIGHT_CODE)
            self._fed = 0
        if len(text) > self._fed:
            self._renderer.feed(text[self._fed:])
            self._fed = len(text)
        if cell.ended:
            self._renderer.finish()
        self.figures.setText(cell.figures_line() or cell.status)
        lines = [f"{'✔' if a.passed else '✘'} {html.escape(a.type)}: {html.escape(a.reason)}" for a in cell.asserts]
        if cell.error:
            lines.append(f"<span style='color:#c62828'>{html.escape(cell.error)}</span>")
        self.checks.setText("<br>".join(lines))
        self.checks.setVisible(bool(lines))

    @property
    def text(self) -> str:
        """The answer shown."""
        return self.body.toPlainText()


def calls_text(cell: Cell) -> str:
    """The cell's tool calls, one ``→ name`` line each with its arguments pretty-printed
    (as the model wrote them when they are not JSON)."""
    out = []
    for call in cell.calls_json():
        args = call["arguments"]
        shown = args if isinstance(args, str) else json.dumps(args, indent=2, ensure_ascii=False)
        out.append(f"→ {call['name']}  ({call['id']})\n{shown}")
    return "\n".join(out)


class DiffView(QWidget):
    """The word-level diff of two answers: removed words struck through in red, added ones
    in green."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel("Select two cells (Ctrl+click) to compare their answers word by word.")
        self.title.setWordWrap(True)
        self.summary = QLabel("")
        self.summary.setStyleSheet("color: palette(placeholder-text);")
        self.body = QTextBrowser(self)
        lay.addWidget(self.title)
        lay.addWidget(self.summary)
        lay.addWidget(self.body, 1)
        self.effect = EffectView(self.body, self, other="diff")
        """A base-vs-adapter pair's adapter effect per token (see app/ui/workbench/effect.py)."""
        lay.addWidget(self.effect, 1)
        self.removed: list[str] = []
        self.added: list[str] = []

    def show_diff(self, a: str, b: str, title_a: str, title_b: str) -> None:
        """Diff ``a`` (left) against ``b`` (right)."""
        self.title.setText(f"<b>{html.escape(title_a)}</b> → <b>{html.escape(title_b)}</b>")
        self.removed, self.added = changed_words(a, b)
        dark = is_dark(self)
        red, green = ("#ff8a80", "#8fd694") if dark else ("#b42318", "#1e6b2c")
        red_bg, green_bg = ("#3d2222", "#1f3323") if dark else ("#fde7e4", "#e3f4e6")
        parts = []
        last = ""
        for op, text in word_diff(a, b):
            t = html.escape(text).replace("\n", "<br>")
            if op == "insert" and last and not last[-1].isspace() and not text[0].isspace():
                parts.append(" ")  # a replaced word: "The What", never "TheWhat"
            last = text if op == "delete" else ""
            if op == "equal":
                parts.append(t)
            elif op == "delete":
                parts.append(f"<span style='color:{red};background:{red_bg};text-decoration:line-through'>{t}</span>")
            else:
                parts.append(f"<span style='color:{green};background:{green_bg}'>{t}</span>")
        self.body.setHtml("<div style='white-space:pre-wrap'>" + "".join(parts) + "</div>")
        self.summary.setText(f"{len(self.removed)} words removed, {len(self.added)} added · "
                             f"{similarity(a, b) * 100:.0f}% alike")  # fmt: skip


class CodeView(QWidget):
    """The selected cell's request as a standalone program.

    Signals:
        language_changed(str language): the user picked another language.
    """

    language_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        self.language = QComboBox()
        self.language.addItem("Python (openai SDK)", "python")
        self.language.addItem("curl", "curl")
        self.language.addItem("Python (transformers + peft)", "transformers")
        self.language.currentIndexChanged.connect(lambda _i: self.language_changed.emit(self.current_language()))
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy)
        self.note = QLabel("The key is read from an environment variable; it is never written into the code.")
        self.note.setStyleSheet("color: palette(placeholder-text);")
        top.addWidget(self.language)
        top.addWidget(self.copy_button)
        top.addWidget(self.note, 1)
        self.text = QPlainTextEdit(self)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        lay.addLayout(top)
        lay.addWidget(self.text, 1)

    def current_language(self) -> str:
        """python, curl or transformers."""
        return str(self.language.currentData())

    def set_language(self, language: str) -> None:
        """Pick ``language`` without signalling."""
        i = self.language.findData(language)
        if i >= 0:
            self.language.blockSignals(True)
            self.language.setCurrentIndex(i)
            self.language.blockSignals(False)

    def show_code(self, code: str) -> None:
        """Show a program (or a message saying why there is none)."""
        self.text.setPlainText(code)

    def copy(self) -> None:
        """Copy the program to the clipboard."""
        QGuiApplication.clipboard().setText(self.text.toPlainText())
