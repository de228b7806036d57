"""app/ui/controllers/dialogs.py: the keys, settings and comparison dialogs, made once and
kept in the shared registry while open."""

from __future__ import annotations

from typing import Any

from app.core.types import ChatMessage
from app.ui.controllers.dialogs import DialogController
from tests.ui.controllers.conftest import Parts, Said


def _controller(parts: Parts, registry: dict[str, Any]) -> DialogController:
    return DialogController(parts.services, parts.backend, parts.session, parts.editor, registry, parts.parent)


def test_a_dialog_is_made_once_and_leaves_the_registry_when_closed(parts: Parts) -> None:
    registry: dict[str, Any] = {}
    ctl = _controller(parts, registry)
    ctl.show_keys()
    keys = registry["keys"]
    assert keys.isVisible()
    ctl.show_keys()
    assert registry["keys"] is keys
    keys.reject()
    assert "keys" not in registry


def test_saved_settings_are_announced(parts: Parts) -> None:
    registry: dict[str, Any] = {}
    ctl = _controller(parts, registry)
    said, changed = Said(ctl), []
    ctl.settings_changed.connect(lambda: changed.append(True))
    ctl.add_endpoint()
    registry["settings"].settings_changed.emit()
    assert changed == [True] and said.last == ("Settings saved.", False)
    registry["settings"].reject()


def test_the_comparison_takes_the_draft_or_the_last_question(parts: Parts) -> None:
    ctl = _controller(parts, {})
    parts.editor.set_system_prompt("Be brief.")
    parts.editor.set_message("what is a tide?")
    assert ctl.compare_messages() == [ChatMessage("system", "Be brief."), ChatMessage("user", "what is a tide?")]
    parts.editor.set_message("")
    assert ctl.compare_messages() == [ChatMessage("system", "Be brief.")]  # nothing asked yet
