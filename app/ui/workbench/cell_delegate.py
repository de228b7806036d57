"""Painting of the Workbench's cells: a verdict badge (and a person's, purple: ``✔ ★4``) and the figures line (tokens, cost,
time to first token, tok/s, latency) over the tool calls (``→ get_weather({...})``) and the
start of the answer; case cells edit in place (assertions in a multi-line editor: one per
line)."""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPalette
from PySide6.QtWidgets import (
    QPlainTextEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.core.grid.cells import Cell
from app.core.grid.review import CellReview
from app.ui.workbench.grid_model import CELL_ROLE, REVIEW_ROLE, GridTableModel

PREVIEW_CHARS = 700
REVIEW_COLOUR = "#7c3aed"
BADGES = {  # verdict: (label, light tint, dark tint, badge colour)
    "PASS": ("PASS", "#e8f5ea", "#1f3323", "#2e7d32"),
    "FAIL": ("FAIL", "#fdecea", "#3d2222", "#c62828"),
    "ERROR": ("ERROR", "#fff4e0", "#3a3020", "#b26a00"),
    "STOPPED": ("STOPPED", "", "", "#6b7280"),
    "running": ("…", "#eef4ff", "#1e2a3d", "#2563eb"),
    "queued": ("queued", "", "", "#6b7280"),
    "grading": ("grading", "#eef4ff", "#1e2a3d", "#7c3aed"),
    "idle": ("", "", "", "#6b7280"),
    "done": ("DONE", "", "", "#6b7280"),
}


def verdict_of(cell: Cell | None) -> str:
    """The badge key of a cell."""
    if cell is None:
        return "idle"
    if cell.status in ("failed", "invalid"):
        return "ERROR"
    if cell.status == "cancelled":
        return "STOPPED"
    if cell.status == "done":
        if not cell.asserts:
            return "done"
        return "PASS" if cell.passed else "FAIL"
    return cell.status


def preview_text(cell: Cell | None) -> str:
    """What a cell shows under its figures: its tool calls (``→ get_weather({...})``, first:
    a calling answer has little text), then the answer (or the error of a cell without one)."""
    if cell is None:
        return ""
    text = cell.error if cell.status in ("failed", "invalid") and not cell.current_text else cell.current_text
    if cell.tool_calls:
        text = cell.calls_line() + ("\n" + text if text else "")
    return text or ""


class AssertEditor(QPlainTextEdit):
    """The multi-line editor of the Asserts column (Ctrl+Enter or leaving it commits)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        """Ctrl+Enter commits; Enter adds a line."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.clearFocus()
            return
        super().keyPressEvent(event)


class CellDelegate(QStyledItemDelegate):
    """See the module doc."""

    def __init__(self, model: GridTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.grid = model

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        """Rows are as tall as the view's default section size."""
        return QSize(200, 92)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        """Variant cells: badge, figures and the answer's start; others: the default."""
        if self.grid.variant_of(index.column()) is None or self.grid.is_footer(index.row()):
            super().paint(painter, option, index)
            return
        cell: Cell | None = index.data(CELL_ROLE)
        key = verdict_of(cell)
        label, light, dark, colour = BADGES.get(key, BADGES["idle"])
        palette = option.palette
        rect: QRect = option.rect
        is_dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight).lighter(170 if not is_dark else 60))
        elif (dark if is_dark else light):
            painter.fillRect(rect, QColor(dark if is_dark else light))
        inner = rect.adjusted(6, 4, -6, -4)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, small.pointSizeF() - 1.5))
        painter.setFont(small)
        metrics = painter.fontMetrics()
        x = inner.left()
        review: CellReview | None = index.data(REVIEW_ROLE)
        for text, fill in ((label, colour), (f"by hand {review.badge()}" if review is not None else "", REVIEW_COLOUR)):
            if not text:
                continue
            bold = QFont(small)
            bold.setBold(True)
            painter.setFont(bold)
            width = painter.fontMetrics().horizontalAdvance(text) + 8
            badge = QRect(x, inner.top(), width, metrics.height() + 2)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(fill))
            painter.drawRoundedRect(badge, 3, 3)
            painter.setPen(QColor("#ffffff"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
            painter.setFont(small)
            x += width + 6
        figures = cell.short_figures() if cell is not None else ""
        if cell is not None and cell.status == "invalid":
            figures = "not sent"
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        top = QRect(x, inner.top(), inner.right() - x, metrics.height() + 2)
        painter.drawText(top, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                         metrics.elidedText(figures, Qt.TextElideMode.ElideRight, top.width()))  # fmt: skip
        body = QRect(inner.left(), inner.top() + metrics.height() + 6, inner.width(),
                     inner.height() - metrics.height() - 6)  # fmt: skip
        text = preview_text(cell)
        painter.setFont(option.font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.drawText(body, int(Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft),
                         " ".join((text or "")[:PREVIEW_CHARS].split()))  # fmt: skip
        painter.restore()

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem,  # noqa: N802
                     index: QModelIndex | QPersistentModelIndex) -> QWidget:  # fmt: skip
        """A multi-line editor for the Asserts column, the default for variables."""
        if index.column() == self.grid.fixed - 1:
            editor = AssertEditor(parent)
            editor.setPlaceholderText("icontains: paris")
            return editor
        return super().createEditor(parent, option, index)

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        """Fill the editor."""
        if isinstance(editor, QPlainTextEdit):
            editor.setPlainText(str(index.data(Qt.ItemDataRole.EditRole) or ""))
            return
        super().setEditorData(editor, index)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel,  # noqa: N802
                     index: QModelIndex | QPersistentModelIndex) -> None:  # fmt: skip
        """Write the edit back."""
        if isinstance(editor, QPlainTextEdit):
            model.setData(index, editor.toPlainText(), Qt.ItemDataRole.EditRole)
            return
        super().setModelData(editor, model, index)

    def eventFilter(self, editor: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        """Enter stays in the multi-line editor (the default would commit)."""
        if isinstance(editor, QPlainTextEdit) and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                    event.modifiers() & Qt.KeyboardModifier.ControlModifier):  # fmt: skip
                return False
        return super().eventFilter(editor, event)


__all__ = ["AssertEditor", "CellDelegate", "preview_text", "verdict_of"]
