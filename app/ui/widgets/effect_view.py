"""The adapter effect per token, shown beside an adapter's answer (Compare with base, the
Workbench's base-vs-adapter pair): a summary line (mean Δ logprob, the most-changed tokens),
the answer's tokens with the ones the adapter moved most highlighted (raised: green, lowered:
violet, underlined too, mixed into the palette's base colour so they read in light and dark
themes), base vs. adapter probability on hover, and a toggle back to the Markdown.

:func:`score_and_show` runs the scoring (one forward pass of the base model over the adapter's
answer, :func:`app.core.lens.score_adapter_effect`) in a task and fills the view.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCharFormat
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError
from app.core.events import TokenLogprob
from app.core.lens import AdapterEffect, score_adapter_effect
from app.core.provider import ProviderRegistry, as_local
from app.core.types import GenerationRequest
from app.ui.widgets.common import error_text, laid_out, selectable_label
from app.ui.widgets.token_view import LensColours, TokenDocument, TokenLens, effect_html


class EffectView(QWidget):
    """Summary, highlighted tokens and a Markdown / adapter effect toggle. ``markdown`` is the
    widget showing the answer as Markdown (hidden while the effect is shown)."""

    def __init__(self, markdown: QWidget, parent: QWidget | None = None, *, other: str = "Markdown") -> None:
        super().__init__(parent)
        self.setObjectName("effectView")
        self._markdown = markdown
        self._other = other
        lay = laid_out(self, QVBoxLayout, (0, 0, 0, 0), 4)
        row = QHBoxLayout()
        self.summary = selectable_label(text_format=Qt.TextFormat.RichText)
        row.addWidget(self.summary, 1)
        self.toggle = QToolButton(self)
        self.toggle.setCheckable(True)
        self.toggle.setText(f"Show {other}")
        self.toggle.setToolTip(f"Switch between the {other} and the adapter's answer with its effect per token")
        self.toggle.toggled.connect(self._on_toggled)
        self.toggle.setVisible(False)
        row.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(row)
        self.view = QTextBrowser(self)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        self.view.setVisible(False)
        lay.addWidget(self.view, 1)
        self.effect: AdapterEffect | None = None
        self.document: TokenDocument | None = None
        self._lens: TokenLens | None = None
        self.setVisible(False)

    def clear(self) -> None:
        """Nothing shown (a new comparison)."""
        self.effect = None
        self.document = None
        self.view.clear()
        self.summary.setText("")
        self.toggle.setVisible(False)
        self.view.setVisible(False)
        self._markdown.setVisible(True)
        self.setVisible(False)

    def set_message(self, text: str) -> None:
        """A line instead of the effect (scoring, or why there is none)."""
        self.setVisible(True)
        self.summary.setText(html.escape(text))

    def set_effect(self, tokens: Sequence[TokenLogprob], effect: AdapterEffect) -> None:
        """Show the answer's tokens with the adapter's effect (replacing the Markdown)."""
        self.effect = effect
        colours = LensColours.for_widget(self)
        plain = QTextCharFormat()
        plain.setForeground(colours.text)

        def format_for(index: int, _token: TokenLogprob) -> QTextCharFormat:
            strength = effect.strength(index)
            if strength <= 0:
                return plain
            fmt = QTextCharFormat(plain)
            raised = effect.effects[index].diff > 0
            fmt.setBackground(colours.effect(strength, raised))
            fmt.setFontUnderline(True)
            fmt.setUnderlineColor(colours.effect(1.0, raised))
            return fmt

        self.view.clear()
        self.document = TokenDocument(self.view.document(), colours, format_for)
        self.document.append(list(tokens))
        if self._lens is None:
            self._lens = TokenLens(self.view, self.document, lambda i: effect_html(self.document.tokens[i],  # type: ignore[union-attr]
                                                                                   effect, i))
        else:
            self._lens.document = self.document
            self._lens.tooltip = lambda i: effect_html(self.document.tokens[i], effect, i)  # type: ignore[union-attr]
        self.summary.setText(html.escape(effect.sentence()) + "<br><span style='color: palette(placeholder-text);'>"
                             "Highlighted: the tokens the adapter moved most (green: made likelier, violet: "
                             "less likely). Hover one for base vs. adapter.</span>")
        self.setVisible(True)
        self.toggle.setVisible(True)
        self.toggle.setChecked(False)
        self._on_toggled(False)

    def marked_texts(self) -> list[str]:
        """The texts of the highlighted tokens, in answer order (tests, exports)."""
        if self.effect is None or self.document is None:
            return []
        return [self.document.tokens[i].text for i in sorted(self.effect.marked)]

    def showing_effect(self) -> bool:
        """True while the tokens with the effect are shown (not the Markdown)."""
        return self.view.isVisible() or (self.effect is not None and not self.toggle.isChecked())

    def _on_toggled(self, markdown: bool) -> None:
        self.toggle.setText("Show adapter effect" if markdown else f"Show {self._other}")
        self.view.setVisible(not markdown and self.effect is not None)
        self._markdown.setVisible(markdown or self.effect is None)


async def score_and_show(view: EffectView, registry: ProviderRegistry, request: GenerationRequest,
                         tokens: Sequence[TokenLogprob]) -> AdapterEffect | None:
    """Score the adapter answer's ``tokens`` under the base model and show the effect in
    ``view`` (or say why not: no tokens, a remote model, the model changed meanwhile)."""
    provider = as_local(registry.get(request.model.provider))
    if provider is None or not request.adapters:
        return None
    if not tokens:
        view.set_message("No adapter effect: the answer came without its tokens (this model does not give "
                         "them yet).")
        return None
    view.set_message("Scoring the adapter's answer under the base model\u2026")
    try:
        if await provider.loaded_model() not in (str(request.model), request.model.name):  # never reload the old one
            raise AppError("The model was changed before the adapter effect was computed.",
                           hint="Compare again with this model.")  # fmt: skip
        effect = await score_adapter_effect(provider, request, tokens)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the comparison stays; the effect is extra
        view.set_message(f"No adapter effect: {error_text(exc)}")
        return None
    view.set_effect(tokens, effect)
    return effect
