"""Editing one Workbench variant inline (app/ui/workbench/variant_editor.py): the fields show
the variant, "default" stands for the app's default, an edit emits the new variant, and a
bad value is refused with a message, the variant unchanged."""

from __future__ import annotations

from typing import Any

from app.core.grid.model import Variant
from app.core.types import AdapterSpec
from app.ui.workbench.variant_editor import DEFAULT, VariantEditor


def editor(qtbot: Any, variant: Variant | None = None) -> VariantEditor:
    ed = VariantEditor()
    qtbot.addWidget(ed)
    ed.set_models(["mock:echo", "local:smollm2", "openai:gpt-4o-mini"])
    ed.set_variant(1 if variant is not None else None, variant)
    ed.show()
    return ed


def test_nothing_to_edit_until_a_variant_is_shown(qtbot: Any) -> None:
    ed = editor(qtbot)
    assert not ed.model.isEnabled() and "Click a column's header" in ed.title.text()
    with qtbot.assertNotEmitted(ed.variant_edited):
        ed._commit()


def test_the_fields_show_the_variant_and_defaults_read_default(qtbot: Any) -> None:
    variant = Variant("local:smollm2", "small", None, 0.2, None, 64, 7, ("\n\n",), "Be brief.",
                      (AdapterSpec("/a/ada", 0.5),))  # fmt: skip
    ed = editor(qtbot, variant)
    assert ed.title.text() == "Variant 2: small"
    assert (ed.model.currentText(), ed.label.text(), ed.seed.text()) == ("local:smollm2", "small", "7")
    assert ed.adapters.text() == "/a/ada:0.5" and ed.system.toPlainText() == "Be brief."
    assert ed.top_p.text() == DEFAULT and ed.temperature.value() == 0.2 and ed.max_tokens.value() == 64
    assert ed.variant() == variant  # the fields give the same variant back
    plain = editor(qtbot, Variant("mock:echo"))
    assert plain.temperature.text() == DEFAULT and plain.max_tokens.text() == DEFAULT
    assert plain.variant() == Variant("mock:echo")


def test_an_edit_emits_the_new_variant(qtbot: Any) -> None:
    ed = editor(qtbot, Variant("openai:gpt-4o-mini"))
    ed.temperature.setValue(0.7)
    with qtbot.waitSignal(ed.variant_edited, timeout=2000) as edited:
        ed.temperature.editingFinished.emit()
    column, variant = edited.args
    assert column == 1 and variant.temperature == 0.7 and variant.model == "openai:gpt-4o-mini"
    ed.endpoint.setText("Ollama")
    with qtbot.waitSignal(ed.variant_edited, timeout=2000) as edited:
        ed.endpoint.editingFinished.emit()
    assert edited.args[1].endpoint == "Ollama"
    with qtbot.assertNotEmitted(ed.variant_edited):
        ed.endpoint.editingFinished.emit()  # nothing changed
    ed.model.setEditText("ollama:chat:llama3.2")  # a promptfoo id: the endpoint it names
    ed.endpoint.clear()
    with qtbot.waitSignal(ed.variant_edited, timeout=2000) as edited:
        ed.model.lineEdit().editingFinished.emit()
    assert (edited.args[1].model, edited.args[1].endpoint) == ("openai:llama3.2", "Ollama")
    with qtbot.waitSignal(ed.variant_edited, timeout=2000) as edited:
        qtbot.keyClicks(ed.system, "Hi")  # the system prompt commits as it is typed
    assert edited.args[1].system.startswith("H")


def test_bad_values_are_refused_with_a_message_and_nothing_emitted(qtbot: Any) -> None:
    ed = editor(qtbot, Variant("mock:echo"))
    with qtbot.assertNotEmitted(ed.variant_edited):
        ed.seed.setText("seven")
        ed.seed.editingFinished.emit()
    assert ed.message.isVisible() and "The seed must be a whole number (got 'seven')" in ed.message.text()
    ed.seed.clear()
    ed.adapters.setText("/a/ada")
    with qtbot.assertNotEmitted(ed.variant_edited):
        ed.adapters.editingFinished.emit()
    assert "mock:echo cannot take LoRA adapters" in ed.message.text()
    ed.adapters.clear()
    ed.model.setEditText("nope:model")
    with qtbot.assertNotEmitted(ed.variant_edited):
        ed.model.lineEdit().editingFinished.emit()
    assert "nope" in ed.message.text()
    ed.model.setEditText("mock:echo")
    ed.stop.setText("END")
    with qtbot.waitSignal(ed.variant_edited, timeout=2000) as edited:
        ed.stop.editingFinished.emit()
    assert edited.args[1].stop == ("END",) and not ed.message.isVisible()


def test_locked_while_a_run_goes_on(qtbot: Any) -> None:
    ed = editor(qtbot, Variant("mock:echo"))
    ed.set_editable(False)
    assert not ed.model.isEnabled() and not ed.label.isEnabled() and not ed.system.isEnabled()
    ed.set_editable(True)
    assert ed.model.isEnabled()


def test_an_edit_keeps_the_variants_tools_and_response_schema(qtbot: Any) -> None:
    from app.core.tools import ResponseSchema, ToolSpec

    variant = Variant("openai:gpt-4o-mini", tools=(ToolSpec("f"),), tool_choice="required", parallel_tool_calls=False,
                      response_schema=ResponseSchema({"type": "object"}))  # fmt: skip
    ed = editor(qtbot, variant)
    ed.temperature.setValue(0.3)
    with qtbot.waitSignal(ed.variant_edited, timeout=2000) as edited:
        ed.temperature.editingFinished.emit()
    assert edited.args[1] == variant.with_(temperature=0.3)
