"""The history sidebar: saved conversations grouped by date, with search, new, rename, fork,
delete. Under each title a muted line (time · model · messages) tells apart conversations
with the same title.

It reads and writes the :class:`HistoryStore` directly (cheap SQLite calls on the GUI thread)
and tells the main window what happened through its signals.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.ui.widgets.common import MessageLabel, error_text, laid_out
from app.ui.widgets.history_items import DETAIL_ROLE, TwoLineDelegate, as_datetime, detail_line

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMessageBox

    from app.core.history import HistoryStore

ID_ROLE = Qt.ItemDataRole.UserRole
SEARCH_DEBOUNCE_MS = 150


def _group(when: dt.datetime, today: dt.date) -> str:
    days = (today - when.date()).days
    if days <= 0:
        return "Today"
    if days == 1:
        return "Yesterday"
    if days < 7:
        return "Previous 7 days"
    if days < 30:
        return "Previous 30 days"
    return "Older"


class HistorySidebar(QWidget):
    """Saved conversations.

    Signals:
        conversation_selected(str): the user picked a conversation.
        new_conversation_requested(): the user asked for a new conversation.
        conversation_deleted(str): a conversation was deleted from the store.
        conversation_renamed(str, str): a conversation got a new title (id, title).
        conversation_forked(str): a fork of a conversation was made (the new id).
    """

    conversation_selected = Signal(str)
    new_conversation_requested = Signal()
    conversation_deleted = Signal(str)
    conversation_renamed = Signal(str, str)
    conversation_forked = Signal(str)

    def __init__(self, history: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("historySidebar")
        self.setMinimumWidth(210)
        self._history = history
        self._current: str | None = None
        self._titles: dict[str, str] = {}
        self._filling = False
        self._confirm: QMessageBox | None = None

        layout = laid_out(self, QVBoxLayout, (6, 6, 6, 6), 6)
        top = QHBoxLayout()
        self._search = QLineEdit()
        self._search.setPlaceholderText("Search conversations")
        self._search.setClearButtonEnabled(True)
        self._search.textChanged.connect(self._on_search_text_changed)
        top.addWidget(self._search, 1)
        self._new = QPushButton("+ New")
        self._new.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self._new.setToolTip("Start a new conversation (Ctrl+N)")
        self._new.clicked.connect(self.new_conversation_requested.emit)
        top.addWidget(self._new)
        layout.addLayout(top)

        self._list = QListWidget()
        self._list.setObjectName("historyList")
        self._list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self._list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self._list.setUniformItemSizes(False)
        self._list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._list.setWordWrap(False)
        self._list.setStyleSheet(
            "QListWidget#historyList { border: none; background: transparent; }"
            "QListWidget#historyList::item { padding: 6px 6px; border-radius: 6px; }"
            "QListWidget#historyList::item:selected { background: palette(highlight);"
            " color: palette(highlighted-text); }"
        )
        self._list.setItemDelegate(TwoLineDelegate(self._list))
        self._list.customContextMenuRequested.connect(self._on_list_context_menu)
        self._list.currentItemChanged.connect(self._on_list_current_changed)
        self._list.itemChanged.connect(self._on_list_item_changed)
        layout.addWidget(self._list, 1)
        self._empty = QLabel("")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setStyleSheet("color: palette(placeholder-text); padding: 12px;")
        self._empty.setWordWrap(True)
        layout.addWidget(self._empty)
        self._error = MessageLabel()
        layout.addWidget(self._error)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self.refresh)

        for text, keys, slot in (
            ("Rename", QKeySequence(Qt.Key.Key_F2), self._rename_current),
            ("Delete", QKeySequence(QKeySequence.StandardKey.Delete), self._delete_current),
        ):
            action = QAction(text, self._list)
            action.setShortcut(keys)
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            action.triggered.connect(slot)
            self._list.addAction(action)
        self.refresh()

    # public API
    def refresh(self) -> None:
        """Reload the list from the store (applying the search text)."""
        self._search_timer.stop()
        text = self._search.text().strip()
        try:
            conversations = self._history.list_conversations(search=text or None)
        except Exception as exc:
            self._error.show_message(f"Could not read the history: {error_text(exc)}")
            return
        self._error.clear_message()
        self._filling = True
        self._list.clear()
        self._titles = {}
        today = dt.date.today()
        group = None
        bold = QFont(self._list.font())
        bold.setBold(True)
        bold.setPointSizeF(max(7.0, bold.pointSizeF() * 0.85))
        for conv in sorted(conversations, key=lambda c: as_datetime(c.updated_at), reverse=True):
            when = as_datetime(conv.updated_at)
            name = _group(when, today)
            if name != group:
                group = name
                header = QListWidgetItem(name.upper())
                header.setFlags(Qt.ItemFlag.NoItemFlags)
                header.setFont(bold)
                self._list.addItem(header)
            item = QListWidgetItem(conv.title or "Untitled")
            item.setData(ID_ROLE, conv.id)
            item.setData(DETAIL_ROLE, detail_line(conv, today))
            item.setToolTip(f"{conv.title}\n{conv.model or ''}\nUpdated {when:%Y-%m-%d %H:%M}".strip())
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable)
            self._list.addItem(item)
            self._titles[conv.id] = conv.title
            if conv.id == self._current:
                self._list.setCurrentItem(item)
        self._filling = False
        if not self._titles:
            self._empty.setText(f"No conversation matches \u201c{text}\u201d." if text else "No conversations yet.\nPress + New to start one.")
        self._empty.setVisible(not self._titles)

    def select(self, conversation_id: str | None) -> None:
        """Highlight ``conversation_id`` without emitting ``conversation_selected``."""
        self._current = conversation_id
        item = self._item_for(conversation_id) if conversation_id else None
        if conversation_id and item is None and self._search.text():
            self._search.clear()
            self.refresh()
            item = self._item_for(conversation_id)
        self._filling = True
        if item is None:
            self._list.clearSelection()
            self._list.setCurrentRow(-1)
        else:
            self._list.setCurrentItem(item)
            self._list.scrollToItem(item)
        self._filling = False

    def conversation_ids(self) -> list[str]:
        """Ids listed, top to bottom."""
        return [str(self._list.item(i).data(ID_ROLE)) for i in range(self._list.count()) if self._list.item(i).data(ID_ROLE)]

    def title_of(self, conversation_id: str) -> str | None:
        """The title shown for ``conversation_id``."""
        item = self._item_for(conversation_id)
        return None if item is None else item.text()

    def detail_of(self, conversation_id: str) -> str | None:
        """The line shown under the title (time · model · messages)."""
        item = self._item_for(conversation_id)
        return None if item is None else str(item.data(DETAIL_ROLE))

    def fork(self, conversation_id: str) -> str | None:
        """Fork the conversation's active branch into a new conversation ("Fork of …") and
        emit ``conversation_forked``; returns the new id (None when that failed)."""
        try:
            conv = self._history.require(conversation_id)
            leaf = self._history.tree(conversation_id).active_leaf_id
            if leaf is None:
                self._error.show_message("This conversation has no messages to fork yet.")
                return None
            new = self._history.fork(conversation_id, leaf, title=f"Fork of {conv.title}")
        except Exception as exc:
            self._error.show_message(f"Could not fork: {error_text(exc)}")
            return None
        self.refresh()
        self.conversation_forked.emit(new.id)
        return new.id

    def current_id(self) -> str | None:
        """The highlighted conversation."""
        return self._current

    def set_search(self, text: str) -> None:
        """Search now (the search box otherwise waits ~150 ms after the last key)."""
        self._search.setText(text)
        self.refresh()

    def rename(self, conversation_id: str, title: str) -> bool:
        """Rename in the store; empty titles are refused. True when renamed."""
        title = " ".join(title.split())
        if not title:
            self.refresh()  # puts the old title back
            self._error.show_message("A conversation needs a name. Type at least one character.")
            return False
        try:
            self._history.rename(conversation_id, title)
        except Exception as exc:
            self.refresh()
            self._error.show_message(f"Could not rename: {error_text(exc)}")
            return False
        self.refresh()
        self.conversation_renamed.emit(conversation_id, title)
        return True

    def start_rename(self, conversation_id: str) -> None:
        """Open the inline editor on ``conversation_id``'s row."""
        item = self._item_for(conversation_id)
        if item is not None:
            self._list.setCurrentItem(item)
            self._list.editItem(item)

    def delete(self, conversation_id: str) -> None:
        """Delete from the store (no question asked) and emit ``conversation_deleted``."""
        try:
            self._history.delete(conversation_id)
        except Exception as exc:
            self._error.show_message(f"Could not delete: {error_text(exc)}")
            return
        if self._current == conversation_id:
            self._current = None
        self.refresh()
        self.conversation_deleted.emit(conversation_id)

    def confirm_delete(self, conversation_id: str) -> QMessageBox:
        """Ask (non-modally, via ``open()``) before deleting; returns the question box."""
        from PySide6.QtWidgets import QMessageBox  # its type and enums are made on first use

        title = self._titles.get(conversation_id, "this conversation")
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete conversation",
            f"Delete \u201c{title}\u201d and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def _done(result: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.StandardButton.Yes):
                self.delete(conversation_id)
            self._confirm = None
            box.deleteLater()

        box.finished.connect(_done)
        self._confirm = box
        box.open()
        return box

    # slots
    def _item_for(self, conversation_id: str | None) -> QListWidgetItem | None:
        for i in range(self._list.count()):
            item = self._list.item(i)
            if item.data(ID_ROLE) == conversation_id:
                return item
        return None

    def _on_search_text_changed(self, _text: str) -> None:
        self._search_timer.start()

    def _on_list_current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if self._filling or current is None:
            return
        cid = current.data(ID_ROLE)
        if cid and cid != self._current:
            self._current = str(cid)
            self.conversation_selected.emit(self._current)

    def _on_list_item_changed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        cid = item.data(ID_ROLE)
        text = item.text()
        if cid and text != self._titles.get(cid):
            # rename() rebuilds the list: do it after the editor has finished with the item
            QTimer.singleShot(0, lambda: self.rename(str(cid), text))

    def _on_list_context_menu(self, pos: QPoint) -> None:
        item = self._list.itemAt(pos)
        cid = item.data(ID_ROLE) if item is not None else None
        if not cid:
            return
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.start_rename(str(cid)))
        menu.addAction("Fork", lambda: self.fork(str(cid)))
        menu.addAction("Delete\u2026", lambda: self.confirm_delete(str(cid)))
        menu.popup(self._list.viewport().mapToGlobal(pos))

    def _rename_current(self) -> None:
        if self._current:
            self.start_rename(self._current)

    def _delete_current(self) -> None:
        if self._current:
            self.confirm_delete(self._current)
