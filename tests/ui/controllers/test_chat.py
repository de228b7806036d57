"""app/ui/controllers/chat.py: sending and answering, through the controller's signals and
the real session on mock:echo."""

from __future__ import annotations

import asyncio
from typing import Any

from app.ui.controllers.chat import ChatController
from tests.conftest import expect_signal
from tests.ui.controllers.conftest import Parts, Said


def _controller(parts: Parts) -> ChatController:
    ctl = ChatController(parts.services, parts.backend, parts.session, parts.editor, parts.transcript, parts.parent)
    parts.editor.preset_saved.connect(ctl._on_editor_preset_saved)
    parts.editor.preset_deleted.connect(ctl._on_editor_preset_deleted)
    parts.editor.message_edit.textChanged.connect(ctl._on_editor_draft_changed)
    return ctl


def _run(qloop: Any, coro: Any) -> Any:
    return qloop.run_until_complete(asyncio.wait_for(coro, 20))


def test_send_empties_the_editor_and_says_sent(parts: Parts, qloop: Any) -> None:
    ctl = _controller(parts)
    sent: list[str] = []
    ctl.sent.connect(sent.append)

    async def scenario() -> str:
        done = expect_signal(parts.session.answer_done)
        parts.editor.set_message("hello there")
        gen_id = ctl.send()
        assert gen_id is not None and sent == [gen_id]
        assert parts.editor.message() == ""
        (answered, status), = await done.wait(10)
        assert answered == gen_id and status == "complete"
        return gen_id

    _run(qloop, scenario())
    assert ctl.send() is None  # nothing typed: nothing sent
    assert len(sent) == 1


def test_wrong_parameters_keep_the_text_and_say_what_to_do(parts: Parts) -> None:
    ctl = _controller(parts)
    said, sent = Said(ctl), []
    ctl.sent.connect(sent.append)
    parts.editor.seed.setText("forty-two")
    parts.editor.set_message("keep me")
    assert ctl.send() is None
    assert sent == [] and parts.editor.message() == "keep me"
    message, error = said.last
    assert error and "The seed must be a whole number" in message


def test_editing_a_message_hints_and_keeps_what_was_typed(parts: Parts, qloop: Any) -> None:
    ctl = _controller(parts)
    said = Said(ctl)

    async def scenario() -> None:
        done = expect_signal(parts.session.answer_done)
        parts.editor.set_message("first question")
        ctl.send()
        await done.wait(10)

    _run(qloop, scenario())
    cid = parts.session.conversation_id
    assert cid is not None
    user = next(m for m in parts.services.history.messages(cid) if m.role == "user")
    parts.editor.set_message("half-typed")
    ctl.edit_message(user.id)
    assert parts.editor.message() == "first question"
    assert said.hints and said.hints[-1].endswith("Ctrl+Z brings back what you had typed.")
    parts.editor.message_edit.undo()
    assert parts.editor.message() == "half-typed"


def test_presets_are_saved_in_the_settings(parts: Parts) -> None:
    _controller(parts)
    parts.editor.preset_saved.emit("terse", {"temperature": 0.1}, "Be terse.")
    (preset,) = parts.services.settings.presets
    assert (preset.name, preset.params, preset.system_prompt) == ("terse", {"temperature": 0.1}, "Be terse.")
    assert "terse" in parts.services.paths.settings_file.read_text(encoding="utf-8")
    parts.editor.preset_deleted.emit("terse")
    assert parts.services.settings.presets == []


def test_probabilities_ask_the_session_for_alternatives(parts: Parts) -> None:
    ctl = _controller(parts)
    ctl.set_probabilities(True)
    assert parts.session.lens_k == parts.services.settings.probabilities_top_k
    assert parts.services.settings.show_probabilities
    ctl.set_probabilities(False)
    assert parts.session.lens_k is None and not parts.services.settings.show_probabilities
