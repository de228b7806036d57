"""The parts of a message card on their own (offscreen): the header's action buttons, the body
that grows to fit its document and turns its links into actions, and a thinking model's
collapsible reasoning."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QWidget

from app.ui.widgets.card_parts import MessageBody, ThinkingSection, card_button


class Opened(QObject):
    """Stands in for the desktop's browser: the URLs it was asked to open."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        """Called by QDesktopServices.openUrl for the schemes it handles."""
        self.urls.append(url.toString())


@pytest.fixture
def browser() -> Any:
    opened = Opened()
    for scheme in ("http", "https", "mailto", "file"):
        QDesktopServices.setUrlHandler(scheme, opened, "open")
    yield opened
    for scheme in ("http", "https", "mailto", "file"):
        QDesktopServices.unsetUrlHandler(scheme)


def test_a_card_button_is_a_flat_action_that_calls_its_slot(qtbot: Any) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    clicks: list[int] = []
    button = card_button(parent, "Copy", lambda: clicks.append(1))
    assert button.parent() is parent and button.text() == "Copy" and button.objectName() == "cardAction"
    assert button.cursor().shape() == Qt.CursorShape.PointingHandCursor
    button.click()
    assert clicks == [1]


def test_the_body_grows_to_fit_its_text_and_shrinks_back(qtbot: Any) -> None:
    body = MessageBody()
    qtbot.addWidget(body)
    body.setFixedWidth(300)
    body.show()
    one_line = body.height()
    body.setPlainText("\n".join(f"line {i}" for i in range(30)))
    tall = body.height()
    assert tall > one_line * 10 and body.sizeHint().height() == tall
    assert body.document().size().height() <= tall  # all of it shows: no inner scrolling
    assert body.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    body.setPlainText("short")
    assert body.height() == one_line >= 24


def test_a_copy_link_asks_for_that_code_block_and_web_links_open_outside(qtbot: Any, browser: Opened) -> None:
    body = MessageBody()
    qtbot.addWidget(body)
    copies: list[int] = []
    body.copy_code.connect(copies.append)
    body.anchorClicked.emit(QUrl("copy:3"))
    body.anchorClicked.emit(QUrl("copy:not-a-number"))  # ignored, no error
    assert copies == [3]
    body.anchorClicked.emit(QUrl("https://example.com/a"))
    body.anchorClicked.emit(QUrl("mailto:someone@example.com"))
    body.anchorClicked.emit(QUrl("file:///etc/passwd"))  # a model's link to a local file is not followed
    assert browser.urls == ["https://example.com/a", "mailto:someone@example.com"]
    assert body.toPlainText() == ""  # a link never navigates the body away from the answer


def test_reasoning_counts_its_tokens_and_folds_once_the_answer_starts(qtbot: Any) -> None:
    section = ThinkingSection()
    qtbot.addWidget(section)
    section.show()
    assert section.is_expanded() and section.thinking and section.toggle.text() == "\u25be Thinking\u2026"
    section.append("Hmm.", 1)
    assert section.text == "Hmm." and section.toggle.text() == "\u25be Thinking\u2026 \u00b7 1 token"
    section.append("", 0)  # nothing: nothing changes
    section.append(" Well", 1233)
    assert section.text == "Hmm. Well" and section.toggle.text().endswith("\u00b7 1,234 tokens")
    section.end_thinking()
    assert not section.is_expanded() and not section.view.isVisible()
    assert section.toggle.text() == "\u25b8 Thinking \u00b7 1,234 tokens"
    section.toggle.click()  # opened again by hand
    assert section.is_expanded() and section.view.isVisible() and section.toggle.text().startswith("\u25be")


def test_a_choice_made_while_thinking_stands_when_the_answer_starts(qtbot: Any) -> None:
    section = ThinkingSection()
    qtbot.addWidget(section)
    section.show()
    section.append("thinking out loud", 3)
    section.toggle.click()  # closed while the model thinks
    assert not section.is_expanded()
    section.toggle.click()  # and opened again: the person chose to read it
    section.end_thinking()
    assert section.is_expanded() and not section.thinking


def test_long_reasoning_stops_growing_and_scrolls_to_the_newest(qtbot: Any) -> None:
    section = ThinkingSection()
    qtbot.addWidget(section)
    section.setFixedWidth(300)
    section.show()
    section.append("a first thought\n", 1)
    short = section.view.height()
    assert short < ThinkingSection.MAX_HEIGHT
    assert section.view.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    for i in range(80):
        section.append(f"thought {i}\n", 1)
    assert section.view.height() == ThinkingSection.MAX_HEIGHT
    assert section.view.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAsNeeded
    bar = section.view.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()  # follows the newest reasoning
