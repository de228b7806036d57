"""The main window end to end (offscreen, qasync loop, mock provider, real history/ledger)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog

from app.core.run_events import RunCancelled, RunEvent, RunFinished, RunStats
from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.excepthook import ErrorReporter
from app.ui.main_window import MainWindow
from tests.conftest import expect_signal, wait_run_event, wait_signal
from tests.support.fakes import FakeLocal
from tests.ui.conftest import make_services


@pytest.fixture
def window(qloop: Any, qapp: Any, services: Services) -> Any:
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend)
    win.show()
    yield win
    win.close()
    qloop.run_until_complete(backend.aclose())


def _run(qloop: Any, coro: Any, timeout: float = 20) -> None:
    qloop.run_until_complete(asyncio.wait_for(coro, timeout))


async def _send(win: MainWindow, text: str) -> tuple[str, str]:
    done = expect_signal(win.session.answer_done)
    win.editor.set_message(text)
    win.editor.send_button.click()
    (gen, status), = await done.wait(10)
    return gen, status


def _stored(win: MainWindow) -> list[Any]:
    cid = win.session.conversation_id
    assert cid is not None
    return win.services.history.messages(cid)


def test_send_streams_and_updates_dashboard(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        gen, status = await _send(window, "hello from the test")
        assert status == "complete"
        user, answer = _stored(window)
        assert (user.role, user.content) == ("user", "hello from the test")
        assert (answer.role, answer.content, answer.status, answer.model) == (
            "assistant", "hello from the test", "complete", "mock:echo")
        assert answer.meta["completion_tokens"] == 4 and answer.meta["params"]["temperature"] == 0.7
        card = window.transcript.cards()[-1]
        assert card.body.toPlainText() == "hello from the test"
        assert "4 out tokens" in card.figures.text()
        assert window.editor.send_button.isEnabled() and not window.editor.stop_button.isEnabled()
        assert window.editor.message() == ""
        dash = window.dashboard
        assert dash is not None
        dash.refresh()
        assert dash.message_rows() >= 1
        assert dash.live_figures().tokens == 4
        assert window.services.ledger.recent(1)[0].conversation_id == window.session.conversation_id

    _run(qloop, scenario())


def test_stop_mid_stream_keeps_partial(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        window.backend.set_model("mock:lorem?n=5000&rate=200")
        done = expect_signal(window.session.answer_done)
        window.editor.set_message("go on and on")
        window.chat.send()
        assert window.editor.stop_button.isEnabled()
        for _ in range(10):  # a partial save with text in it (the first tick may come before a token)
            await wait_signal(window.session._save_timer.timeout, 5)
            saved = _stored(window)[-1]
            if saved.content:
                break
        assert saved.status == "streaming" and saved.content
        window.editor.stop_button.click()
        assert (await done.wait(5))[0][1] == "cancelled"
        answer = _stored(window)[-1]
        assert answer.status == "cancelled" and len(answer.content.split()) >= len(saved.content.split())
        card = window.transcript.cards()[-1]
        assert card.body.toPlainText().split() == answer.content.split()
        assert "Stopped" in card.error_label.text()
        assert window.editor.send_button.isEnabled()
        # a stopped answer keeps its figures, as the ledger recorded them (the footer was empty)
        recorded = window.services.ledger.recent(1)[0]
        assert recorded.finish_reason == "cancelled" and recorded.completion_tokens > 0
        assert answer.meta["completion_tokens"] == recorded.completion_tokens
        assert card.figures.isVisibleTo(card) and f"{recorded.completion_tokens:,} out tokens" in card.figures.text()

    _run(qloop, scenario())


def test_error_mid_stream_keeps_partial_and_shows_error(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        window.backend.set_model("mock:lorem?n=40&fail=mid&fail_after=6")
        _, status = await _send(window, "break please")
        assert status == "error"
        answer = _stored(window)[-1]
        assert answer.status == "error" and len(answer.content.split()) == 6 and "cut mid-way" in answer.error
        card = window.transcript.cards()[-1]
        assert len(card.body.toPlainText().split()) == 6
        assert card.error_label.isVisibleTo(card) and "cut mid-way" in card.error_label.text()
        assert "cut mid-way" in window.status_label.text()
        assert window.editor.send_button.isEnabled()

    _run(qloop, scenario())


def test_switch_model_mid_conversation(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "first")
        from app.core.services import ModelListing

        mock_models = await window.services.registry.get("mock").list_models()
        window.backend.models_listed.emit(ModelListing(mock_models, {}))
        assert "mock:markdown" in window.picker.model_ids()
        assert window.picker.select_model("mock:markdown")  # as if the user picked it
        assert window.backend.current_model() == "mock:markdown"
        assert window.picker.current_model() == "mock:markdown"
        await _send(window, "second")
        answers = [m for m in _stored(window) if m.role == "assistant"]
        assert [a.model for a in answers] == ["mock:echo", "mock:markdown"]
        assert "quick answer" in window.transcript.cards()[-1].body.toPlainText()
        assert "mock:markdown" in window.transcript.cards()[-1].model_label.text()

    _run(qloop, scenario())


def test_regenerate_and_edit_resend_keep_the_old_turns(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "one")
        await _send(window, "two")
        window.backend.set_model("mock:fixed?text=again")
        done = expect_signal(window.session.answer_done)
        window.chat.regenerate()
        await done.wait(5)
        msgs = _stored(window)  # the old answer stays, beside the new one
        assert [(m.role, m.content) for m in msgs] == [
            ("user", "one"), ("assistant", "one"), ("user", "two"), ("assistant", "two"), ("assistant", "again")]
        assert msgs[4].parent_id == msgs[2].id == msgs[3].parent_id
        assert [c.body.toPlainText() for c in window.transcript.cards()] == ["one", "one", "two", "again"]
        assert window.transcript.cards()[-1].branch.text() == "\u2039 2/2 \u203a"
        window.chat.edit_message(msgs[2].id)
        assert window.editor.message() == "two"
        assert len(_stored(window)) == 5 and len(window.transcript.cards()) == 2  # shown up to its parent
        window.backend.set_model("mock:echo")
        await _send(window, "two, edited")
        msgs = _stored(window)
        assert [m.content for m in msgs][-2:] == ["two, edited", "two, edited"] and len(msgs) == 7
        assert msgs[5].parent_id == msgs[1].id  # a sibling of "two"
        sent = window.services.registry.get("mock").requests[-1]  # type: ignore[attr-defined]
        assert [m.content for m in sent.messages] == ["one", "one", "two, edited"]
        assert window.transcript.cards()[2].branch.text() == "\u2039 2/2 \u203a"

    _run(qloop, scenario())


def test_history_survives_restart(qloop: Any, qapp: Any, services: Services) -> None:
    win = MainWindow(services, backend=BackendManager(services, model_id="mock:echo"))
    win.show()

    async def first() -> None:
        win.editor.set_system_prompt("Be brief.")
        await _send(win, "remember me")

    _run(qloop, first())
    cid = win.session.conversation_id
    win.close()
    qloop.run_until_complete(win.backend.aclose())
    qloop.run_until_complete(services.aclose())

    services2 = make_services()  # the app started again
    win2 = MainWindow(services2, backend=BackendManager(services2, model_id="mock:echo"))
    try:
        assert services2.settings.last_conversation_id == cid
        assert win2.session.conversation_id == cid
        texts = [c.body.toPlainText() for c in win2.transcript.cards()]
        assert texts == ["remember me", "remember me"]
        assert win2.editor.system_prompt() == "Be brief."
        assert "2 out tokens" in win2.transcript.cards()[-1].figures.text()
    finally:
        win2.close()
        qloop.run_until_complete(services2.aclose())


def test_prompt_token_counter_updates(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        window.editor.set_message("one two three")
        (text,) = await wait_signal(window.editor.count_updated, 5)
        assert text.startswith("6 tokens")  # mock: 3 words + 3 per message
        window.editor.set_system_prompt("be nice")
        (text,) = await wait_signal(window.editor.count_updated, 5)
        assert text.startswith("11 tokens") and "free" in text

    _run(qloop, scenario())


def test_excepthook_leaves_no_stuck_generating_state(window: MainWindow, qloop: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    reporter = ErrorReporter()
    reporter.add_recovery(window.recover)
    reporter.install()
    original = window.services.history.update_message

    def broken(message_id: int, **kw: Any) -> None:
        if kw.get("status") == "complete":
            raise RuntimeError("disk on fire")
        original(message_id, **kw)

    monkeypatch.setattr(window.services.history, "update_message", broken)

    async def scenario() -> None:
        window.editor.set_message("trigger")
        window.chat.send()
        (message,) = await wait_signal(reporter.error_reported, 5)
        assert "disk on fire" in message
        assert not window.backend.is_busy() and not window.session.is_streaming()
        assert not window.transcript.is_streaming()
        assert window.editor.send_button.isEnabled() and not window.editor.stop_button.isEnabled()

    try:
        _run(qloop, scenario())
    finally:
        reporter.uninstall()


def test_export_markdown_and_json(window: MainWindow, qloop: Any, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        window.editor.seed.setText("42")
        await _send(window, "export me")

    _run(qloop, scenario())
    md_path, json_path = tmp_path / "c.md", tmp_path / "c"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(md_path), "")))
    window.conversations.export_markdown()
    assert "export me" in md_path.read_text(encoding="utf-8")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(json_path), "")))
    window.conversations.export_json()
    data = (tmp_path / "c.json").read_text(encoding="utf-8")
    assert '"seed": 42' in data and "mock:echo" in data


def test_model_load_shows_progress_and_failure_keeps_previous(window: MainWindow, qloop: Any) -> None:

    window.services.registry.register("local", FakeLocal)
    seen: list[tuple[bool, int]] = []
    window.backend.model_loading.connect(
        lambda *_: seen.append((window.progress.isVisibleTo(window), window.progress.value())))

    async def scenario() -> None:
        window.backend.set_model("local:broken")
        await wait_signal(window.backend.model_load_failed, 5)
        assert seen and all(visible for visible, _ in seen)
        assert (True, 500) in seen  # "reading weights" at 0.5
        assert not window.progress.isVisibleTo(window)
        assert window.backend.current_model() == "mock:echo" == window.picker.current_model()
        assert "damaged" in window.status_label.text() and "previous model" in window.status_label.text()
        _, status = await _send(window, "still works")
        assert status == "complete" and _stored(window)[-1].model == "mock:echo"
        window.backend.set_model("local:tiny")
        await wait_signal(window.backend.model_loaded, 5)
        assert window.picker.current_model() == "local:tiny" and not window.progress.isVisibleTo(window)

    _run(qloop, scenario())


def test_error_reporter_redacts_keys_in_message_and_log(qapp: Any, tmp_path: Path) -> None:
    import logging

    from app.ui.excepthook import setup_logging

    log_file = tmp_path / "app.log"
    setup_logging(log_file)
    reporter = ErrorReporter()
    shown: list[str] = []
    recovered: list[int] = []
    reporter.error_reported.connect(shown.append)
    reporter.add_recovery(lambda: recovered.append(1))
    try:
        raise RuntimeError("upstream said: invalid key sk-abcdefghijklmnop1234")
    except RuntimeError as exc:
        reporter.excepthook(type(exc), exc, exc.__traceback__)
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert shown and "sk-abcdefghijklmnop1234" not in shown[0] and "***" in shown[0]
    assert recovered == [1]
    text = log_file.read_text(encoding="utf-8")
    assert "RuntimeError" in text and "sk-abcdefghijklmnop1234" not in text
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "_llm_playground", False):
            logging.getLogger().removeHandler(handler)
            handler.close()


def test_compare_action_answers_draft_twice(window: MainWindow, qloop: Any) -> None:
    if window.lora_panel is None or not hasattr(window.lora_panel, "compare_requested"):
        pytest.fail("the LoRA panel (with its compare action) is part of the main window")
    finished: list[str] = []
    window.backend.run_event.connect(lambda e: finished.append(e.result.text) if isinstance(e, RunFinished) else None)

    async def scenario() -> None:
        window.editor.set_message("compare me")
        window.lora_panel.compare_requested.emit()
        view = window.dialogs["compare"]
        assert view.isVisible()
        while len(finished) < 2:
            await wait_run_event(window.backend, RunFinished, timeout=5)
        assert finished == ["compare me", "compare me"]
        assert view.pane_text("base") == "compare me" == view.pane_text("adapter")
        assert window.session.conversation_id is None  # a comparison is not saved as chat

    _run(qloop, scenario())


def test_sidebar_switches_conversations(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        await _send(window, "first chat")
        first = window.session.conversation_id
        window.new_action.trigger()
        assert window.transcript.cards() == [] and window.session.conversation_id is None
        await _send(window, "second chat")
        assert window.sidebar is not None
        window.sidebar.conversation_selected.emit(first)
        assert window.session.conversation_id == first
        assert [c.body.toPlainText() for c in window.transcript.cards()] == ["first chat", "first chat"]
        assert window.services.settings.last_conversation_id == first
        await _send(window, "more")  # continues the reopened conversation with its history
        sent = window.services.registry.get("mock").requests[-1]  # type: ignore[attr-defined]
        assert [m.content for m in sent.messages] == ["first chat", "first chat", "more"]

    _run(qloop, scenario())


def test_open_model_file_switches_to_local_model(window: MainWindow, qloop: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:

    window.services.registry.register("local", FakeLocal)
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(folder / "config.json"), "")))

    async def scenario() -> None:
        loaded = asyncio.ensure_future(wait_signal(window.backend.model_loaded, 5))
        window.open_model_action.trigger()
        (model_id,) = await loaded
        assert model_id == f"local:{folder}" == window.picker.current_model()
        assert window.services.settings.recent_local_models[0] == str(folder)
        assert window.services.registry.get("local").loads == [str(folder)]  # type: ignore[attr-defined]

    _run(qloop, scenario())


def test_deleting_the_streaming_conversation_stops_its_answer(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        window.backend.set_model("mock:lorem?n=5000&rate=200")
        done = expect_signal(window.session.answer_done)
        window.editor.set_message("a long one")
        window.chat.send()
        cid = window.session.conversation_id
        await wait_signal(window.session._save_timer.timeout, 5)
        assert window.sidebar is not None
        window.sidebar.delete(cid)
        assert (await done.wait(5))[0][1] == "cancelled"
        assert not window.backend.is_busy() and window.editor.send_button.isEnabled()
        assert window.session.conversation_id is None and window.transcript.cards() == []
        assert window.services.history.get_conversation(cid) is None
        assert window.services.history.list_conversations() == []

    _run(qloop, scenario())


def test_esc_stops_with_the_focus_outside_the_message_box(window: MainWindow, qloop: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    async def scenario() -> None:
        window.backend.set_model("mock:lorem?n=5000&rate=200")
        done = expect_signal(window.session.answer_done)
        window.editor.set_message("go")
        QTest.keyClick(window.editor.message_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert window.backend.is_busy()
        await wait_signal(window.session._save_timer.timeout, 5)
        QTest.keyClick(window.editor.temperature, Qt.Key.Key_Escape)  # focus on a parameter
        assert (await done.wait(5))[0][1] == "cancelled"
        assert _stored(window)[-1].content  # the partial answer is kept

    _run(qloop, scenario())


def test_new_chat_leaves_a_running_comparison_alone(window: MainWindow, qloop: Any) -> None:
    finished: list[str] = []
    cancelled: list[str] = []
    window.backend.run_event.connect(lambda e: finished.append(e.result.text) if isinstance(e, RunFinished) else None)
    window.backend.run_event.connect(lambda e: cancelled.append(e.run_id) if isinstance(e, RunCancelled) else None)

    async def scenario() -> None:
        window.backend.set_model("mock:lorem?n=20&rate=100")
        window.editor.set_message("compare me")
        window.lora_panel.compare_requested.emit()
        assert window.backend.is_busy()
        window.new_action.trigger()  # the main chat has nothing streaming
        while len(finished) < 2 and not cancelled:
            await wait_signal(window.backend.ledger_changed, 5)
        assert cancelled == [] and len(finished) == 2
        assert window.session.conversation_id is None

    _run(qloop, scenario())


def test_typed_text_survives_a_failed_save(window: MainWindow, qloop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    def full_disk(*_a: Any, **_k: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(window.services.history, "add_message", full_disk)
    window.editor.set_message("a long message I typed with care")
    with pytest.raises(sqlite3.OperationalError):
        window.chat.send()
    assert window.editor.message() == "a long message I typed with care"
    assert not window.backend.is_busy()


def test_closing_the_keys_dialog_relists_the_models(window: MainWindow, qloop: Any) -> None:
    from tests.support.openai_server import OpenAIServer

    key = "sk-loopback-test-key-0123456789"
    with OpenAIServer(require_key=key, models=("test-model",)) as server:
        window.services.settings.endpoints.append(server.endpoint("Loopback", needs_key=True))

        def labels() -> list[str]:
            return [window.picker.itemText(i) for i in range(window.picker.count()) if "test-model" in
                    window.picker.itemText(i) or "needs key" in window.picker.itemText(i)]

        async def scenario() -> None:
            window.backend.refresh_models()
            await wait_signal(window.backend.models_listed, 10)
            assert not any("test-model" in t for t in labels())  # no key yet: the priced list, "needs key"
            window.dialog_control.show_keys()
            dlg = window.dialogs["keys"]
            dlg.key_input("endpoint:Loopback").setText(key)
            assert dlg.save_key("endpoint:Loopback")
            dlg.reject()
            await wait_signal(window.backend.models_listed, 10)
            assert any("test-model" in t for t in labels())

        try:
            _run(qloop, scenario(), 30)
        finally:
            qloop.run_until_complete(asyncio.wait_for(window.services.registry.aclose(), 10))


def test_renaming_the_open_conversation_retitles_the_window(window: MainWindow, qloop: Any) -> None:
    _run(qloop, _send(window, "hello"))
    assert window.windowTitle() == "hello — LLM Playground"
    assert window.sidebar is not None
    assert window.sidebar.rename(window.session.conversation_id, "Greetings")
    assert window.windowTitle() == "Greetings — LLM Playground"


def test_edit_while_an_answer_streams_says_what_to_do(window: MainWindow, qloop: Any) -> None:
    async def scenario() -> None:
        window.backend.set_model("mock:lorem?n=5000&rate=200")
        window.editor.set_message("first")
        window.chat.send()
        user_card = window.transcript.cards()[0]
        assert user_card.edit_button is not None
        user_card.edit_button.click()
        assert "Stop the answer first" in window.status_label.text()
        assert window.backend.is_busy() and len(_stored(window)) == 2  # nothing was dropped
        window.chat.stop()
        await wait_signal(window.session.answer_done, 5)

    _run(qloop, scenario())


def test_a_thinking_answer_shows_its_reasoning_and_history_restores_it(
    qloop: Any, qapp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, services: Services
) -> None:
    win = MainWindow(services, backend=BackendManager(services, model_id="mock:echo?think=5&rate=500"))
    win.show()
    seen_thinking: list[bool] = []

    def on_stats(event: RunEvent) -> None:  # while only reasoning has arrived
        card = win.transcript.cards()[-1]
        if isinstance(event, RunStats) and event.figures.thinking:
            win.transcript.flush()
            seen_thinking.append(card.thinking is not None and card.thinking.is_expanded())

    win.backend.run_event.connect(on_stats)
    try:
        _run(qloop, _send(win, "think about it"))
        answer = _stored(win)[-1]
        assert answer.content == "think about it" and answer.status == "complete"
        assert answer.meta["reasoning"] == "alpha beta gamma delta model" and answer.meta["reasoning_tokens"] == 5
        card = win.transcript.cards()[-1]
        assert seen_thinking and all(seen_thinking)
        assert card.body.toPlainText() == "think about it"
        assert card.thinking is not None and not card.thinking.is_expanded()
        assert card.thinking.text == "alpha beta gamma delta model"
        md_path = tmp_path / "t.md"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(md_path), "")))
        win.conversations.export_markdown()
        md = md_path.read_text(encoding="utf-8")
        assert "<details><summary>Thinking</summary>" in md and "alpha beta gamma delta model" in md
        assert "figures: " in md and "reasoning alpha" not in md  # not dumped among the figures
        cid = win.session.conversation_id
        win.session.open(None)
        win.session.open(cid)
        restored = win.transcript.cards()[-1]
        assert restored.body.toPlainText() == "think about it"
        assert restored.thinking is not None and not restored.thinking.is_expanded()
        assert restored.thinking.text == "alpha beta gamma delta model"
        assert win.session.chat[-1].content == "think about it"  # reasoning is not sent back
    finally:
        win.close()
        qloop.run_until_complete(win.backend.aclose())
        qloop.run_until_complete(services.aclose())


def test_the_window_fits_a_1366_pixel_wide_laptop_screen(window: Any) -> None:
    """The parameter row once made the window at least 1,439 px wide, docks included."""
    assert window.minimumSizeHint().width() <= 1366
    window.editor.counter_label.setText("~123,456 tokens · $12.345678 (estimated, gpt-4o)")
    assert window.minimumSizeHint().width() <= 1366


def test_the_status_bar_says_when_saving_waits_for_a_busy_history(window: MainWindow, qloop: Any) -> None:
    from tests.support.sqlite_lock import LockHolder

    holder = LockHolder(window.services.history.path).start()  # another program holds the history
    try:
        _, status = qloop.run_until_complete(asyncio.wait_for(_send(window, "kept"), 20))
        assert status == "complete" and window.transcript.cards()[-1].body.toPlainText() == "kept"
        assert window.status_label.text().startswith(
            "Saving to history is pending (the history is busy in another program)...")
    finally:
        holder.release()
    assert window.session.retry_pending()
    assert window.status_label.text().startswith("Saved to history")
    assert [(m.content, m.status) for m in _stored(window)] == [("kept", "complete"), ("kept", "complete")]


def test_fork_on_a_busy_history_says_busy_in_the_status_bar(window: MainWindow, qloop: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.sqlite_lock import LockHolder

    qloop.run_until_complete(asyncio.wait_for(_send(window, "fork me"), 20))
    history = window.services.history
    monkeypatch.setattr(history, "busy_timeout_s", 0.3)
    with LockHolder(history.path):
        window.conversations.fork_from(_stored(window)[0].id)
    assert window.status_label.text().startswith("Could not fork: busy: another instance holds the history")
    assert len(history.list_conversations()) == 1


def test_a_hint_in_the_status_bar_goes_at_the_next_action(window: MainWindow, qloop: Any) -> None:
    """"Edit the message and send it..." and "Forked..." stayed after the user had moved on."""
    async def scenario() -> None:
        await _send(window, "first question")
        user = next(m for m in _stored(window) if m.role == "user")
        window.chat.edit_message(user.id)
        assert window.status_label.text().startswith("Edit the message and send it")
        window.editor.set_message("the question, edited")
        done = expect_signal(window.session.answer_done)
        window.chat.send()  # the next action: an answer starts
        await done.wait(10)
        assert not window.status_label.text().startswith("Edit the message")
        answer = _stored(window)[-1]
        window.conversations.fork_from(answer.id)
        assert window.status_label.text().startswith("Forked:")
        window.conversations.new_conversation()  # another conversation is shown
        assert window.status_label.text() == ""
        window.show_hint("Copied to the clipboard.")
        window.show_status("Something else, shown after", error=True)
        await _send(window, "again")
        assert window.status_label.text() == "Something else, shown after"  # not a hint: it stays

    _run(qloop, scenario())


def test_a_long_status_message_elides_instead_of_widening_the_window(window: MainWindow) -> None:
    """Seen at 1024x700: "Model: mock:fixed?text=<a long text>" ran past the window's edge."""
    before = window.minimumSizeHint().width()
    long = "Model: mock:fixed?text=" + "%20word" * 200
    window.show_status(long)
    assert window.status_label.text() == long and window.status_label.toolTip() == long
    assert window.minimumSizeHint().width() == before
    assert window.dashboard is not None
    window.dashboard._end_live("Last answer · " + long, "")  # the Usage dock's line elides too
    assert window.dashboard.minimumSizeHint().width() < 400
