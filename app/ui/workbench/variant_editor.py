"""Inline editing of one variant (a column): model id, label, endpoint, temperature, top-p,
max tokens, seed, stop sequences, system prompt and LoRA adapters (``path:scale``, comma
separated). A parameter left at "default" takes the app's default.

Signals:
    variant_edited(int column, object variant): the user changed the shown variant.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from app.core.errors import AppError
from app.core.grid.config import normalize_model_id
from app.core.grid.model import Variant, adapter_text, parse_adapter
from app.ui.widgets.common import MessageLabel, text_box
from app.ui.widgets.prompt_editor import format_stop, parse_stop

DEFAULT = "default"


class VariantEditor(QWidget):
    """See the module doc."""

    variant_edited = Signal(int, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.column: int | None = None
        self._variant: Variant | None = None
        self._loading = False
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        grid.setHorizontalSpacing(12)
        left, right = QFormLayout(), QFormLayout()
        for form in (left, right):
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.title = QLabel("Click a column's header (or one of its cells) to edit that variant here.")
        self.title.setObjectName("variantTitle")
        grid.addWidget(self.title, 0, 0, 1, 2)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model.setMinimumContentsLength(18)
        self.label = QLineEdit()
        self.label.setPlaceholderText("(the model id)")
        self.endpoint = QLineEdit()
        self.endpoint.setPlaceholderText("endpoint name or base URL (openai: models)")
        self.adapters = QLineEdit()
        self.adapters.setPlaceholderText("path[:scale], … (local models)")
        self.system = text_box("system prompt (optional)", 48)
        left.addRow("Model", self.model)
        left.addRow("Label", self.label)
        left.addRow("Endpoint", self.endpoint)
        left.addRow("Adapters", self.adapters)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(-0.1, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setSpecialValueText(DEFAULT)
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.0, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setSpecialValueText(DEFAULT)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(0, 1_000_000)
        self.max_tokens.setSpecialValueText(DEFAULT)
        self.seed = QLineEdit()
        self.seed.setPlaceholderText("none")
        self.stop = QLineEdit()
        self.stop.setPlaceholderText("comma separated, \\n for a newline")
        right.addRow("Temperature", self.temperature)
        right.addRow("Top-p", self.top_p)
        right.addRow("Max tokens", self.max_tokens)
        right.addRow("Seed", self.seed)
        right.addRow("Stop", self.stop)
        grid.addLayout(left, 1, 0)
        grid.addLayout(right, 1, 1)
        grid.addWidget(QLabel("System"), 2, 0, Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(self.system, 3, 0, 1, 2)
        self.message = MessageLabel(self)
        grid.addWidget(self.message, 4, 0, 1, 2)
        grid.setRowStretch(5, 1)
        for edit in (self.label, self.endpoint, self.adapters, self.seed, self.stop):
            edit.editingFinished.connect(self._commit)
        line = self.model.lineEdit()
        if line is not None:
            line.editingFinished.connect(self._commit)
        self.model.activated.connect(lambda _i: self._commit())
        for spin in (self.temperature, self.top_p, self.max_tokens):
            spin.editingFinished.connect(self._commit)
        self.system.textChanged.connect(self._commit_later)
        self.set_variant(None, None)

    def set_models(self, model_ids: list[str]) -> None:
        """The ids the model box offers."""
        current = self.model.currentText()
        self._loading = True
        try:
            self.model.clear()
            self.model.addItems(model_ids)
            self.model.setEditText(current)
        finally:
            self._loading = False

    def set_variant(self, column: int | None, variant: Variant | None) -> None:
        """Show ``variant`` (None: nothing to edit)."""
        self._loading = True
        try:
            self.column, self._variant = column, variant
            self.message.clear_message()
            for w in (self.model, self.label, self.endpoint, self.adapters, self.system, self.temperature,
                      self.top_p, self.max_tokens, self.seed, self.stop):
                w.setEnabled(variant is not None)
            if variant is None:
                self.title.setText("Click a column's header (or one of its cells) to edit that variant here.")
                return
            self.title.setText(f"Variant {column + 1 if column is not None else ''}: {variant.title}")
            self.model.setEditText(variant.model)
            self.label.setText(variant.label)
            self.endpoint.setText(variant.endpoint or "")
            self.adapters.setText(", ".join(adapter_text(a) for a in variant.adapters))
            self.system.setPlainText(variant.system)
            self.temperature.setValue(-0.1 if variant.temperature is None else variant.temperature)
            self.top_p.setValue(0.0 if variant.top_p is None else variant.top_p)
            self.max_tokens.setValue(variant.max_tokens or 0)
            self.seed.setText("" if variant.seed is None else str(variant.seed))
            self.stop.setText(format_stop(variant.stop))
        finally:
            self._loading = False

    def set_editable(self, editable: bool) -> None:
        """Lock the editor while a run goes on."""
        self.setEnabled(editable)

    def variant(self) -> Variant:
        """The variant as the fields say (raises AppError with a plain message)."""
        model, endpoint = normalize_model_id(self.model.currentText())
        ep = self.endpoint.text().strip() or (endpoint if model.startswith("openai:") else None)
        seed_text = self.seed.text().strip()
        if seed_text and not seed_text.isdigit():
            raise AppError(f"The seed must be a whole number (got '{seed_text}').", hint="Leave it empty for none.")
        adapters = tuple(parse_adapter(p) for p in self.adapters.text().split(",") if p.strip())
        variant = Variant(
            model, self.label.text().strip(), ep if model.startswith("openai:") else None,
            None if self.temperature.value() < 0 else round(self.temperature.value(), 3),
            None if self.top_p.value() <= 0 else round(self.top_p.value(), 3),
            self.max_tokens.value() or None, int(seed_text) if seed_text else None,
            parse_stop(self.stop.text()), self.system.toPlainText(), adapters,
        )  # fmt: skip
        if self._variant is not None:  # tools, a response schema, a transform come from the grid file, kept
            old = self._variant
            variant = variant.with_(tools=old.tools, tool_choice=old.tool_choice,
                                    parallel_tool_calls=old.parallel_tool_calls, response_schema=old.response_schema,
                                    prompts=old.prompts, transform=old.transform,
                                    unpriced=old.unpriced and variant.endpoint == old.endpoint)  # fmt: skip
        if adapters and not variant.ref.takes_adapters:
            raise AppError(f"{model} cannot take LoRA adapters.", hint="Adapters work with local: and huggingface: models.")
        variant.params()  # validates
        return variant

    def _commit_later(self) -> None:
        if not self._loading:
            self._commit()

    def _commit(self) -> None:
        if self._loading or self.column is None or self._variant is None:
            return
        try:
            variant = self.variant()
        except AppError as exc:
            self.message.show_message(exc.user_message())
            return
        self.message.clear_message()
        if variant != self._variant:
            self._variant = variant
            self.title.setText(f"Variant {self.column + 1}: {variant.title}")
            self.variant_edited.emit(self.column, variant)
