"""app/ui/controllers/conversations.py: which conversation is open, its title and its export,
through the controller's signals and the real session and history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog

from app.ui.controllers.chat import ChatController
from app.ui.controllers.conversations import ConversationController
from tests.conftest import expect_signal
from tests.ui.controllers.conftest import Parts, Said


def _controller(parts: Parts) -> ConversationController:
    ctl = ConversationController(parts.services, parts.backend, parts.session, parts.editor, parts.parent)
    parts.session.conversation_changed.connect(ctl._on_session_conversation_changed)
    parts.session.branch_changed.connect(ctl.apply_state)
    return ctl


def _talk(parts: Parts, qloop: Any, text: str) -> str:
    """Send ``text`` and wait for the answer; the open conversation's id."""
    chat = ChatController(parts.services, parts.backend, parts.session, parts.editor, parts.transcript, parts.parent)

    async def scenario() -> None:
        done = expect_signal(parts.session.answer_done)
        parts.editor.set_message(text)
        chat.send()
        await done.wait(10)

    qloop.run_until_complete(asyncio.wait_for(scenario(), 20))
    assert parts.session.conversation_id is not None
    return parts.session.conversation_id


def test_the_title_follows_the_open_conversation(parts: Parts, qloop: Any) -> None:
    ctl = _controller(parts)
    titles: list[str] = []
    ctl.title_changed.connect(titles.append)
    cid = _talk(parts, qloop, "tides please")
    conv = parts.services.history.get_conversation(cid)
    assert conv is not None and titles[-1] == f"{conv.title} — LLM Playground"
    assert parts.services.settings.last_conversation_id == cid
    ctl._on_sidebar_conversation_renamed(cid, "Tides")
    assert titles[-1] == "Tides — LLM Playground"
    ctl.new_conversation()
    assert parts.session.conversation_id is None and titles[-1] == "LLM Playground"
    assert parts.services.settings.last_conversation_id is None


def test_opening_brings_back_the_system_prompt_and_draft(parts: Parts, qloop: Any) -> None:
    ctl = _controller(parts)
    parts.editor.set_system_prompt("Be brief.")
    cid = _talk(parts, qloop, "first")
    ctl.new_conversation()
    parts.editor.set_system_prompt("")
    ctl.open_conversation(cid)
    assert parts.session.conversation_id == cid
    assert parts.editor.system_prompt() == "Be brief."


def test_fork_opens_the_copy_with_a_hint(parts: Parts, qloop: Any) -> None:
    ctl = _controller(parts)
    said = Said(ctl)
    cid = _talk(parts, qloop, "to be forked")
    answer = parts.services.history.messages(cid)[-1]
    ctl.fork_from(answer.id)
    assert parts.session.conversation_id not in (None, cid)
    assert said.hints and said.hints[-1].startswith("Forked: ")


def test_deleting_the_open_conversation_closes_it(parts: Parts, qloop: Any) -> None:
    ctl = _controller(parts)
    cid = _talk(parts, qloop, "short-lived")
    ctl._on_sidebar_conversation_deleted(cid)
    assert parts.session.conversation_id is None


def test_export_says_where_or_why_not(parts: Parts, qloop: Any, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ctl = _controller(parts)
    said = Said(ctl)
    ctl.export_json()
    assert said.last == ("Nothing to export yet: send a message first.", True)
    _talk(parts, qloop, "export me")
    target = tmp_path / "out"  # the suffix is added
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    ctl.export_json()
    written = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert "export me" in json.dumps(written)
    assert said.last == (f"Exported to {target}.json.", False)
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "missing" / "x.md"), "")))
    ctl.export_markdown()
    message, error = said.last
    assert error and message.startswith("Could not write") and "Pick another folder." in message
