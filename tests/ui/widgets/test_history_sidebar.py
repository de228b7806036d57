"""History sidebar with a real HistoryStore: new, select, rename, delete, search, restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.core.history import HistoryStore
from app.ui.widgets.history_sidebar import HistorySidebar


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    history = HistoryStore(tmp_path / "history.sqlite3")
    yield history
    history.close()


def _sidebar(qtbot: Any, store: HistoryStore) -> HistorySidebar:
    sidebar = HistorySidebar(store)
    qtbot.addWidget(sidebar)
    return sidebar


def test_lists_newest_first_and_emits_selection(qtbot: Any, store: HistoryStore) -> None:
    a = store.create_conversation("Alpha")
    b = store.create_conversation("Beta")
    sidebar = _sidebar(qtbot, store)
    assert sidebar.conversation_ids() == [b.id, a.id]
    selected: list[str] = []
    sidebar.conversation_selected.connect(selected.append)
    sidebar.select(a.id)  # programmatic: no signal
    assert selected == [] and sidebar.current_id() == a.id
    # a user click on Beta emits
    lst = sidebar._list
    item = sidebar._item_for(b.id)
    assert item is not None
    rect = lst.visualItemRect(item)
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert selected == [b.id]


def test_new_button_asks_the_window(qtbot: Any, store: HistoryStore) -> None:
    sidebar = _sidebar(qtbot, store)
    assert sidebar.conversation_ids() == []
    assert "No conversations yet" in sidebar._empty.text()
    with qtbot.waitSignal(sidebar.new_conversation_requested, timeout=1000):
        qtbot.mouseClick(sidebar._new, Qt.MouseButton.LeftButton)
    conv = store.create_conversation("Fresh")
    sidebar.refresh()
    sidebar.select(conv.id)
    assert sidebar.conversation_ids() == [conv.id]


def test_rename_inline_writes_the_store(qtbot: Any, store: HistoryStore) -> None:
    conv = store.create_conversation("Old name")
    sidebar = _sidebar(qtbot, store)
    renamed: list[tuple[str, str]] = []
    sidebar.conversation_renamed.connect(lambda cid, title: renamed.append((cid, title)))
    item = sidebar._item_for(conv.id)
    assert item is not None
    item.setText("  New   name ")  # what the inline editor commits
    qtbot.waitUntil(lambda: bool(renamed), timeout=2000)
    assert renamed == [(conv.id, "New name")]
    stored = store.get_conversation(conv.id)
    assert stored is not None and stored.title == "New name"
    assert sidebar.title_of(conv.id) == "New name"
    # an empty name is refused with a plain message and the old title stays
    assert sidebar.rename(conv.id, "   ") is False
    assert "needs a name" in sidebar._error.text()
    stored = store.get_conversation(conv.id)
    assert stored is not None and stored.title == "New name"


def test_delete_asks_first_and_only_deletes_on_yes(qtbot: Any, store: HistoryStore) -> None:
    keep = store.create_conversation("Keep me")
    drop = store.create_conversation("Drop me")
    sidebar = _sidebar(qtbot, store)
    deleted: list[str] = []
    sidebar.conversation_deleted.connect(deleted.append)

    box = sidebar.confirm_delete(drop.id)
    assert "Drop me" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert deleted == [] and store.get_conversation(drop.id) is not None

    box = sidebar.confirm_delete(drop.id)
    box.button(QMessageBox.StandardButton.Yes).click()
    assert deleted == [drop.id]
    assert store.get_conversation(drop.id) is None
    assert sidebar.conversation_ids() == [keep.id]


def test_search_filters_titles_and_messages(qtbot: Any, store: HistoryStore) -> None:
    rust = store.create_conversation("Rust lifetimes")
    lora = store.create_conversation("Adapters")
    store.add_message(lora.id, "user", "How do I train a LoRA on SmolLM2?")
    store.create_conversation("Pricing")
    sidebar = _sidebar(qtbot, store)
    assert len(sidebar.conversation_ids()) == 3
    # typing is debounced, then filters
    sidebar._search.setText("rust")
    qtbot.waitUntil(lambda: sidebar.conversation_ids() == [rust.id], timeout=2000)
    sidebar.set_search("smollm2")
    assert sidebar.conversation_ids() == [lora.id]
    sidebar.set_search("nothing like this")
    assert sidebar.conversation_ids() == []
    assert "No conversation matches" in sidebar._empty.text()
    sidebar.set_search("")
    assert len(sidebar.conversation_ids()) == 3


def test_history_survives_a_new_sidebar_on_a_reopened_store(qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    first = HistoryStore(path)
    conv = first.create_conversation("Persisted")
    sidebar = _sidebar(qtbot, first)
    sidebar.rename(conv.id, "Persisted and renamed")
    first.close()
    second = HistoryStore(path)
    try:
        again = _sidebar(qtbot, second)
        assert again.conversation_ids() == [conv.id]
        assert again.title_of(conv.id) == "Persisted and renamed"
    finally:
        second.close()


def test_same_titles_are_told_apart_by_time_model_and_size(qtbot: Any, store: HistoryStore) -> None:
    import time

    from app.ui.widgets.history_items import detail_line

    a = store.create_conversation("Same", model="mock:echo")
    store.add_message(a.id, "user", "hi")
    b = store.create_conversation("Same", model="openai:gpt-4o-mini")
    sidebar = _sidebar(qtbot, store)
    assert sidebar.title_of(a.id) == sidebar.title_of(b.id) == "Same"
    assert sidebar.detail_of(a.id) == f"{time.strftime('%H:%M', time.localtime(a.created_at))} · mock:echo · 1 message"
    assert "openai:gpt-4o-mini · 0 messages" in (sidebar.detail_of(b.id) or "")
    old = store.get_conversation(a.id)
    assert old is not None
    import dataclasses
    import datetime as dt

    week_ago = dataclasses.replace(old, updated_at=time.time() - 3 * 86400)
    assert detail_line(week_ago).split(" · ")[0] == f"{dt.datetime.fromtimestamp(week_ago.updated_at):%a %H:%M}"
    sidebar.resize(260, 400)
    sidebar.show()
    item = sidebar._item_for(a.id)
    assert item is not None
    two_lines = sidebar._list.visualItemRect(item).height()
    assert two_lines > sidebar.fontMetrics().height() * 2  # room for the detail line


def test_fork_from_the_sidebar_copies_the_active_branch(qtbot: Any, store: HistoryStore) -> None:
    conv = store.create_conversation("Trip")
    q = store.add_message(conv.id, "user", "q")
    store.add_message(conv.id, "assistant", "a1")
    store.add_message(conv.id, "assistant", "a2", parent_id=q.id)
    empty = store.create_conversation("Nothing yet")
    sidebar = _sidebar(qtbot, store)
    with qtbot.waitSignal(sidebar.conversation_forked, timeout=1000) as signal:
        new = sidebar.fork(conv.id)
    assert signal.args == [new] and new in sidebar.conversation_ids()
    assert sidebar.title_of(new or "") == "Fork of Trip"
    assert [m.content for m in store.path_to(new or "")] == ["q", "a2"]
    assert sidebar.fork(empty.id) is None and "no messages" in sidebar._error.text()


@pytest.mark.parametrize("action", ["rename", "delete", "fork"])
def test_a_locked_history_says_busy_and_what_to_do(qtbot: Any, store: HistoryStore, action: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.sqlite_lock import LockHolder

    conv = store.create_conversation("Kept")
    store.add_message(conv.id, "user", "hello")
    sidebar = _sidebar(qtbot, store)
    monkeypatch.setattr(store, "busy_timeout_s", 0.3)
    with LockHolder(store.path):
        {"rename": lambda: sidebar.rename(conv.id, "New"), "delete": lambda: sidebar.delete(conv.id),
         "fork": lambda: sidebar.fork(conv.id)}[action]()  # fmt: skip
    message = sidebar._error.text()
    assert message.startswith(f"Could not {action}: busy: another instance holds the history database")
    assert "try again" in message
    assert sidebar.conversation_ids() == [conv.id] and sidebar.title_of(conv.id) == "Kept"


def test_the_rename_editor_covers_the_title_and_the_old_title_is_not_painted(
    qtbot: Any, store: HistoryStore
) -> None:
    """Seen in a real window: the old title showed above the inline editor."""
    from PySide6.QtCore import QPoint, QRect
    from PySide6.QtGui import QImage, QRegion
    from PySide6.QtWidgets import QApplication, QLineEdit, QWidget

    conv = store.create_conversation("The old title of this one")
    sidebar = _sidebar(qtbot, store)
    sidebar.resize(260, 300)
    sidebar.show()
    sidebar.start_rename(conv.id)
    QApplication.processEvents()
    lst = sidebar._list
    editor = lst.viewport().findChild(QLineEdit)
    item = sidebar._item_for(conv.id)
    assert editor is not None and editor.isVisible() and item is not None
    rect = lst.visualItemRect(item)
    line = lst.fontMetrics().height()
    assert editor.geometry().top() <= rect.top() + 4 and editor.geometry().bottom() >= rect.top() + 4 + line
    # what is painted under the editor (the viewport without its children): no trace of the old title
    strip = QRect(rect.left() + 8, rect.top() + 4, rect.width() - 16, line)
    image = QImage(strip.size(), QImage.Format.Format_ARGB32)
    lst.viewport().render(image, QPoint(), QRegion(strip), QWidget.RenderFlag.DrawWindowBackground)
    colours = {image.pixel(x, y) for x in range(image.width()) for y in range(image.height())}
    assert len(colours) <= 2, len(colours)
    assert editor.isVisible()
    assert editor.text() == "The old title of this one"
