"""The parts a main-window controller is made of, real and without the window: the services,
a backend on mock:echo, a session over a transcript, the prompt editor, the model picker and a
progress bar, under one parent widget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PySide6.QtWidgets import QProgressBar, QWidget

from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.session import ChatSession
from app.ui.widgets.model_picker import ModelPicker
from app.ui.widgets.prompt_editor import PromptEditor
from app.ui.widgets.transcript import TranscriptView


@dataclass
class Parts:
    """What the window hands its controllers."""

    services: Services
    backend: BackendManager
    session: ChatSession
    transcript: TranscriptView
    editor: PromptEditor
    picker: ModelPicker
    progress: QProgressBar
    parent: QWidget


@pytest.fixture
def parts(qloop: Any, qapp: Any, services: Services) -> Iterator[Parts]:
    """Real parts on mock:echo (the backend is closed after the test)."""
    parent = QWidget()
    backend = BackendManager(services, parent, model_id="mock:echo")
    transcript = TranscriptView(parent)
    made = Parts(services, backend, ChatSession(backend, transcript, parent), transcript, PromptEditor(parent),
                 ModelPicker(parent), QProgressBar(parent), parent)  # fmt: skip
    yield made
    made.editor.shutdown()
    qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 10))
    parent.deleteLater()


class Said:
    """What a controller said through its ``status`` and ``hint`` signals, in order."""

    def __init__(self, controller: Any) -> None:
        self.status: list[tuple[str, bool]] = []
        self.hints: list[str] = []
        controller.status.connect(lambda message, error: self.status.append((message, error)))
        controller.hint.connect(self.hints.append)

    @property
    def last(self) -> tuple[str, bool]:
        """The last status message and whether it was an error."""
        return self.status[-1]
