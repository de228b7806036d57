"""The prompt editor: system prompt, message, sampling parameters, presets and a live token
count (debounced, counted on a worker thread so typing never lags).

Signals:
    send_requested(): Ctrl+Enter or the Send button.
    stop_requested(): Esc or the Stop button.
    preset_saved(str name, object params_dict, str system_prompt)
    preset_deleted(str name)
    count_updated(str text): the counter label changed (tests and the status bar).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError
from app.core.types import GenerationParams
from app.ui.widgets.common import ElidedLabel, laid_out, text_box

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from app.core.settings import Preset

log = logging.getLogger(__name__)
DEBOUNCE_MS = 150
ONE_ROW_SLACK = 150
"""Room beyond the minimum the one-row layout needs (for the stop field and the count)."""
NO_PRESET = "(none)"
Counter = Callable[[str, str, int], str]


class MessageEdit(QPlainTextEdit):
    """Multi-line input: Ctrl+Enter submits (also plain Enter with :attr:`enter_sends`, where
    Shift+Enter starts a new line), Esc stops."""

    submitted = Signal()
    escaped = Signal()
    enter_sends = False

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        """Ctrl+Enter (or Enter) -> submitted, Esc -> escaped, anything else types."""
        key = event.key()
        mods = event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and (
            mods & Qt.KeyboardModifier.ControlModifier
            or (self.enter_sends and not mods & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.AltModifier))
        ):
            self.submitted.emit()
            return
        if key == Qt.Key.Key_Escape:
            self.escaped.emit()
            return
        super().keyPressEvent(event)


def parse_stop(text: str) -> tuple[str, ...]:
    """Stop sequences from the field: comma separated; ``\\n`` and ``\\,`` are escapes."""
    items, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            cur.append({"n": "\n", "t": "\t", ",": ",", "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if ch == ",":
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    items.append("".join(cur))
    return tuple(s for s in (x.strip(" ") for x in items) if s)


def format_stop(stop: tuple[str, ...]) -> str:
    """Inverse of :func:`parse_stop`."""
    return ", ".join(s.replace("\\", "\\\\").replace(",", "\\,").replace("\n", "\\n").replace("\t", "\\t")
                     for s in stop)


class TemperatureBox(QDoubleSpinBox):
    """The temperature: a number the user chose, or "default" (the model's own, shown in the
    box and used for the request). A model switch changes the default shown, never the
    user's number. Below 0.00 is "default"; stepping up from it starts at the default."""

    DEFAULT = -0.01

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(self.DEFAULT, 2.0)
        self.setDecimals(2)
        self.setSingleStep(0.1)
        self.model_default = 0.7
        self.setSpecialValueText(self._default_text())
        self.setValue(self.DEFAULT)
        self.setToolTip("Temperature: randomness (0 = greedy). \"default\" uses the model's own; "
                        "type a number to choose yours, step below 0 to go back to the default.")  # fmt: skip

    def _default_text(self) -> str:
        return f"default {self.model_default:.2f}"

    def is_default(self) -> bool:
        """True while the model's default is used."""
        return self.value() <= self.DEFAULT + 1e-9

    def effective(self) -> float:
        """The temperature a request gets."""
        return self.model_default if self.is_default() else round(self.value(), 2)

    def set_model_default(self, value: float) -> None:
        """Show a model's default (the user's own number, if any, stays)."""
        self.model_default = value
        self.setSpecialValueText(self._default_text())
        self.lineEdit().setText(self.textFromValue(self.value()) if not self.is_default() else self._default_text())

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        """From "default", a step up starts at the default value itself."""
        if self.is_default() and steps > 0:
            self.setValue(self.model_default)
            return
        super().stepBy(steps)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Wide enough for "default 0.70"."""
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.fontMetrics().horizontalAdvance(self._default_text()) + 34), hint.height())


class PromptEditor(QFrame):
    """System prompt, message, parameters, presets, token counter, Send and Stop."""

    send_requested = Signal()
    stop_requested = Signal()
    preset_saved = Signal(str, object, str)
    preset_deleted = Signal(str)
    count_updated = Signal(str)
    _counted = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("promptPanel")
        lay = self._lay = laid_out(self, QVBoxLayout, (16, 10, 16, 12), 8)

        sys_row = QHBoxLayout()
        self.system_toggle = QToolButton(self)
        self.system_toggle.setText("System prompt")
        self.system_toggle.setCheckable(True)
        self.system_toggle.setChecked(True)
        self.system_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.system_toggle.setArrowType(Qt.ArrowType.DownArrow)
        self.system_toggle.setAutoRaise(True)
        sys_row.addWidget(self.system_toggle)
        sys_row.addStretch(1)
        sys_row.addWidget(QLabel("Preset"))
        self.preset_box = QComboBox(self)
        self.preset_box.setMinimumWidth(140)
        self.preset_box.addItem(NO_PRESET)
        sys_row.addWidget(self.preset_box)
        self.save_preset_button = QToolButton(self)
        self.save_preset_button.setText("Save")
        self.delete_preset_button = QToolButton(self)
        self.delete_preset_button.setText("Delete")
        sys_row.addWidget(self.save_preset_button)
        sys_row.addWidget(self.delete_preset_button)
        lay.addLayout(sys_row)

        self.system_edit = text_box("You are a helpful assistant.", 42, self)
        self.system_edit.setObjectName("systemEdit")
        lay.addWidget(self.system_edit)

        self.message_edit = MessageEdit(self)
        self.message_edit.setObjectName("messageEdit")
        self.message_edit.setPlaceholderText("Type a message…  (Ctrl+Enter to send, Esc to stop)")
        self.message_edit.setMinimumHeight(64)
        self.message_edit.setMaximumHeight(96)
        lay.addWidget(self.message_edit)

        params = QHBoxLayout()
        params.setSpacing(4)
        self.temperature = TemperatureBox(self)
        self.top_p = self._dspin(0.01, 1.0, 1.0, 0.05, "Top-p: nucleus sampling")
        self.max_tokens = QSpinBox(self)
        self.max_tokens.setRange(0, 1_000_000)
        self.max_tokens.setValue(512)
        self.max_tokens.setSpecialValueText("no limit")
        self.max_tokens.setToolTip("Max tokens of the answer (0 = no limit)")
        self.seed = QLineEdit(self)
        self.seed.setPlaceholderText("random")
        self.seed.setFixedWidth(64)
        self.seed.setToolTip("Seed: a whole number for repeatable sampling; empty = random")
        self.stop_field = QLineEdit(self)
        self.stop_field.setPlaceholderText("stop sequences, comma separated")
        self.stop_field.setToolTip("Stop sequences, comma separated (\\n for a new line)")
        self.stop_field.setMinimumWidth(48)
        params.addStretch(1)  # (a two-row layout: the boxes stay together on the left)
        actions = QHBoxLayout()  # the stop sequences, the count and the buttons
        actions.setSpacing(4)
        for label, widget in (("Temp", self.temperature), ("Top-p", self.top_p), ("Max", self.max_tokens),
                              ("Seed", self.seed), ("Stop", self.stop_field)):
            lab = QLabel(label)
            lab.setObjectName("paramLabel")
            row = actions if widget is self.stop_field else params
            row.addWidget(lab)
            row.addWidget(widget, 2 if widget is self.stop_field else 0)
        # the count, cost or a problem may be long: elided, never setting the window's width
        self.counter_label = ElidedLabel("0 tokens", min_width=60)
        self.counter_label.setObjectName("tokenCounter")
        actions.addWidget(self.counter_label, 1)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setEnabled(False)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("sendButton")
        self.send_button.setToolTip("Send (Ctrl+Enter)")
        actions.addWidget(self.stop_button)
        actions.addWidget(self.send_button)
        # one row when there is room; in a narrow window the count and buttons go below
        self._bottom = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self._bottom.setSpacing(8)
        self._bottom.addLayout(params, 0)
        self._bottom.addLayout(actions, 1)
        self._params_row, self._actions_row = params, actions
        lay.addLayout(self._bottom)
        lay.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)  # minimumSizeHint says how narrow

        self._presets: dict[str, tuple[dict[str, Any], str]] = {}
        self._counter: Counter | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._seq = itertools.count(1)
        self._latest = 0
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._count_now)
        self._counted.connect(self._on_counted)

        self.system_toggle.toggled.connect(self._on_system_toggled)
        self.message_edit.submitted.connect(self.send_requested.emit)
        self.message_edit.escaped.connect(self.stop_requested.emit)
        self.send_button.clicked.connect(self.send_requested.emit)
        self.stop_button.clicked.connect(self.stop_requested.emit)
        for counted in (self.message_edit.textChanged, self.system_edit.textChanged, self.max_tokens.valueChanged):
            counted.connect(self.schedule_count)  # all that the count depends on
        self.preset_box.activated.connect(self._on_preset_chosen)
        self.save_preset_button.clicked.connect(self._on_save_preset)
        self.delete_preset_button.clicked.connect(self._on_delete_preset)

    # -- fitting narrow windows -----------------------------------------------------------------
    def _side_margins(self) -> int:
        m = self._lay.contentsMargins()
        return m.left() + m.right()

    def _one_row_width(self) -> int:
        """The width the parameters, the count and the buttons need on one row."""
        return (self._params_row.minimumSize().width() + self._actions_row.minimumSize().width() + ONE_ROW_SLACK
                + self._bottom.spacing() + self._side_margins())  # fmt: skip

    def is_compact(self) -> bool:
        """True when the count and the buttons are on a row of their own (a narrow window)."""
        return self._bottom.direction() == QBoxLayout.Direction.TopToBottom

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """As narrow as the parameter row alone (the count and buttons then go below it)."""
        hint = super().minimumSizeHint()
        top = self._lay.itemAt(0)
        narrow = max(self._params_row.minimumSize().width(), self._actions_row.minimumSize().width(),
                     top.minimumSize().width() if top is not None else 0) + self._side_margins()  # fmt: skip
        return QSize(narrow, hint.height() + (0 if self.is_compact() else self._actions_row.sizeHint().height() + 8))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        """Two rows when one does not fit."""
        compact = event.size().width() < self._one_row_width()
        wanted = QBoxLayout.Direction.TopToBottom if compact else QBoxLayout.Direction.LeftToRight
        if self._bottom.direction() != wanted:
            self._bottom.setDirection(wanted)
            self.updateGeometry()
        super().resizeEvent(event)

    def _dspin(self, lo: float, hi: float, value: float, step: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self)
        box.setRange(lo, hi)
        box.setDecimals(2)
        box.setSingleStep(step)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    def _on_system_toggled(self, on: bool) -> None:
        self.system_edit.setVisible(on)
        self.system_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    # -- values ---------------------------------------------------------------------------------
    def message(self) -> str:
        """The message being typed."""
        return self.message_edit.toPlainText()

    def set_message(self, text: str) -> None:
        """Replace the message (Edit and resend)."""
        self.message_edit.setPlainText(text)
        self.message_edit.setFocus()

    def system_prompt(self) -> str:
        """The system prompt."""
        return self.system_edit.toPlainText()

    def set_system_prompt(self, text: str) -> None:
        """Replace the system prompt."""
        self.system_edit.setPlainText(text)

    def params(self) -> GenerationParams:
        """The parameters; raises InvalidParams (AppError) with a plain message when wrong."""
        seed_text = self.seed.text().strip()
        seed: int | None = None
        if seed_text:
            try:
                seed = int(seed_text)
            except ValueError:
                raise AppError(f"The seed must be a whole number (got '{seed_text}').",
                               hint="Type a number such as 42, or leave it empty for random.") from None
        params = GenerationParams(
            temperature=self.temperature.effective(),
            top_p=round(self.top_p.value(), 2),
            max_tokens=self.max_tokens.value() or None,
            seed=seed,
            stop=parse_stop(self.stop_field.text()),
        )
        return params.validated()

    def suggest_temperature(self, value: float) -> None:
        """Show a model's default temperature (used while the box says "default"); the user's
        own number is never changed."""
        self.temperature.set_model_default(value)

    def set_enter_sends(self, on: bool) -> None:
        """Enter sends (Shift+Enter: a new line); Ctrl+Enter sends either way."""
        self.message_edit.enter_sends = on
        keys = "Enter to send, Shift+Enter for a new line" if on else "Ctrl+Enter to send"
        self.message_edit.setPlaceholderText(f"Type a message\u2026  ({keys}, Esc to stop)")
        self.send_button.setToolTip("Send (Enter or Ctrl+Enter)" if on else "Send (Ctrl+Enter)")

    def set_params(self, params: GenerationParams) -> None:
        """Show ``params``."""
        self.temperature.setValue(params.temperature)
        self.top_p.setValue(params.top_p)
        self.max_tokens.setValue(params.max_tokens or 0)
        self.seed.setText("" if params.seed is None else str(params.seed))
        self.stop_field.setText(format_stop(params.stop))

    def set_busy(self, busy: bool) -> None:
        """Swap Send/Stop while generating."""
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)

    # -- presets --------------------------------------------------------------------------------
    def set_presets(self, presets: list[Preset]) -> None:
        """Show presets (objects with name, params dict and system_prompt)."""
        self._presets = {p.name: (dict(p.params), p.system_prompt) for p in presets}
        self.preset_box.clear()
        self.preset_box.addItem(NO_PRESET)
        for name in self._presets:
            self.preset_box.addItem(name)

    def apply_preset(self, name: str) -> None:
        """Load a preset's parameters and system prompt."""
        if name not in self._presets:
            return
        params, system = self._presets[name]
        self.set_params(GenerationParams.from_dict(params))
        if system:
            self.set_system_prompt(system)
        self.preset_box.setCurrentText(name)

    def save_preset(self, name: str) -> None:
        """Save the current parameters and system prompt as ``name``."""
        name = name.strip()
        if not name:
            return
        if name == NO_PRESET:  # the combo's "no preset" entry: such a preset could never be picked
            raise AppError(f"'{NO_PRESET}' is reserved. Give the preset another name.")
        params = self.params().to_dict()
        self._presets[name] = (params, self.system_prompt())
        if self.preset_box.findText(name) < 0:
            self.preset_box.addItem(name)
        self.preset_box.setCurrentText(name)
        self.preset_saved.emit(name, params, self.system_prompt())

    def _on_preset_chosen(self, index: int) -> None:
        if index > 0:
            self.apply_preset(self.preset_box.itemText(index))

    def _on_save_preset(self) -> None:
        current = self.preset_box.currentText() if self.preset_box.currentIndex() > 0 else ""
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:", text=current)
        if ok:
            try:
                self.save_preset(name)
            except AppError as exc:
                self.counter_label.setText(exc.user_message())

    def _on_delete_preset(self) -> None:
        idx = self.preset_box.currentIndex()
        if idx > 0:
            name = self.preset_box.itemText(idx)
            self._presets.pop(name, None)
            self.preset_box.removeItem(idx)
            self.preset_box.setCurrentIndex(0)
            self.preset_deleted.emit(name)

    # -- token counter --------------------------------------------------------------------------
    def set_counter(self, counter: Counter | None) -> None:
        """``counter(system_prompt, message, max_tokens) -> label`` runs on a worker thread
        (the values are read here, on the GUI thread)."""
        self._counter = counter
        self.schedule_count()

    def schedule_count(self) -> None:
        """Recount after a short pause in typing."""
        if self._counter is not None:
            self._debounce.start()

    def _count_now(self) -> None:
        if self._counter is None:
            return
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-count")
        seq = next(self._seq)
        self._latest = seq
        counter, system, message = self._counter, self.system_prompt(), self.message()
        max_out = self.max_tokens.value()

        def work() -> None:
            try:
                text = counter(system, message, max_out)
            except Exception as exc:  # show it in the label, never crash the editor
                log.debug("token count failed", exc_info=True)
                text = f"count unavailable ({exc})"
            try:
                self._counted.emit(seq, text)
            except RuntimeError:  # the editor was deleted meanwhile
                pass

        self._executor.submit(work)

    def _on_counted(self, seq: int, text: str) -> None:
        if seq == self._latest:
            self.counter_label.setText(text)
            self.count_updated.emit(text)

    def shutdown(self) -> None:
        """Stop the counting thread (called when the window closes)."""
        self._debounce.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
