"""The LoRA panel: load adapters (file dialog or drag and drop), switch them on/off, scale
them, unload them, and ask for a side-by-side comparison with the base model.

Everything goes through the backend manager (``load_adapter`` validates in a task and answers
with ``adapters_changed`` or ``adapter_failed``). The panel is disabled, with a plain-words
explanation, while the current model cannot take adapters (remote or mock models).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError
from app.core.types import AdapterInfo, ModelRef
from app.ui.widgets.common import MessageLabel, laid_out
from app.ui.wiring import connect_slots

if TYPE_CHECKING:
    from app.ui.backend_manager import BackendManager

CONFIG_FILE = "adapter_config.json"
MAX_SCALE_PERCENT = 200


def choose_adapter_path(parent: QWidget | None) -> str | None:
    """Ask for an adapter (its adapter_config.json or weights file); tests monkeypatch this."""
    path, _ = QFileDialog.getOpenFileName(
        parent,
        "Load LoRA adapter (pick adapter_config.json in the adapter folder)",
        "",
        "LoRA adapter (adapter_config.json *.safetensors);;All files (*)",
    )
    return path or None


def adapter_path_problem(path: str) -> tuple[str | None, str]:
    """Normalise a picked/dropped path to the adapter folder; return (problem, path)."""
    p = Path(path).expanduser()
    if not p.exists():
        return f"Nothing found at {p}. Pick the adapter folder or its {CONFIG_FILE}.", path
    if p.is_file():
        if p.name != CONFIG_FILE and (p.parent / CONFIG_FILE).is_file():
            return None, str(p.parent)  # a weights file inside an adapter folder
        if p.name != CONFIG_FILE:
            return f"{p.name} is not a LoRA adapter. Pick the adapter folder or its {CONFIG_FILE}.", path
        return None, str(p.parent)
    if not (p / CONFIG_FILE).is_file():
        return f"The folder {p.name} has no {CONFIG_FILE}, so it is not a LoRA adapter.", path
    return None, str(p)


def _tooltip(info: AdapterInfo) -> str:
    targets = ", ".join(info.target_modules) or "?"
    lines = [
        f"<b>{info.name}</b>",
        f"Folder: {info.path}",
        f"Rank {info.rank}, alpha {info.alpha:g}",
        f"Targets: {targets}",
    ]
    if info.base_model_hint:
        lines.append(f"Trained on: {info.base_model_hint}")
    if info.sha256:
        lines.append(f"SHA-256: {info.sha256[:16]}\u2026")
    for w in info.warnings:
        lines.append(f"\u26a0 {w}")
    return "<br>".join(lines)


class AdapterRow(QFrame):
    """One adapter: on/off, scale slider (0-200 %), unload."""

    def __init__(self, panel: LoraPanel, info: AdapterInfo) -> None:
        super().__init__()
        self.setObjectName("adapterRow")
        self.name = str(info.name)
        self._panel = panel
        layout = laid_out(self, QVBoxLayout, (8, 6, 6, 6), 2)
        top = QHBoxLayout()
        self.checkbox = QCheckBox(self.name)
        self.checkbox.setToolTip("Use this adapter for the next answers")
        self.checkbox.toggled.connect(self._on_checkbox_toggled)
        top.addWidget(self.checkbox, 1)
        self.warning = QLabel("\u26a0")
        self.warning.setStyleSheet("color: #b26a00;")
        top.addWidget(self.warning)
        self.unload = QToolButton()
        self.unload.setText("\u2715")
        self.unload.setToolTip(f"Unload {self.name}")
        self.unload.setAutoRaise(True)
        self.unload.clicked.connect(self._on_unload_clicked)
        top.addWidget(self.unload)
        layout.addLayout(top)
        bottom = QHBoxLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, MAX_SCALE_PERCENT)
        self.slider.setSingleStep(5)
        self.slider.setPageStep(25)
        self.slider.setToolTip("Scale: how strongly the adapter changes the model (100 % = as trained)")
        self.slider.valueChanged.connect(self._on_slider_value_changed)
        self.slider.sliderReleased.connect(self._commit_scale)
        self.value = QLabel("100%")
        self.value.setMinimumWidth(40)
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.value)
        layout.addLayout(bottom)
        self.update_from(info)

    def update_from(self, info: AdapterInfo) -> None:
        """Show ``info``'s state (without echoing it back to the backend)."""
        self.setToolTip(_tooltip(info))
        self.warning.setVisible(bool(info.warnings))
        self.warning.setToolTip("<br>".join(info.warnings))
        for w in (self.checkbox, self.slider):
            w.blockSignals(True)
        self.checkbox.setChecked(bool(info.active))
        if not self.slider.isSliderDown():
            self.slider.setValue(round(float(info.scale) * 100))
        for w in (self.checkbox, self.slider):
            w.blockSignals(False)
        self.value.setText(f"{self.slider.value()}%")
        self.slider.setEnabled(bool(info.active))

    def scale(self) -> float:
        """The scale shown (1.0 = 100 %)."""
        return self.slider.value() / 100

    def _on_unload_clicked(self) -> None:
        self._panel.dismiss_error()
        self._panel.backend.unload_adapter(self.name)

    def _on_checkbox_toggled(self, checked: bool) -> None:
        self._panel.dismiss_error()
        self._panel.backend.set_adapter_enabled(self.name, checked)

    def _on_slider_value_changed(self, value: int) -> None:
        self.value.setText(f"{value}%")
        if not self.slider.isSliderDown():  # keyboard, wheel or a click on the groove
            self._commit_scale()

    def _commit_scale(self) -> None:
        self._panel.dismiss_error()
        self._panel.backend.set_adapter_scale(self.name, self.slider.value() / 100)


class LoraPanel(QWidget):
    """LoRA adapters for the current local model.

    Signals:
        compare_requested(): the user wants the same prompt answered with and without adapters.
    """

    compare_requested = Signal()

    def __init__(self, backend: BackendManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loraPanel")
        self.backend = backend
        self._rows: dict[str, AdapterRow] = {}
        self._pending = 0
        self.setAcceptDrops(True)
        self.setStyleSheet(
            "QFrame#adapterRow { background: palette(base); border: 1px solid palette(midlight);"
            " border-radius: 8px; }"
            "QLabel#dropHint { color: palette(placeholder-text); border: 1px dashed palette(mid);"
            " border-radius: 8px; padding: 14px; }"
        )

        layout = laid_out(self, QVBoxLayout, (6, 6, 6, 6), 6)
        self._explain = MessageLabel()
        layout.addWidget(self._explain)
        self._load = QPushButton("Load adapter\u2026")
        self._load.setToolTip("Pick a LoRA adapter folder's adapter_config.json (or drop the folder here)")
        self._load.clicked.connect(self.choose_and_load)
        layout.addWidget(self._load)

        self._rows_box = QVBoxLayout()
        self._rows_box.setSpacing(6)
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(0, 0, 0, 0)
        inner_layout.addLayout(self._rows_box)
        self._drop_hint = QLabel(f"Drop an adapter folder or its {CONFIG_FILE} here")
        self._drop_hint.setObjectName("dropHint")
        self._drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._drop_hint.setWordWrap(True)
        inner_layout.addWidget(self._drop_hint)
        inner_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        layout.addWidget(scroll, 1)

        self._status = QLabel("")
        self._status.setStyleSheet("color: palette(placeholder-text);")
        self._status.setVisible(False)
        layout.addWidget(self._status)
        self._error = MessageLabel()
        layout.addWidget(self._error)
        self._compare = QPushButton("Compare with base")
        self._compare.setToolTip("Answer the current prompt twice, without and with the active adapters, side by side")
        self._compare.clicked.connect(self.compare_requested.emit)
        layout.addWidget(self._compare)

        connect_slots(backend, self, "_on_backend_")
        self._sync_rows(backend.adapters())
        self._update_enabled()

    # public API
    def adapter_names(self) -> list[str]:
        """Adapters listed, top to bottom."""
        return list(self._rows)

    def row(self, name: str) -> AdapterRow:
        """The row of adapter ``name``."""
        return self._rows[name]

    def error_text(self) -> str:
        """The last error shown ('' when none)."""
        return self._error.text()

    def explanation_text(self) -> str:
        """Why the panel is disabled ('' when it is usable)."""
        return self._explain.text()

    def is_usable(self) -> bool:
        """True when the current model takes adapters."""
        return self._reason() is None

    def dismiss_error(self) -> None:
        """The user moved on (another adapter action, an answer started): the last error goes."""
        self._error.clear_message()

    def choose_and_load(self) -> None:
        """Open the file dialog and load what was picked."""
        path = choose_adapter_path(self)
        if path:
            self.load_path(path)

    def load_path(self, path: str) -> bool:
        """Check ``path`` in plain words, then ask the backend to load it. True when sent."""
        reason = self._reason()
        if reason is not None:
            self._error.show_message(reason)
            return False
        problem, folder = adapter_path_problem(path)
        if problem:
            self._error.show_message(problem)
            return False
        self._error.clear_message()
        self._pending += 1
        self._show_status(f"Loading {Path(folder).name}\u2026")
        self.backend.load_adapter(folder)
        return True

    # drag and drop
    def _dropped_paths(self, event: QDragEnterEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        """Accept folders and adapter_config.json files while the panel is usable."""
        paths = self._dropped_paths(event)
        if paths and self.is_usable() and any(Path(p).is_dir() or Path(p).name == CONFIG_FILE for p in paths):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        """Load every dropped adapter."""
        paths = self._dropped_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        for p in paths:
            self.load_path(p)

    # backend signals
    def _on_backend_adapters_changed(self, adapters: Sequence[AdapterInfo]) -> None:
        self._pending = 0
        self._show_status("")
        if any(str(a.name) not in self._rows for a in adapters):  # a later load succeeded: the old error is stale
            self._error.clear_message()
        self._sync_rows(list(adapters))
        self._update_enabled()

    def _on_backend_adapter_failed(self, message: str) -> None:
        self._pending = max(0, self._pending - 1)
        if not self._pending:
            self._show_status("")
        self._error.show_message(message)

    def _on_backend_model_changed(self, _model_id: str) -> None:
        self._error.clear_message()
        self._update_enabled()

    def _on_backend_busy_changed(self, busy: bool) -> None:
        if busy:  # an answer starts: the next action
            self.dismiss_error()
        self._update_enabled()

    # state
    def _reason(self) -> str | None:
        model = self.backend.current_model()
        try:
            ref = ModelRef.parse(model)
        except AppError:
            return "Pick a model first."
        if self.backend.is_remote(model):
            return (f"LoRA adapters change a model's weights, so they work only with models that run on this "
                    f"computer. {ref.name} runs on a server. Pick a local or Hugging Face model to use adapters.")
        if not ref.takes_adapters:
            return (f"The {ref.provider} model has no weights to adapt. Pick a local or Hugging Face model "
                    "to use adapters.")
        return None

    def _update_enabled(self) -> None:
        reason = self._reason()
        usable = reason is None
        self._explain.show_message(reason or "", "info")
        self._load.setEnabled(usable)
        for row in self._rows.values():
            row.setEnabled(usable)
        self._drop_hint.setVisible(usable and not self._rows)
        active = any(r.checkbox.isChecked() for r in self._rows.values())
        self._compare.setEnabled(usable and active and not self.backend.is_busy())
        self._compare.setToolTip(
            "Answer the current prompt twice, without and with the active adapters, side by side"
            if active else "Switch on an adapter to compare it with the base model"
        )

    def _sync_rows(self, adapters: list[AdapterInfo]) -> None:
        names = [str(a.name) for a in adapters]
        for name in list(self._rows):
            if name not in names:
                old = self._rows.pop(name)
                self._rows_box.removeWidget(old)
                old.deleteLater()
        for info in adapters:
            existing = self._rows.get(str(info.name))
            if existing is None:
                row = AdapterRow(self, info)
                self._rows[row.name] = row
                self._rows_box.addWidget(row)
            else:
                existing.update_from(info)

    def _show_status(self, text: str) -> None:
        self._status.setText(text)
        self._status.setVisible(bool(text))
