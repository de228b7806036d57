"""The model picker: groups, states, selection and the special entries."""

from __future__ import annotations

from typing import Any

from app.core.services import ModelListing
from app.core.types import ModelInfo, ModelRef
from app.ui.widgets.model_picker import ROLE_KIND, ModelPicker


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
    assert "echo   —   ready" in rows
    assert any("Connection refused" in r for r in rows)
    assert rows[-2:] == ["Add endpoint…", "Open model file/folder…"]
    assert p.currentText().strip().startswith("echo")


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
