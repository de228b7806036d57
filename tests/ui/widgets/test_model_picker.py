"""The model picker: groups, states, selection and the special entries."""

from __future__ import annotations

from typing import Any

from app.core.events import Progress
from app.core.services import ModelListing
from app.core.types import ModelInfo, ModelRef
from app.ui.widgets.model_picker import ROLE_ID, ROLE_KIND, ModelPicker


def _info(mid: str, endpoint: str | None = None, state: str = "available") -> ModelInfo:
    ref = ModelRef.parse(mid)
    return ModelInfo(ref=ref, display_name=ref.name, endpoint=endpoint, state=state)  # type: ignore[arg-type]


LISTING = ModelListing(
    models=[
        _info("mock:echo", state="ready"),
        _info("openai:gpt-4o-mini", "OpenAI", "needs_key"),
        _info("openai:llama3", "Ollama"),
        _info("huggingface:HuggingFaceTB/SmolLM2-135M-Instruct", state="not_downloaded"),
        _info("local:smollm2"),
    ],
    errors={"openai": "Connection refused"},
)


def _rows(p: ModelPicker) -> list[str]:
    return [p.itemText(i) for i in range(p.count())]


def test_grouped_with_states_and_errors(qapp: Any) -> None:
    p = ModelPicker()
    p.set_listing(LISTING)
    p.set_current("mock:echo")
    rows = [r.strip() for r in _rows(p)]
    headers = [p.itemText(i) for i in range(p.count()) if p.model().item(i).data(ROLE_KIND) == "header"]
    assert headers == ["OpenAI", "Endpoint: Ollama", "Hugging Face", "Local files", "Mock (testing)"]
    assert "gpt-4o-mini   —   needs key" in rows
    assert "HuggingFaceTB/SmolLM2-135M-Instruct   —   not downloaded" in rows
    assert "✓ echo   —   ready" in rows  # the current model is marked
    assert "smollm2   —   not loaded" in rows  # an in-process model is ready only once loaded
    assert any("Connection refused" in r for r in rows)
    assert rows[-2:] == ["Add endpoint…", "Open model file/folder…"]
    assert p.currentText() == "mock:echo" and p.state_label.text() == "ready"


def test_select_emits_model_and_endpoint(qapp: Any) -> None:
    p = ModelPicker()
    p.set_listing(LISTING)
    p.set_current("mock:echo")
    got: list[tuple[str, Any]] = []
    p.model_selected.connect(lambda m, e: got.append((m, e)))
    assert p.select_model("openai:llama3")
    assert got == [("openai:llama3", "Ollama")]
    p.set_state("local:smollm2", "loading")
    assert any(r.strip() == "smollm2   —   loading…" for r in _rows(p))
    p.set_loading("local:smollm2", Progress("converting", 0.45))
    assert any(r.strip() == "smollm2   —   loading 45%" for r in _rows(p))
    p.mark_loaded("local:smollm2")
    assert p.state_of("local:smollm2") == "ready"
    p.mark_loaded("huggingface:HuggingFaceTB/SmolLM2-135M-Instruct")  # the worker holds one model
    assert p.state_of("local:smollm2") == "not loaded"


def test_special_entries_emit_and_keep_selection(qapp: Any) -> None:
    p = ModelPicker()
    p.set_current("mock:echo")  # before any listing: the current model is still shown
    assert any("mock:echo" in r for r in _rows(p))
    added, opened = [], []
    p.add_endpoint_requested.connect(lambda: added.append(1))
    p.open_model_requested.connect(lambda: opened.append(1))
    p.activated.emit(p.count() - 2)
    p.activated.emit(p.count() - 1)
    assert added == [1] and opened == [1]
    assert "mock:echo" in p.currentText()


def test_a_typed_model_id_is_accepted(qapp: Any, tmp_path: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    p = ModelPicker()
    p.set_listing(LISTING)
    p.set_current("mock:echo")
    got: list[tuple[str, Any]] = []
    p.model_selected.connect(lambda m, e: got.append((m, e)))
    p.show()
    edit = p.lineEdit()
    assert edit is not None
    edit.setFocus()
    edit.setText("  huggingface:Qwen/Qwen2.5-0.5B-Instruct ")  # (typed keys would open the completer's popup)
    QTest.keyClick(edit, Qt.Key.Key_Return)
    assert got == [("huggingface:Qwen/Qwen2.5-0.5B-Instruct", None)]
    model_file = tmp_path / "my model.gguf"
    model_file.write_bytes(b"GGUF")
    assert p.type_model(str(model_file))  # a bare path is a local model
    assert got[-1] == (f"local:{model_file}", None)
    assert p.type_model("openai:llama3")  # a listed one keeps its endpoint
    assert got[-1] == ("openai:llama3", "Ollama")
    assert not p.type_model("nonsense-without-provider")
    assert "provider" in p.lineEdit().toolTip().lower() and len(got) == 3


def test_completion_offers_providers_listed_models_and_paths(qapp: Any, tmp_path: Any) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "model-a.gguf").write_bytes(b"GGUF")
    (tmp_path / "notes.txt").write_text("not a model")
    p = ModelPicker()
    p.set_listing(LISTING)
    p.lineEdit().textEdited.emit("hugg")
    assert "huggingface:HuggingFaceTB/SmolLM2-135M-Instruct" in p.completions()
    assert {"huggingface:", "mock:echo", "mock:markdown"} <= set(p.completions())
    p.lineEdit().textEdited.emit(f"local:{tmp_path}/m")
    assert p.completions() == [f"local:{tmp_path}/model-a.gguf", f"local:{tmp_path}/models/"]
    p.lineEdit().textEdited.emit(f"{tmp_path}/")  # a bare path completes too, as local:
    assert f"local:{tmp_path}/notes.txt" not in p.completions() and len(p.completions()) == 2


def test_every_endpoint_is_listed_with_its_state(qapp: Any) -> None:
    from app.core.endpoint_status import EndpointState

    listing = ModelListing(
        models=[_info("openai:llama3", "Ollama")],
        errors={},
        endpoints={
            "Ollama": EndpointState("Ollama", "ready", True),
            "My server": EndpointState("My server", "unreachable: connection refused", False,
                                       "Could not connect to http://127.0.0.1:9/v1: connection refused."),
        },
    )
    p = ModelPicker()
    p.set_listing(listing)
    rows = [r.strip() for r in p.row_texts()]
    assert "Endpoint: My server" in rows
    below = rows[rows.index("Endpoint: My server") + 1]
    assert below == "⚠ unreachable: connection refused"
    assert p.endpoint_state("My server") == "unreachable: connection refused"


def test_a_rows_own_text_in_the_field_means_that_row(qapp: Any) -> None:
    """Choosing a completion and pressing Enter left the row's text ("✓ echo — ready") in
    the field, which then said "not a model id"."""
    p = ModelPicker()
    p.set_listing(LISTING)
    p.set_current("local:smollm2")
    got: list[tuple[str, Any]] = []
    p.model_selected.connect(lambda m, e: got.append((m, e)))
    row_text = next(t for t in p.row_texts() if "llama3" in t)
    assert p.type_model(row_text)
    assert got == [("openai:llama3", "Ollama")] and p.state_label.text() != "not a model id"


def test_tool_support_shows_in_the_tooltips(qapp: Any) -> None:
    p = ModelPicker()
    ref = ModelRef.parse("local:qwen")
    p.set_listing(ModelListing(models=[ModelInfo(ref=ref, display_name="qwen", supports_tools=True),
                                       ModelInfo(ref=ModelRef.parse("local:smol"), display_name="smol",
                                                 supports_tools=False), _info("mock:echo")], errors={}))
    tips = {p.model().item(i).data(0).strip(): p.model().item(i).toolTip() for i in range(p.count())}
    assert "supports function calling" in next(t for k, t in tips.items() if k.startswith("qwen"))
    assert "no tool support" in next(t for k, t in tips.items() if k.startswith("smol"))
    assert "Tools" not in next(t for k, t in tips.items() if k.startswith("echo"))  # not known: not said
    p.set_current("local:smol")
    assert "no tool support" in p.state_label.toolTip() and "no tool support" in p.lineEdit().toolTip()


def test_a_model_off_the_fast_path_says_why_in_its_tooltip(qapp: Any) -> None:
    p = ModelPicker()
    slow = ModelInfo(ref=ModelRef.parse("local:/m/gpt2"), display_name="gpt2", fast_path="model type 'gpt2'")
    fast = ModelInfo(ref=ModelRef.parse("local:/m/gemma"), display_name="gemma")
    p.set_listing(ModelListing(models=[slow, fast], errors={}))
    tips = {p.model().item(i).data(ROLE_ID): p.model().item(i).toolTip() for i in range(p.count())
            if p.model().item(i).data(ROLE_KIND) == "model"}
    assert "Slower path: model type 'gpt2'" in tips["local:/m/gpt2"]
    assert "Slower path" not in tips["local:/m/gemma"]
