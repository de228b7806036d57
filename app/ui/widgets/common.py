"""Small helpers shared by the dashboard, history, keys, settings and LoRA widgets.

Formatting of figures (cost, tokens, seconds, speed), a "tile" widget for big live numbers,
an inline message label, :func:`laid_out` (a widget's layout with its margins and spacing),
:func:`selectable_label` (a label whose text can be selected and copied), :func:`text_box`,
and :func:`spawn` to run a coroutine as an asyncio task whose errors end up in a callback
instead of being lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TypeVar

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QLabel,
    QLayout,
    QPlainTextEdit,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError, redact
from app.core.figures import (
    DASH,
    format_cost,
    format_rate,
    format_seconds,
    format_tokens,
    to_decimal,
)

log = logging.getLogger(__name__)

__all__ = [  # the figure formatters live in the Qt-free core; re-exported for the widgets
    "DASH", "ElidedLabel", "FitLabel", "MessageLabel", "Tile", "error_text", "format_cost",
    "format_rate", "format_seconds", "format_tokens", "is_dark", "message_style", "spawn", "to_decimal", "tone",
    "contrast_ratio", "message_colours", "laid_out", "selectable_label", "text_box",
]

L = TypeVar("L", bound=QLayout)


def add_rows(form: QFormLayout, *rows: tuple[str, QWidget]) -> None:
    """Add ``(label, field)`` rows to ``form`` in order (an empty label: a checkbox's row)."""
    for label, field in rows:
        form.addRow(label, field)


def laid_out(widget: QWidget, kind: type[L], margins: tuple[int, int, int, int], spacing: int) -> L:
    """A new layout of ``kind`` on ``widget`` with ``margins`` (left, top, right, bottom) and
    ``spacing`` between its items."""
    layout = kind(widget)
    layout.setContentsMargins(*margins)
    layout.setSpacing(spacing)
    return layout


def selectable_label(text: str = "", *, name: str = "", wrap: bool = True,
                     text_format: Qt.TextFormat = Qt.TextFormat.AutoText, font: QFont | None = None) -> QLabel:
    """A label whose text the user can select and copy (figures, checks, tool calls, an
    address), word-wrapped unless ``wrap`` is False; ``name`` is its object name."""
    label = QLabel(text, wordWrap=wrap, textFormat=text_format,
                   textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setObjectName(name)
    if font is not None:
        label.setFont(font)
    return label


def text_box(placeholder: str, height: int, parent: QWidget | None = None) -> QPlainTextEdit:
    """A plain-text box of a few lines (a prompt, a system prompt), ``height`` pixels tall,
    showing ``placeholder`` while it is empty."""
    box = QPlainTextEdit(parent, placeholderText=placeholder)
    box.setFixedHeight(height)
    return box


def error_text(exc: BaseException) -> str:
    """A user-facing message for ``exc`` (keys redacted)."""
    if isinstance(exc, AppError):
        return exc.user_message()
    return redact(f"{type(exc).__name__}: {exc}")


def spawn(
    coro: Coroutine[object, None, object],
    on_error: Callable[[str], None] | None = None,
) -> asyncio.Task[object]:
    """Run ``coro`` as a task on the running (qasync) loop; report failures to ``on_error``.

    Cancellation is silent. Without ``on_error`` the failure is logged.
    """
    task = asyncio.ensure_future(coro)

    def _done(t: asyncio.Task[object]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        if exc is None:
            return
        message = error_text(exc)
        if on_error is not None:
            on_error(message)
        else:
            log.error("background task failed: %s", message)

    task.add_done_callback(_done)
    return task


class FitLabel(QLabel):
    """A one-line value that is never cut: its font shrinks to fit the width the layout gives
    (down to ``min_point_size``), and only then is the text elided. It never widens its layout."""

    def __init__(self, text: str = "", min_point_size: float = 7.0, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._min_point_size = min_point_size
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(0)

    def fitted_font(self, width: int | None = None) -> QFont:
        """The font the text is drawn in at ``width`` (default: the label's own)."""
        room = self.contentsRect().width() if width is None else width
        font = QFont(self.font())
        size = font.pointSizeF() if font.pointSizeF() > 0 else 10.0
        while size > self._min_point_size and QFontMetrics(font).horizontalAdvance(self.text()) > room:
            size = max(self._min_point_size, size - 0.5)
            font.setPointSizeF(size)
        return font

    def fits(self, width: int | None = None) -> bool:
        """True when the whole text shows at ``width`` (no eliding)."""
        room = self.contentsRect().width() if width is None else width
        return QFontMetrics(self.fitted_font(room)).horizontalAdvance(self.text()) <= room

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Any width; the height of the full-size font."""
        return QSize(0, super().minimumSizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        """Draw the text in the fitted font, elided only if even the smallest does not fit."""
        painter = QPainter(self)
        rect = self.contentsRect()
        font = self.fitted_font(rect.width())
        painter.setFont(font)
        text = QFontMetrics(font).elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)


class Tile(QFrame):
    """A rounded card showing a caption and one big value (a live dashboard figure)."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tile")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        layout = laid_out(self, QVBoxLayout, (10, 8, 10, 8), 2)
        self._caption = QLabel(caption.upper())
        self._caption.setObjectName("tileCaption")
        self._value = FitLabel(DASH)  # "51,143 tok/s" shrinks to fit a narrow tile: never cut
        self._value.setObjectName("tileValue")
        for label in (self._caption, self._value):  # a long live value must never widen the window
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setMinimumWidth(0)
        layout.addWidget(self._caption)
        layout.addWidget(self._value)

    def set_value(self, text: str) -> None:
        """Show ``text`` as the value (skips the repaint when unchanged)."""
        if self._value.text() != text:
            self._value.setText(text)

    def value(self) -> str:
        """The value shown."""
        return self._value.text()

    def value_fits(self) -> bool:
        """True when the value shows whole at the tile's width (never cut)."""
        return self._value.fits()


TILE_STYLE = """
QFrame#tile { background: palette(base); border: 1px solid palette(midlight); border-radius: 8px; }
QLabel#tileCaption { color: palette(placeholder-text); font-size: 8pt; font-weight: 600;
                     letter-spacing: 0.5px; }
QLabel#tileValue { font-size: 15pt; font-weight: 600; }
"""

MESSAGE_COLOURS = {  # kind: (text on light, text on dark, rgb of the tint)
    "error": ("#b42318", "#ff8a80", "198,40,40"),
    "warning": ("#8a5a00", "#ffc266", "255,179,0"),
    "info": ("", "", "30,136,229"),
    "ok": ("#2e7d32", "#8fd694", "46,125,50"),
}


def _luminance(c: QColor) -> float:
    def channel(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.red()) + 0.7152 * channel(c.green()) + 0.0722 * channel(c.blue())


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours (1 to 21; 4.5 reads well as body text)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(base: QColor, rgb: str, alpha: float) -> QColor:
    r, g, b = (int(x) for x in rgb.split(","))
    return QColor(round(base.red() + (r - base.red()) * alpha), round(base.green() + (g - base.green()) * alpha),
                  round(base.blue() + (b - base.blue()) * alpha))  # fmt: skip


def message_colours(kind: str, window: QColor, text: QColor) -> tuple[QColor, QColor]:
    """(text, background) of a ``kind`` banner on a ``window`` colour: an opaque tint, and of
    the kind's two text colours the one that reads best on it (never pale on pale, whatever
    palette the banner was first shown on)."""
    light_fg, dark_fg, rgb = MESSAGE_COLOURS.get(kind, MESSAGE_COLOURS["info"])
    dark = window.lightness() < 128
    background = _mix(window, rgb, 0.16 if dark else 0.08)
    options = [QColor(c) for c in (light_fg, dark_fg) if c] or [text]
    options.append(text)
    return max(options, key=lambda c: contrast_ratio(c, background)), background


def message_style(kind: str, dark: bool, window: QColor | None = None, text: QColor | None = None) -> str:
    """The banner stylesheet for ``kind`` on a light or dark palette (``window``: the colour
    behind it, for an opaque tint and the most readable text colour)."""
    light_fg, dark_fg, rgb = MESSAGE_COLOURS.get(kind, MESSAGE_COLOURS["info"])
    border_alpha = 0.5 if dark else 0.35
    if window is not None:
        fg, bg = message_colours(kind, window, text or QColor("#000000" if not dark else "#ffffff"))
        return (f"QLabel {{ color: {fg.name()}; background: {bg.name()}; border: 1px solid rgba({rgb},{border_alpha});"
                " border-radius: 6px; padding: 6px 8px; }")  # fmt: skip
    fg_text = (dark_fg if dark else light_fg) or "palette(text)"
    alpha = 0.16 if dark else 0.08
    return (
        f"QLabel {{ color: {fg_text}; background: rgba({rgb},{alpha}); border: 1px solid rgba({rgb},{border_alpha});"
        " border-radius: 6px; padding: 6px 8px; }"
    )


def is_dark(widget: QWidget) -> bool:
    """True when ``widget``'s palette is dark."""
    return widget.palette().color(QPalette.ColorRole.Window).lightness() < 128


def tone(kind: str, widget: QWidget) -> str:
    """A text colour for ``kind`` (error, warning, ok) that reads well on ``widget``'s palette."""
    light_fg, dark_fg, _rgb = MESSAGE_COLOURS.get(kind, MESSAGE_COLOURS["info"])
    return (dark_fg if is_dark(widget) else light_fg) or widget.palette().color(QPalette.ColorRole.Text).name()


class MessageLabel(QLabel):
    """An inline, word-wrapped banner for errors, warnings and hints (hidden when empty)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setVisible(False)
        self._kind = ""

    def show_message(self, text: str, kind: str = "error") -> None:
        """Show ``text`` styled as ``kind`` (error, warning, info, ok); empty text hides it."""
        if not text:
            self.clear_message()
            return
        self._kind = kind
        self._restyle()
        self.setText(text)
        self.setVisible(True)

    def _restyle(self) -> None:
        if not self._kind:
            return
        parent = self.parentWidget()
        pal = (parent or self).palette()
        style = message_style(self._kind, is_dark(parent or self), pal.color(QPalette.ColorRole.Window),
                              pal.color(QPalette.ColorRole.WindowText))  # fmt: skip
        if style != self.styleSheet():
            self.setStyleSheet(style)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        """A new palette (theme switched): the colours follow."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()

    def clear_message(self) -> None:
        """Hide the banner."""
        self._kind = ""
        self.setText("")
        self.setVisible(False)

    def kind(self) -> str:
        """The kind of message shown ('' when hidden)."""
        return self._kind


class ElidedLabel(QLabel):
    """A one-line label that shrinks to ``min_chars`` and elides its text ("…") when narrow,
    with the whole text as its tooltip; its text never sets the window's minimum width."""

    def __init__(self, text: str = "", min_width: int = 60, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._min_width = min_width
        self.setToolTip(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt override)
        """Set the text (and the tooltip that shows it whole)."""
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Narrow: the layout may shrink the label down to ``min_width``."""
        return QSize(self._min_width, super().minimumSizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        """Draw the text elided to the width the layout gave."""
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), text)


class EscapeClosesWindow(QWidget):
    """A top-level window that Esc closes (a window manager may give it no title bar); a
    child that takes Esc itself (an open cell editor, a menu) keeps it."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        """Esc closes the window; other keys go on as usual."""
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            event.accept()
            return
        super().keyPressEvent(event)


def fit_to_screen(size: QSize, reserve: QSize | None = None) -> QSize:
    """``size``, or the primary screen's free area less ``reserve`` (a title bar) when that is
    smaller; unchanged offscreen (tests)."""
    screen = QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() == "offscreen":
        return size
    return size.boundedTo(screen.availableGeometry().size() - (reserve or QSize()))
