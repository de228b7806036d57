"""Tests of app/ui/workbench/edits.py: cases edited in place and imported from CSV, the prompt's
variables as columns, columns from the model picker, duplicate, "base vs adapter" and "three
temperatures"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

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
    assert not model.setData(model.index(0, 2), "webhook: 1")  # refused, with a message
    assert "'webhook' is not an assertion type" in bench.message.text()
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
    assert bench.runner.warnings()  # the case lacks the variables: rendered empty (as promptfoo), with a warning


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
