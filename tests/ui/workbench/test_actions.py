"""Tests of app/ui/workbench/actions.py: grid files opened, edited and saved; closing or quitting
with an edited grid asks first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.core.grid.config import load_grid


def test_grid_files_open_edit_and_save(bench: Any, tmp_path: Path) -> None:
    source = tmp_path / "grid.yaml"
    source.write_text("description: Capitals\nprompts: ['Capital of {{c}}?']\nproviders: [mock:echo, echo]\n"
                      "tests:\n  - vars: {c: France}\n    assert: [{type: icontains, value: france}]\n", encoding="utf-8")
    assert bench.open_file(source)
    assert bench.description.text() == "Capitals" and len(bench.config.variants) == 2 and not bench.dirty
    assert "grid.yaml" in bench.windowTitle()
    bench.model.setData(bench.model.index(0, 0), "Spain")
    assert bench.dirty and bench.windowTitle().endswith("grid.yaml* — LLM Playground")
    target = tmp_path / "saved.json"
    assert bench.save_as(target) and not bench.dirty
    again = load_grid(target)
    assert again == bench.config and again.tests[0].vars["c"] == "Spain"
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompts: [x]\nproviders:\n  - id: mock:echo\n    config: {temperature: hot}\n", encoding="utf-8")
    assert not bench.open_file(bad)
    assert "bad.yaml, line 4: providers[0].config.temperature: must be a number" in bench.message.text()
    assert bench.config == again  # the grid on screen is kept
    (tmp_path / "tools.yaml").write_text("- {type: function, function: {name: f, parameters: {type: obj}}}\n",
                                         encoding="utf-8")  # fmt: skip
    bad.write_text("prompts: [x]\nproviders:\n  - id: mock:echo\n    config: {tools: file://tools.yaml}\n",
                   encoding="utf-8")  # fmt: skip
    assert not bench.open_file(bad)
    assert ("bad.yaml, line 4: providers[0].config.tools (tools.yaml): tool 'f': parameters: $.type: 'obj' is not "
            "valid") in bench.message.text()  # fmt: skip
    assert bench.config == again


def test_closing_or_quitting_with_an_edited_grid_asks_first(bench: Any, window: Any, tmp_path: Path) -> None:
    """Close and Ctrl+Q dropped an edited, unsaved grid without a word."""
    from PySide6.QtWidgets import QMessageBox

    buttons = QMessageBox.StandardButton
    source = tmp_path / "grid.yaml"
    source.write_text("prompts: ['Capital of {{c}}?']\nproviders: [mock:echo]\ntests:\n  - vars: {c: France}\n",
                      encoding="utf-8")
    assert bench.open_file(source)
    bench.close_action.trigger()  # nothing edited: it just closes
    assert not bench.isVisible() and bench.save_box is None
    window.workbench_action.trigger()
    bench.model.setData(bench.model.index(0, 0), "Spain")
    assert bench.dirty
    bench.close_action.trigger()
    box = bench.save_box
    assert bench.isVisible() and box is not None and "grid.yaml" in box.text()
    box.button(buttons.Cancel).click()  # Cancel: nothing happens
    assert bench.isVisible() and bench.dirty and bench.save_box is None
    QTest.keyClick(bench, Qt.Key.Key_Escape)  # Esc closes as Close does: it asks too
    bench.save_box.button(buttons.Save).click()
    assert not bench.isVisible() and not bench.dirty
    assert load_grid(source).tests[0].vars["c"] == "Spain"
    window.workbench_action.trigger()
    bench.model.setData(bench.model.index(0, 0), "Italy")
    bench.close()
    bench.save_box.button(buttons.Discard).click()  # Discard: the file's grid comes back
    assert not bench.isVisible() and not bench.dirty and bench.config.tests[0].vars["c"] == "Spain"
    # Ctrl+Q (in the Workbench or the main window) with an edited grid asks before quitting
    window.workbench_action.trigger()
    bench.model.setData(bench.model.index(0, 0), "Peru")
    bench.quit_action.trigger()
    assert window.isVisible() and bench.isVisible() and bench.save_box is not None
    bench.save_box.button(buttons.Cancel).click()
    assert window.isVisible() and bench.dirty
    window.close()
    bench.save_box.button(buttons.Discard).click()
    assert not window.isVisible() and not bench.dirty
    assert load_grid(source).tests[0].vars["c"] == "Spain"
