"""The history list's items: the detail line under each title (time · model · messages) and
the delegate that paints both lines."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

if TYPE_CHECKING:
    from app.core.history import Conversation

DETAIL_ROLE = Qt.ItemDataRole.UserRole + 1


def as_datetime(value: object) -> dt.datetime:
    """A local datetime from an epoch number or an ISO string (now when unparsable)."""
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value)
    if isinstance(value, dt.datetime):
        return value.astimezone() if value.tzinfo else value
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return dt.datetime.now()
    return parsed.astimezone().replace(tzinfo=None) if parsed.tzinfo else parsed


def detail_line(conv: Conversation, today: dt.date | None = None) -> str:
    """``14:03 · mock:echo · 4 messages``: when (time today, weekday this week, else the date),
    the model and the size of a conversation."""
    when = as_datetime(conv.updated_at)
    days = ((today or dt.date.today()) - when.date()).days
    stamp = f"{when:%H:%M}" if days <= 0 else (f"{when:%a %H:%M}" if days < 7 else f"{when:%Y-%m-%d %H:%M}")
    count = f"{conv.message_count} message{'s' if conv.message_count != 1 else ''}"
    return " \u00b7 ".join(p for p in (stamp, conv.model or "", count) if p)


class TwoLineDelegate(QStyledItemDelegate):
    """Paints the title and, under it, the muted detail line (DETAIL_ROLE). While a title is
    renamed, its editor sits on the title line and the old title is not painted under it."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._editing: QPersistentModelIndex | None = None

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem,  # noqa: N802 (Qt override)
                     index: QModelIndex | QPersistentModelIndex) -> QWidget:
        """The inline rename editor (the title is not painted while it is open)."""
        self._editing = QPersistentModelIndex(index)
        return super().createEditor(parent, option, index)

    def destroyEditor(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        """The rename ended: the title is painted again."""
        self._editing = None
        super().destroyEditor(editor, index)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem,  # noqa: N802 (Qt override)
                             index: QModelIndex | QPersistentModelIndex) -> None:
        """The editor covers the title line (the detail line stays readable under it)."""
        if not index.data(DETAIL_ROLE):
            super().updateEditorGeometry(editor, option, index)
            return
        rect = option.rect.adjusted(2, 1, -2, 0)
        rect.setHeight(min(rect.height(), max(editor.sizeHint().height(), QFontMetrics(option.font).height() + 8)))
        editor.setGeometry(rect)

    def _small(self, option: QStyleOptionViewItem) -> QFont:
        font = QFont(option.font)
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        return font

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        """One line more when there is a detail."""
        size = super().sizeHint(option, index)
        if index.data(DETAIL_ROLE):
            size.setHeight(size.height() + QFontMetrics(self._small(option)).height() + 2)
        return size

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        """The item's background as the style draws it, then the two lines, elided."""
        detail = index.data(DETAIL_ROLE)
        if not detail:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        title = "" if self._editing is not None and self._editing == index else opt.text  # the editor shows it
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect = opt.rect.adjusted(8, 4, -8, -4)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        palette: QPalette = opt.palette
        text = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        muted = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.PlaceholderText)
        font, small = QFont(opt.font), self._small(opt)
        top = QFontMetrics(font)
        painter.save()
        painter.setFont(font)
        painter.setPen(text)
        first = rect.adjusted(0, 0, 0, -(rect.height() - top.height()))
        painter.drawText(first, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         top.elidedText(title, Qt.TextElideMode.ElideRight, rect.width()))
        painter.setFont(small)
        painter.setPen(muted)
        second = rect.adjusted(0, top.height() + 2, 0, 0)
        painter.drawText(second, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
                         QFontMetrics(small).elidedText(str(detail), Qt.TextElideMode.ElideRight, rect.width()))
        painter.restore()
