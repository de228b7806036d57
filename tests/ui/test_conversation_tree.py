"""The conversation tree in the window (pytest-qt, qasync): Edit and Regenerate keep the old
turns, ``‹ k/n ›`` switches branches (requests carry only the branch's own path, checked on
the loopback server), Fork, the draft per conversation, reopening restores the model and the
adapters (on a tiny in-process model), and a sampled answer's stored seed replays it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.main_window import MainWindow
from tests.conftest import expect_signal
from tests.providers.local_fixtures import build_adapter, build_tiny_llama
from tests.support.openai_server import OpenAIServer, text
from tests.ui.conftest import make_services


@pytest.fixture
def window(qloop: Any, qapp: Any, services: Services) -> Any:
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend)
    win.show()
    yield win
    win.close()
    qloop.run_until_complete(backend.aclose())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama and a LoRA adapter that fits it (random, non-zero weights)."""
    root = tmp_path_factory.mktemp("tree-ui")
    model = build_tiny_llama(root / "tiny-llama")
    return {"model": model, "adapter": build_adapter(model, root / "style-a", r=4, seed=1), "root": root}


def _run(qloop: Any, coro: Any, timeout: float = 30) -> Any:
    return qloop.run_until_complete(asyncio.wait_for(coro, timeout))


async def _send(win: MainWindow, message: str, timeout: float = 10) -> str:
    done = expect_signal(win.session.answer_done)
    win.editor.set_message(message)
    QTest.mouseClick(win.editor.send_button, Qt.MouseButton.LeftButton)
    (_gen, status), = await done.wait(timeout)
    return str(status)


def _texts(win: MainWindow) -> list[str]:
    return [c.body.toPlainText() for c in win.transcript.cards()]


def test_edit_then_send_keeps_the_old_branch_and_1_of_2_switches_back(qloop: Any, qapp: Any, services: Services,
                                                                       openai_server: OpenAIServer) -> None:
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend)
    win.show()
    backend.set_model("openai:test-model", endpoint=openai_server.base_url)
    openai_server.enqueue(text("Paris", prompt_tokens=9, completion_tokens=1), text("Lyon is nice"),
                          text("Rome", prompt_tokens=9, completion_tokens=1), text("A third"))

    async def scenario() -> None:
        assert await _send(win, "Capital of France?") == "complete"
        assert await _send(win, "And a city to visit?") == "complete"
        first_branch = _texts(win)
        user_card = win.transcript.cards()[0]
        assert user_card.edit_button is not None and not user_card.branch.isVisible()
        QTest.mouseClick(user_card.edit_button, Qt.MouseButton.LeftButton)
        assert win.editor.message() == "Capital of France?" and _texts(win) == []
        assert await _send(win, "Capital of Italy?") == "complete"
        assert _texts(win) == ["Capital of Italy?", "Rome"]
        card = win.transcript.cards()[0]
        assert card.branch.isVisible() and card.branch.text() == "\u2039 2/2 \u203a"
        # the request of the new branch held its own path only
        assert [m["content"] for m in openai_server.chat_requests[-1].json["messages"]] == ["Capital of Italy?"]

        QTest.mouseClick(card.branch.prev_button, Qt.MouseButton.LeftButton)  # ‹ 1/2
        assert _texts(win) == first_branch  # the whole old branch, below the switched message
        assert win.transcript.cards()[0].branch.text() == "\u2039 1/2 \u203a"
        assert "9 in / 1 out token" in win.transcript.cards()[1].figures.text()  # with its figures
        assert await _send(win, "And one more?") == "complete"  # continues the old branch
        sent = [m["content"] for m in openai_server.chat_requests[-1].json["messages"]]
        assert sent == ["Capital of France?", "Paris", "And a city to visit?", "Lyon is nice", "And one more?"]
        stored = services.history.messages(win.session.conversation_id or "")
        assert len(stored) == 8 and "Rome" in [m.content for m in stored]  # nothing was lost

    try:
        _run(qloop, scenario())
    finally:
        win.close()
        qloop.run_until_complete(backend.aclose())


def test_regenerate_makes_a_sibling_answer_and_the_switcher_shows_both(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "hello")
        window.backend.set_model("mock:fixed?text=second take")
        done = expect_signal(window.session.answer_done)
        answer = window.transcript.cards()[-1]
        assert answer.regen_button.isVisible()
        QTest.mouseClick(answer.regen_button, Qt.MouseButton.LeftButton)
        await done.wait(5)
        assert _texts(window) == ["hello", "second take"]
        card = window.transcript.cards()[-1]
        assert card.branch.text() == "\u2039 2/2 \u203a" and "mock:fixed" in card.model_label.text()
        restored = expect_signal(window.backend.state_restored)
        QTest.mouseClick(card.branch.next_button, Qt.MouseButton.LeftButton)  # wraps round to 1/2
        assert _texts(window) == ["hello", "hello"]
        assert (await restored.wait(5)) == [([],)]
        assert "mock:echo" in window.transcript.cards()[-1].model_label.text()
        assert window.backend.current_model() == "mock:echo"  # the branch's model came back
        cid = window.session.conversation_id
        assert cid is not None
        window.open_conversation(cid)  # the switch is remembered
        assert _texts(window) == ["hello", "hello"]

    _run(qloop, scenario())


def test_switching_branches_while_an_answer_streams_says_what_to_do(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "one")
        done = expect_signal(window.session.answer_done)
        window.chat.regenerate()
        await done.wait(5)
        window.backend.set_model("mock:lorem?n=5000&rate=200")
        done = expect_signal(window.session.answer_done)
        window.editor.set_message("long")
        window.chat.send()
        card = window.transcript.cards()[1]
        QTest.mouseClick(card.branch.prev_button, Qt.MouseButton.LeftButton)
        assert "Stop the answer first" in window.status_label.text()
        assert window.backend.is_busy() and len(window.transcript.cards()) == 4
        window.chat.stop()
        await done.wait(5)

    _run(qloop, scenario())


def test_fork_from_the_message_menu_and_from_the_sidebar(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "first")
        await _send(window, "second")
        source = window.session.conversation_id
        first_answer = window.transcript.cards()[1]
        figures = first_answer.figures.text()
        assert "out token" in figures
        assert first_answer.fork_action.text() == "Fork from here" and first_answer.menu_button.isVisible()
        first_answer.fork_action.trigger()
        fork = window.session.conversation_id
        assert fork != source and _texts(window) == ["first", "first"]
        history = window.services.history
        conv = history.get_conversation(fork or "")
        assert conv is not None and conv.title == "Fork of first"
        assert window.windowTitle().startswith("Fork of first") and "Forked" in window.status_label.text()
        assert window.transcript.cards()[1].figures.text() == figures  # the figures came along
        await _send(window, "on the fork")
        assert len(history.messages(source or "")) == 4  # the source is untouched
        assert window.sidebar is not None
        new = window.sidebar.fork(source or "")  # the sidebar's Fork: the whole active branch
        assert new is not None and window.session.conversation_id == new
        assert _texts(window) == ["first", "first", "second", "second"]
        assert window.sidebar.current_id() == new

    _run(qloop, scenario())


def test_two_entries_with_the_same_title_are_told_apart(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "same title")
        a = window.session.conversation_id
        window.conversations.new_conversation()
        window.backend.set_model("mock:fixed?text=x")
        await _send(window, "same title")
        await _send(window, "more")
        b = window.session.conversation_id
        sidebar = window.sidebar
        assert sidebar is not None and a and b
        assert sidebar.title_of(a) == sidebar.title_of(b) == "same title"
        detail_a, detail_b = sidebar.detail_of(a), sidebar.detail_of(b)
        assert detail_a != detail_b
        assert "mock:echo" in (detail_a or "") and "2 messages" in (detail_a or "")
        assert "mock:fixed?text=x" in (detail_b or "") and "4 messages" in (detail_b or "")
        assert ":" in (detail_a or "").split(" \u00b7 ")[0]  # the time

    _run(qloop, scenario())


def test_the_draft_belongs_to_its_conversation_and_survives_a_restart(qloop: Any, qapp: Any,
                                                                      services: Services) -> None:
    win = MainWindow(services, backend=BackendManager(services, model_id="mock:echo"))
    win.show()

    async def first() -> tuple[str, str]:
        await _send(win, "chat A")
        a = win.session.conversation_id or ""
        win.editor.set_message("half a thought for A")
        win.new_action.trigger()
        assert win.editor.message() == ""  # the draft did not follow into the new chat
        await _send(win, "chat B")
        b = win.session.conversation_id or ""
        win.editor.set_message("draft of B")
        assert win.sidebar is not None
        win.sidebar.conversation_selected.emit(a)
        assert win.editor.message() == "half a thought for A"
        win.sidebar.conversation_selected.emit(b)
        assert win.editor.message() == "draft of B"
        return a, b

    a, b = _run(qloop, first())
    win.close()
    qloop.run_until_complete(win.backend.aclose())
    qloop.run_until_complete(services.aclose())
    services2 = make_services()  # the app started again: B was open
    win2 = MainWindow(services2, backend=BackendManager(services2, model_id="mock:echo"))
    try:
        assert win2.session.conversation_id == b and win2.editor.message() == "draft of B"
        win2.open_conversation(a)
        assert win2.editor.message() == "half a thought for A"
    finally:
        win2.close()
        qloop.run_until_complete(win2.backend.aclose())
        qloop.run_until_complete(services2.aclose())


def _local_window(services: Services) -> MainWindow:
    win = MainWindow(services, backend=BackendManager(services, model_id="mock:echo"))
    win.show()
    return win


async def _load(win: MainWindow, model_id: str) -> None:
    loaded = expect_signal(win.backend.model_loaded)
    win.backend.set_model(model_id)
    await loaded.wait(90)


async def _attach(win: MainWindow, path: Path, scale: float) -> None:
    changed = expect_signal(win.backend.adapters_changed)
    win.backend.load_adapter(str(path))
    await changed.wait(90)
    [info] = win.backend.adapters()
    win.backend.set_adapter_scale(info.name, scale)


def test_reopening_restores_the_model_and_adapters_and_says_when_one_changed(
    qloop: Any, qapp: Any, services: Services, tiny: dict[str, Path], tmp_path: Path
) -> None:
    adapter = tmp_path / "style-a"
    shutil.copytree(tiny["adapter"], adapter)
    model_id = f"local:{tiny['model']}"
    win = _local_window(services)

    async def first() -> str:
        await _load(win, model_id)
        await _attach(win, adapter, 0.5)
        win.editor.max_tokens.setValue(4)
        assert await _send(win, "hello world", 60) == "complete"
        return win.session.conversation_id or ""

    try:
        cid = _run(qloop, first(), 180)
    finally:
        win.close()
        qloop.run_until_complete(win.backend.aclose())
        qloop.run_until_complete(services.aclose())
    services2 = make_services()  # a restart: mock:echo is current, no adapter loaded
    restored = None
    try:
        conv = services2.history.get_conversation(cid)
        assert conv is not None and conv.model == model_id and conv.adapters[0]["scale"] == 0.5
        sha = conv.adapters[0]["sha256"]
        assert isinstance(sha, str) and len(sha) == 64

        async def reopen() -> list[str]:
            backend = BackendManager(services2, model_id="mock:echo")
            done = expect_signal(backend.state_restored)
            nonlocal restored
            restored = MainWindow(services2, backend=backend)  # restores the last conversation
            (notes,), = await done.wait(120)
            return list(notes)

        assert _run(qloop, reopen(), 150) == []
        assert restored is not None
        backend = restored.backend
        assert backend.current_model() == model_id == restored.picker.current_model()
        [active] = backend.active_adapters()
        assert (Path(active.path), active.scale, active.sha256) == (adapter.resolve(), 0.5, sha)
        assert restored.editor.max_tokens.value() == 4

        window = restored

        async def unload_and_reopen() -> list[str]:
            unloaded = expect_signal(backend.adapters_changed)
            backend.unload_adapter(backend.adapters()[0].name)
            await unloaded.wait(10)
            done = expect_signal(backend.state_restored)
            window.open_conversation(cid)
            (notes,), = await done.wait(60)
            return list(notes)

        weights = adapter / "adapter_model.safetensors"  # the file changes: the user is told
        weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
        [note] = _run(qloop, unload_and_reopen(), 90)
        assert "changed since this conversation used it" in note and sha[:12] in note
        assert note in window.status_label.text()
        assert [a.scale for a in backend.active_adapters()] == [0.5]  # attached all the same

        shutil.rmtree(adapter)  # and when it is gone
        [note] = _run(qloop, unload_and_reopen(), 90)
        assert "is missing" in note and str(adapter) in note and backend.active_adapters() == ()
    finally:
        if restored is not None:
            restored.close()
            qloop.run_until_complete(restored.backend.aclose())
        qloop.run_until_complete(services2.aclose())


def test_a_sampled_answers_stored_seed_reproduces_it(qloop: Any, qapp: Any, services: Services,
                                                     tiny: dict[str, Path]) -> None:
    win = _local_window(services)

    async def scenario() -> None:
        await _load(win, f"local:{tiny['model']}")
        win.editor.temperature.setValue(1.5)
        win.editor.max_tokens.setValue(12)
        win.editor.seed.setText("")  # random: the app picks one and stores it
        assert await _send(win, "the quick brown fox", 60) == "complete"
        cid = win.session.conversation_id or ""
        first = win.services.history.path_to(cid)[-1]
        assert first.seed is not None and first.params["temperature"] == 1.5
        assert win.editor.seed.text() == ""  # the box still says "random"
        for seed in (first.seed + 1, first.seed):
            win.editor.seed.setText(str(seed))
            done = expect_signal(win.session.answer_done)
            win.chat.regenerate()
            await done.wait(60)
            replay = win.services.history.path_to(cid)[-1]
            assert replay.seed == seed and replay.id != first.id
        assert replay.content == first.content  # the stored seed replays the sampled answer
        others = [m.content for m in win.services.history.messages(cid) if m.role == "assistant"]
        assert len(others) == 3 and len(set(others)) == 2  # another seed, another answer

    try:
        _run(qloop, scenario(), 180)
    finally:
        win.close()
        qloop.run_until_complete(win.backend.aclose())


def test_edit_never_loses_what_was_typed_in_the_box(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "one")
        user_id = window.session.path[0].id
        window.editor.set_message("my careful draft")
        window.chat.edit_message(user_id)
        assert window.editor.message() == "one" and "Ctrl+Z brings back" in window.status_label.text()
        assert "Editing the first message" in window.transcript.empty_label.text()
        QTest.keyClick(window.editor.message_edit, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert window.editor.message() == "my careful draft"
        window.open_conversation(window.session.conversation_id or "")
        assert "Start a conversation" in window.transcript.empty_label.text()

    _run(qloop, scenario())
