"""The adapter effect per token (app/ui/widgets/effect_view.py): the summary, the moved tokens
highlighted (raised and lowered apart), base vs. adapter on hover, the toggle back to the
Markdown, and score_and_show saying why there is no effect instead of failing."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.core.events import TokenLogprob
from app.core.lens import adapter_effect
from app.core.services import Services
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.ui.widgets.effect_view import EffectView, score_and_show

TOKENS = [TokenLogprob(t, math.log(p), token_id=i) for i, (t, p) in enumerate(
    [("The", 0.9), (" sky", 0.8), (" is", 0.95), (" green", 0.7)])]  # fmt: skip
BASE = [math.log(0.9), math.log(0.2), math.log(0.95), math.log(0.99)]  # " sky" raised, " green" lowered


def make(qtbot: Any) -> tuple[QWidget, QLabel, EffectView]:
    holder = QWidget()
    qtbot.addWidget(holder)
    lay = QVBoxLayout(holder)
    markdown = QLabel("The sky is green")
    view = EffectView(markdown, holder)
    lay.addWidget(markdown)
    lay.addWidget(view)
    holder.show()
    return holder, markdown, view


def test_the_effect_replaces_the_markdown_and_the_toggle_brings_it_back(qtbot: Any) -> None:
    holder, markdown, view = make(qtbot)  # noqa: F841 (kept alive)
    assert not view.isVisible() and view.marked_texts() == []
    effect = adapter_effect(TOKENS, BASE, top_n=2)
    view.set_effect(TOKENS, effect)
    assert view.isVisible() and view.view.isVisible() and not markdown.isVisible() and view.showing_effect()
    assert view.marked_texts() == [" sky", " green"]
    assert view.view.toPlainText() == "The sky is green"
    assert view.toggle.isVisible() and view.toggle.text() == "Show Markdown"
    assert "Highlighted" in view.summary.text()
    view.toggle.setChecked(True)
    assert markdown.isVisible() and not view.view.isVisible() and view.toggle.text() == "Show adapter effect"
    view.clear()
    assert view.effect is None and not view.isVisible() and markdown.isVisible()


def test_raised_and_lowered_tokens_are_highlighted_apart_and_unmoved_ones_not(qtbot: Any) -> None:
    holder, _, view = make(qtbot)  # noqa: F841 (kept alive)
    view.set_effect(TOKENS, adapter_effect(TOKENS, BASE, top_n=2))
    assert view.document is not None

    def fmt(index: int) -> Any:
        cursor = QTextCursor(view.view.document())
        cursor.setPosition(view.document.starts[index] + 1)  # type: ignore[union-attr]
        return cursor.charFormat()

    assert fmt(1).fontUnderline() and fmt(3).fontUnderline() and not fmt(0).fontUnderline()
    assert fmt(1).background().color() != fmt(3).background().color()
    view.set_effect(TOKENS, adapter_effect(TOKENS, BASE, top_n=1))  # again: the hover follows the new effect
    assert view._lens is not None and "with adapter" in view._lens.tooltip(1)


def test_score_and_show_says_why_there_is_no_effect(qtbot: Any, qloop: Any, services: Services) -> None:
    holder, _, view = make(qtbot)  # noqa: F841 (kept alive)
    messages = (ChatMessage("user", "sky?"),)
    remote = GenerationRequest(ModelRef.parse("mock:echo"), messages, GenerationParams(), adapters=(AdapterSpec("/a"),))
    local = GenerationRequest(ModelRef.parse("local:/m/tiny"), messages, GenerationParams(), adapters=(AdapterSpec("/a"),))

    async def scenario() -> None:
        assert await score_and_show(view, services.registry, remote, TOKENS) is None
        assert not view.isVisible()  # a remote model: nothing to say
        assert await score_and_show(view, services.registry, local, []) is None
        assert "came without its tokens" in view.summary.text()
        assert await score_and_show(view, services.registry, local, TOKENS) is None
        assert "No adapter effect: The model was changed" in view.summary.text()  # nothing loaded: never reloads

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))
