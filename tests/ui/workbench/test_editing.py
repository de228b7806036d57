"""Editing a grid in the Workbench: cases in place, CSV import, columns from the model picker,
duplicate, "base vs adapter" and "three temperatures", grid files opened and saved; the
window fits 1024 x 700 and closes with its button and Esc."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.core.grid.config import load_grid
from app.core.grid.model import Assertion, GridConfig, Prompt, TestCase, Variant
from app.core.services import ModelListing
from app.core.types import ModelInfo, ModelRef


def two_cases() -> GridConfig:
    return GridConfig(prompts=(Prompt("About {{pet}} for {{who}}"),), variants=(Variant("mock:echo"),),
                      tests=(TestCase({"pet": "cats", "who": "kids"}), TestCase({"pet": "dogs", "who": "kids"})))


def test_cases_edit_in_place_and_import_from_csv(bench: Any, tmp_path: Path) -> None:
    bench.load_config(two_cases(), None)
    model = bench.model
    assert model.var_names == ["pet", "who"] and model.headerData(2, Qt.Orientation.Horizontal) == "Asserts"
    assert model.setData(model.index(1, 0), "birds")
    assert model.setData(model.index(0, 2), "icontains: cats\nnot-contains: sorry")
    assert bench.config.tests[1].vars["pet"] == "birds"
    assert bench.config.tests[0].asserts == (Assertion("icontains", "cats"), Assertion("not-contains", "sorry"))
    assert bench.runner.cells[(1, 0)].request.messages[-1].content == "About birds for kids"
    assert not model.setData(model.index(0, 2), "javascript: 1")  # refused, with a message
    assert "'javascript' is not an assertion type" in bench.message.text()
    csv = tmp_path / "cases.csv"
    csv.write_text("pet,who,__expected\nfish,adults,contains: fish\n", encoding="utf-8")
    assert bench.import_cases(csv) == 1
    assert [t.vars["pet"] for t in bench.config.tests] == ["cats", "birds", "fish"]
    assert len(model.rows) == 3 and "Imported 1 cases" in bench.message.text()
    bench.add_case()
    assert len(bench.config.tests) == 4 and dict(bench.config.tests[3].vars) == {"pet": "", "who": ""}
    bench.remove_case(3)
    assert len(bench.config.tests) == 3 and bench.dirty


def test_the_prompt_and_its_variables_become_columns(bench: Any, drive: Callable[..., Any]) -> None:
    bench.load_config(GridConfig(prompts=(Prompt("hi"),), variants=(Variant("mock:echo"),)), None)
    assert bench.model.var_names == [] and len(bench.model.rows) == 1  # the quick "ask everyone" compare
    bench.prompt_edit.setPlainText("Say {{word}} to {{name}}")
    bench._prompt_timer.timeout.emit()  # what the debounce timer does after typing
    assert bench.model.var_names == ["word", "name"] and bench.config.prompts[0].template == "Say {{word}} to {{name}}"
    assert bench.runner.problems()  # the case lacks the variables: shown, never sent


def test_columns_from_the_picker_duplicate_and_edit_inline(bench: Any) -> None:
    bench.load_config(GridConfig(prompts=(Prompt("hi"),)), None)
    infos = [ModelInfo(ModelRef("mock", n), f"Mock: {n}", state="ready") for n in ("echo", "markdown")]
    bench.picker.set_listing(ModelListing(infos, {}))
    assert bench.picker.select_model("mock:markdown")
    bench.add_action.trigger()
    assert [v.model for v in bench.config.variants] == ["mock:markdown"]
    assert bench.tabs.currentWidget() is bench.variant_editor and bench.variant_editor.column == 0
    bench.duplicate_variant(0)
    assert len(bench.config.variants) == 2 and bench.config.variants[1].label == "mock:markdown (copy)"
    editor = bench.variant_editor
    editor.set_variant(1, bench.config.variants[1])
    editor.temperature.setValue(1.2)
    editor.seed.setText("9")
    editor.system.setPlainText("Be kind")
    editor.seed.editingFinished.emit()
    edited = bench.config.variants[1]
    assert (edited.temperature, edited.seed, edited.system) == (1.2, 9, "Be kind")
    assert bench.runner.cells[(0, 1)].request.params.seed == 9
    editor.model.setEditText("nope:model")
    editor.seed.editingFinished.emit()
    assert "Unknown provider 'nope'" in editor.message.text() and bench.config.variants[1].model == "mock:markdown"


def test_base_vs_adapter_and_three_temperatures_are_two_clicks(bench: Any, tmp_path: Path) -> None:
    bench.load_config(GridConfig(prompts=(Prompt("hi"),), variants=(Variant("local:/models/tiny", max_tokens=8),)), None)
    bench.base_vs_adapter(0, adapter_path=str(tmp_path / "my-lora"))
    base, tuned = bench.config.variants
    assert base.adapters == () and [a.path for a in tuned.adapters] == [str(tmp_path / "my-lora")]
    assert tuned.label == "local:/models/tiny + my-lora" and tuned.max_tokens == 8
    bench.three_temperatures(0)
    assert [v.temperature for v in bench.config.variants[:3]] == [0.0, 0.7, 1.4]
    assert len(bench.config.variants) == 4
    menu_items = [a.text() for a in bench.variants_menu.actions()]
    assert "Base vs adapter" in menu_items and "Same model at three temperatures" in menu_items
    bench.load_config(GridConfig(prompts=(Prompt("hi"),), variants=(Variant("mock:echo"),)), None)
    bench.base_vs_adapter(0, adapter_path="x")
    assert len(bench.config.variants) == 1 and "needs a local or Hugging Face model" in bench.message.text()


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


def test_it_fits_1024x700_and_closes_with_its_button_and_esc(bench: Any, window: Any, qapp: Any) -> None:
    from app.ui import theme

    theme.apply(qapp)  # the app's stylesheet (padding, fonts), as at start
    try:
        bench.load_config(two_cases(), None)
        bench.resize(1024, 700)
        assert bench.minimumSizeHint().width() <= 1024 and bench.minimumSizeHint().height() <= 700
        bench.show()
        QTest.qWait(0)
        widgets = [bench.toolbar.widgetForAction(a) for a in bench.toolbar.actions()]
        shown = [w for w in widgets if w is not None]
        assert len(shown) >= 10 and all(w.isVisible() and w.geometry().right() <= bench.toolbar.width() for w in shown)
        assert bench.toolbar.sizeHint().width() <= bench.toolbar.width()  # nothing hidden behind an overflow arrow
        assert bench.table.viewport().height() > 150 and bench.tabs.height() > 120
    finally:
        qapp.setStyleSheet("")
    bench.close_action.trigger()
    assert not bench.isVisible()
    window.workbench_action.trigger()  # Ctrl+Shift+W / View > Workbench shows the same one again
    assert bench.isVisible() and window.dialogs["workbench"] is bench
    assert window.workbench_action.shortcut().toString() == "Ctrl+Shift+W"
    assert window.workbench_action in window.view_menu.actions()
    QTest.keyClick(bench, Qt.Key.Key_Escape)
    assert not bench.isVisible()


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


@pytest.mark.parametrize("field", ["description", "prompt"])
def test_text_typed_just_before_closing_counts_as_an_edit(bench: Any, window: Any, field: str) -> None:
    """Seen in a real window: a description typed, then Close at once (the field never lost
    focus, the prompt's pause had not passed) closed without asking."""
    from PySide6.QtWidgets import QMessageBox

    bench.set_config(bench.config)
    bench.dirty = False
    widget = bench.description if field == "description" else bench.prompt_edit
    widget.setFocus()
    QTest.keyClick(widget, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(widget, " typed last")
    assert not bench.dirty  # not applied yet
    bench.close_action.trigger()
    assert bench.isVisible() and bench.save_box is not None
    text = bench.config.description if field == "description" else bench.config.prompts[0].template
    assert text.endswith("typed last")
    bench.save_box.button(QMessageBox.StandardButton.Discard).click()
