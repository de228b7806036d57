"""app/ui/controllers/models.py: the picker, the load progress and the status follow the
backend's model, through the controller's signals."""

from __future__ import annotations

from pathlib import Path

from app.core.errors import AppError
from app.core.events import Progress
from app.core.run_events import RunFailed, RunNotice
from app.ui.controllers.models import ModelController
from tests.ui.controllers.conftest import Parts, Said


def _controller(parts: Parts) -> ModelController:
    ctl = ModelController(parts.services, parts.backend, parts.session, parts.picker, parts.progress, parts.parent)
    b = parts.backend
    b.model_changed.connect(ctl._on_backend_model_changed)
    b.model_loading.connect(ctl._on_backend_model_loading)
    b.model_loaded.connect(ctl._on_backend_model_loaded)
    b.model_load_failed.connect(ctl._on_backend_model_load_failed)
    b.run_event.connect(ctl._on_backend_run_event)
    parts.picker.model_selected.connect(ctl._on_picker_model_selected)
    return ctl


def test_a_picked_model_becomes_the_next_answers_model(parts: Parts) -> None:
    ctl = _controller(parts)
    said, switched = Said(ctl), []
    ctl.model_switched.connect(switched.append)
    parts.picker.model_selected.emit("mock:markdown", None)
    assert parts.backend.current_model() == "mock:markdown"
    assert switched == ["mock:markdown"]
    assert parts.picker.current_model() == "mock:markdown"
    assert said.last == ("Model: mock:markdown. The next answer uses it.", False)


def test_a_load_shows_its_progress_then_its_failure(parts: Parts) -> None:
    ctl = _controller(parts)
    said = Said(ctl)
    parts.backend.model_loading.emit("local:/m", Progress("reading", 0.5, eta_s=90))
    assert not parts.progress.isHidden() and parts.progress.format() == "reading 50%"
    assert said.last[0].startswith("Loading local:/m: reading 50% · ") and not said.last[1]
    assert ctl.loading is not None
    parts.backend.model_load_failed.emit("local:/m", "out of memory")
    assert parts.progress.isHidden() and ctl.loading is None
    assert said.last == ("Could not load local:/m: out of memory The previous model (mock:echo) is still active.", True)


def test_a_finished_load_says_ready(parts: Parts) -> None:
    ctl = _controller(parts)
    said = Said(ctl)
    parts.backend.model_loading.emit("mock:echo", Progress("loading"))
    assert parts.progress.maximum() == 0  # unknown fraction: a busy bar
    parts.backend.model_loaded.emit("mock:echo")
    assert parts.progress.isHidden()
    assert said.last == ("mock:echo is ready.", False)


def test_run_notices_and_failures_reach_the_status(parts: Parts) -> None:
    ctl = _controller(parts)
    said = Said(ctl)
    parts.backend.run_event.emit(RunNotice("r1", "The server trimmed the context."))
    failed = RunFailed("r1", AppError("The server said no.", hint="Try again later."))
    parts.backend.run_event.emit(failed)
    assert said.status == [("The server trimmed the context.", False), (failed.message, True)]
    assert "The server said no." in failed.message


def test_an_opened_model_file_is_remembered_and_chosen(parts: Parts, tmp_path: Path) -> None:
    ctl = _controller(parts)
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    ctl.open_model_path(weights)
    assert parts.backend.current_model() == f"local:{weights}"
    assert parts.services.settings.recent_local_models[0] == str(weights)
    folder = tmp_path / "hf"
    folder.mkdir()
    ctl.open_model_path(folder / "config.json")  # a file inside a model folder: the folder
    assert parts.backend.current_model() == f"local:{folder}"
    assert parts.services.settings.recent_local_models[:2] == [str(folder), str(weights)]
