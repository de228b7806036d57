"""The prompt editor: parameters, presets, shortcuts and the debounced token counter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.core.errors import AppError, InvalidParams
from app.core.settings import Preset
from app.core.types import GenerationParams
from app.ui.widgets.prompt_editor import PromptEditor, format_stop, parse_stop
from tests.conftest import wait_signal


def test_params_round_trip(qapp: Any) -> None:
    ed = PromptEditor()
    p = GenerationParams(temperature=0.2, top_p=0.9, max_tokens=64, seed=7, stop=("###", "a,b", "\n\n"))
    ed.set_params(p)
    got = ed.params()
    assert (got.temperature, got.top_p, got.max_tokens, got.seed, got.stop) == (0.2, 0.9, 64, 7, p.stop)
    ed.max_tokens.setValue(0)
    assert ed.params().max_tokens is None


def test_bad_seed_is_a_plain_message(qapp: Any) -> None:
    ed = PromptEditor()
    ed.seed.setText("abc")
    with pytest.raises(AppError, match="seed must be a whole number"):
        ed.params()
    ed.seed.setText("-1")
    with pytest.raises(InvalidParams, match="seed"):
        ed.params()


def test_stop_field_escapes() -> None:
    assert parse_stop(r"END, \n\n, a\,b") == ("END", "\n\n", "a,b")
    assert parse_stop(format_stop(("x\\y", "1,2"))) == ("x\\y", "1,2")


def test_ctrl_enter_sends_and_escape_stops(qtbot: Any) -> None:
    ed = PromptEditor()
    qtbot.addWidget(ed)
    sent, stopped = [], []
    ed.send_requested.connect(lambda: sent.append(1))
    ed.stop_requested.connect(lambda: stopped.append(1))
    qtbot.keyClicks(ed.message_edit, "hello")
    qtbot.keyClick(ed.message_edit, Qt.Key.Key_Return)  # plain Enter types a newline
    assert sent == [] and ed.message() == "hello\n"
    qtbot.keyClick(ed.message_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(ed.message_edit, Qt.Key.Key_Escape)
    assert sent == [1] and stopped == [1]


def test_presets_save_and_apply(qapp: Any) -> None:
    ed = PromptEditor()
    saved: list[tuple[str, Any, str]] = []
    ed.preset_saved.connect(lambda n, p, s: saved.append((n, p, s)))
    ed.set_presets([Preset(name="precise", params={"temperature": 0.0, "top_p": 1.0}, system_prompt="Be exact.")])
    ed.apply_preset("precise")
    assert ed.temperature.value() == 0.0 and ed.system_prompt() == "Be exact."
    ed.temperature.setValue(1.3)
    ed.set_system_prompt("Be creative.")
    ed.save_preset("creative")
    assert saved and saved[0][0] == "creative" and saved[0][1]["temperature"] == 1.3
    ed.apply_preset("precise")
    assert ed.temperature.value() == 0.0
    ed.apply_preset("creative")
    assert ed.temperature.value() == 1.3 and ed.system_prompt() == "Be creative."


def test_counter_is_debounced_and_updates(qloop: Any, qapp: Any) -> None:
    ed = PromptEditor()
    calls: list[tuple[str, str]] = []

    def counter(system: str, message: str, max_tokens: int) -> str:
        calls.append((system, message))
        return f"{len((system + ' ' + message).split())} tokens"

    async def scenario() -> None:
        ed.set_counter(counter)
        await wait_signal(ed.count_updated, 5)
        calls.clear()
        for ch in "one two three":  # typing fast: one count after the pause
            ed.message_edit.insertPlainText(ch)
        (text,) = await wait_signal(ed.count_updated, 5)
        assert text == "3 tokens"
        assert len(calls) == 1
        ed.set_system_prompt("sys")
        (text,) = await wait_signal(ed.count_updated, 5)
        assert text == "4 tokens" and ed.counter_label.text() == "4 tokens"

    try:
        qloop.run_until_complete(asyncio.wait_for(scenario(), 10))
    finally:
        ed.shutdown()


def test_model_default_temperature_never_overrides_the_users_choice(qapp: Any) -> None:
    ed = PromptEditor()
    ed.suggest_temperature(0.0)  # the bundled model's greedy default
    assert ed.params().temperature == 0.0
    ed.suggest_temperature(0.7)  # back to a remote model
    assert ed.params().temperature == 0.7
    ed.temperature.setValue(1.3)  # the user's own choice stays
    ed.suggest_temperature(0.0)
    assert ed.params().temperature == 1.3


def test_a_preset_cannot_take_the_no_preset_name(qapp: Any) -> None:
    ed = PromptEditor()
    saved: list[str] = []
    ed.preset_saved.connect(lambda n, p, s: saved.append(n))
    with pytest.raises(AppError, match="reserved"):
        ed.save_preset(" (none) ")
    assert saved == [] and [ed.preset_box.itemText(i) for i in range(ed.preset_box.count())] == ["(none)"]


def test_switching_model_shows_its_default_temperature_and_keeps_the_users_number(qapp: Any) -> None:
    """0.70 -> 0.00 and back used to happen silently in the box."""
    ed = PromptEditor()
    ed.suggest_temperature(0.0)  # the bundled model
    assert ed.temperature.text() == "default 0.00" and ed.params().temperature == 0.0
    ed.suggest_temperature(0.7)
    assert ed.temperature.text() == "default 0.70" and ed.params().temperature == 0.7
    ed.temperature.stepBy(1)  # up from "default" starts at the default itself
    assert ed.temperature.value() == 0.7 and not ed.temperature.is_default()
    ed.temperature.setValue(0.2)
    ed.suggest_temperature(0.0)
    assert ed.temperature.text() == "0.20" and ed.params().temperature == 0.2
    ed.temperature.setValue(0.0)
    ed.temperature.stepBy(-1)  # below 0: back to the model's default
    assert ed.temperature.is_default() and ed.temperature.text() == "default 0.00"


def test_enter_sends_when_chosen_and_ctrl_enter_always(qapp: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    ed = PromptEditor()
    sent: list[int] = []
    ed.send_requested.connect(lambda: sent.append(1))
    box = ed.message_edit
    QTest.keyClicks(box, "line one")
    QTest.keyClick(box, Qt.Key.Key_Return)  # off by default: a new line
    assert sent == [] and ed.message() == "line one\n"
    QTest.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert sent == [1]
    ed.set_enter_sends(True)
    QTest.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)  # a new line
    assert sent == [1] and ed.message() == "line one\n\n"
    QTest.keyClick(box, Qt.Key.Key_Return)
    QTest.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert sent == [1, 1, 1]
    assert "Enter to send" in box.placeholderText()
