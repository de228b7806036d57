"""The settings dialog: endpoints, retry policy, default model, local device, price overrides.

Edits happen on a working copy; every field is validated as you type and errors are shown
inline in plain words. OK validates everything, writes the settings in place (providers keep
a reference to the same object), saves them atomically and emits ``settings_changed``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError
from app.core.pricing import PriceTable
from app.core.settings import EndpointConfig, LocalModelSettings, PriceOverride, RetryPolicy
from app.core.types import ModelRef
from app.ui.widgets.common import MessageLabel, error_text

KINDS = ("custom", "openai", "ollama", "lmstudio", "llamacpp", "vllm")
PRICE_COLUMNS = ("Model id", "Input", "Cached input", "Output")


def _pydantic_message(exc: ValidationError) -> str:
    """The first validation problem in plain words."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "value"
    msg = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{field.replace('_', ' ')}: {msg}."


def endpoint_problem(data: dict[str, Any], others: list[dict[str, Any]]) -> str | None:
    """What is wrong with one endpoint's fields (None when fine)."""
    name = str(data.get("name", "")).strip()
    if not name:
        return "Give the endpoint a name."
    if any(str(o.get("name", "")).strip().lower() == name.lower() for o in others):
        return f"Another endpoint is already called '{name}'. Pick a different name."
    url = str(data.get("base_url", "")).strip()
    if not url:
        return "Enter the server's base URL, e.g. http://localhost:11434/v1."
    if " " in url:
        return "The base URL must not contain spaces."
    if not (url.startswith("http://") or url.startswith("https://")):
        return "The base URL must start with http:// or https://, e.g. http://localhost:8000/v1."
    try:
        EndpointConfig(**data)
    except ValidationError as exc:
        return _pydantic_message(exc)
    return None


class SettingsDialog(QDialog):
    """Edit ``backend.services.settings``. Open it with ``open()`` (never ``exec()``).

    Signals:
        settings_changed(): the settings were saved.
    """

    settings_changed = Signal()

    def __init__(self, backend: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.resize(680, 460)
        self._services = backend.services
        settings = self._services.settings
        self._endpoints: list[dict[str, Any]] = [ep.model_dump() for ep in settings.endpoints]
        # keyring entry of each endpoint as opened (None: added here), to move keys on rename
        self._key_names: list[str | None] = [ep.secret_name for ep in settings.endpoints]
        self._loading_form = False

        layout = QVBoxLayout(self)
        self._tabs = QTabWidget()
        self._tabs.addTab(self._build_endpoints_tab(), "Endpoints")
        self._tabs.addTab(self._build_retry_tab(settings.retry), "Retries")
        self._tabs.addTab(self._build_models_tab(settings), "Models")
        self._tabs.addTab(self._build_prices_tab(settings.price_overrides), "Prices")
        layout.addWidget(self._tabs, 1)
        self._error = MessageLabel()
        layout.addWidget(self._error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self._ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout.addWidget(buttons)
        self._refresh_endpoint_list(0)

    # endpoints tab
    def _build_endpoints_tab(self) -> QWidget:
        tab = QWidget()
        row = QHBoxLayout(tab)
        left = QVBoxLayout()
        self._ep_list = QListWidget()
        self._ep_list.setStyleSheet("QListWidget::item { padding: 4px 2px; }")
        self._ep_list.currentRowChanged.connect(self._on_ep_list_row_changed)
        left.addWidget(self._ep_list, 1)
        buttons = QHBoxLayout()
        self._ep_add = QPushButton("Add")
        self._ep_add.clicked.connect(self.add_endpoint)
        self._ep_remove = QPushButton("Remove")
        self._ep_remove.clicked.connect(self._remove_endpoint)
        buttons.addWidget(self._ep_add)
        buttons.addWidget(self._ep_remove)
        left.addLayout(buttons)
        row.addLayout(left, 2)
        form = QFormLayout()
        self._ep_name = QLineEdit()
        self._ep_url = QLineEdit()
        self._ep_url.setPlaceholderText("http://localhost:8000/v1")
        self._ep_kind = QComboBox()
        self._ep_kind.addItems(list(KINDS))
        self._ep_needs_key = QCheckBox("Needs an API key (set it in the Keys dialog)")
        self._ep_enabled = QCheckBox("Enabled (list its models in the picker)")
        self._ep_timeout = self._seconds(1, 3600, 600.0)  # values are set per endpoint below
        self._ep_connect = self._seconds(1, 600, 10.0)
        form.addRow("Name", self._ep_name)
        form.addRow("Base URL", self._ep_url)
        form.addRow("Kind", self._ep_kind)
        form.addRow("", self._ep_needs_key)
        form.addRow("", self._ep_enabled)
        form.addRow("Read timeout", self._ep_timeout)
        form.addRow("Connect timeout", self._ep_connect)
        self._ep_error = MessageLabel()
        form.addRow(self._ep_error)
        for w in (self._ep_name, self._ep_url):
            w.textEdited.connect(self._on_ep_form_edited)
        self._ep_kind.currentIndexChanged.connect(self._on_ep_form_edited)
        for c in (self._ep_needs_key, self._ep_enabled):
            c.toggled.connect(self._on_ep_form_edited)
        for s in (self._ep_timeout, self._ep_connect):
            s.valueChanged.connect(self._on_ep_form_edited)
        holder = QWidget()
        holder.setLayout(form)
        self._ep_form = holder
        row.addWidget(holder, 3)
        return tab

    def _refresh_endpoint_list(self, select: int) -> None:
        self._ep_list.blockSignals(True)
        self._ep_list.clear()
        for i, ep in enumerate(self._endpoints):
            bad = endpoint_problem(ep, self._others(i)) is not None
            mark = "\u26a0 " if bad else ("\u25cf " if ep.get("enabled", True) else "\u25cb ")
            self._ep_list.addItem(f"{mark}{ep.get('name') or '(no name)'}")
        self._ep_list.blockSignals(False)
        self._ep_list.setCurrentRow(min(select, len(self._endpoints) - 1))
        self._on_ep_list_row_changed(self._ep_list.currentRow())

    def _others(self, index: int) -> list[dict[str, Any]]:
        return [ep for i, ep in enumerate(self._endpoints) if i != index]

    def _on_ep_list_row_changed(self, index: int) -> None:
        has = 0 <= index < len(self._endpoints)
        self._ep_form.setEnabled(has)
        self._ep_remove.setEnabled(has)
        if not has:
            self._ep_error.clear_message()
            return
        ep = self._endpoints[index]
        self._loading_form = True
        self._ep_name.setText(str(ep.get("name", "")))
        self._ep_url.setText(str(ep.get("base_url", "")))
        self._ep_kind.setCurrentText(str(ep.get("kind", "custom")))
        self._ep_needs_key.setChecked(bool(ep.get("needs_key")))
        self._ep_enabled.setChecked(bool(ep.get("enabled", True)))
        self._ep_timeout.setValue(float(ep.get("timeout_s", 600.0)))
        self._ep_connect.setValue(float(ep.get("connect_timeout_s", 10.0)))
        self._loading_form = False
        self._show_endpoint_problem(index)

    def _on_ep_form_edited(self, *_: Any) -> None:
        index = self._ep_list.currentRow()
        if self._loading_form or not 0 <= index < len(self._endpoints):
            return
        ep = self._endpoints[index]
        ep.update(
            name=self._ep_name.text().strip(),
            base_url=self._ep_url.text().strip(),
            kind=self._ep_kind.currentText(),
            needs_key=self._ep_needs_key.isChecked(),
            enabled=self._ep_enabled.isChecked(),
            timeout_s=self._ep_timeout.value(),
            connect_timeout_s=self._ep_connect.value(),
        )
        problem = self._show_endpoint_problem(index)
        item = self._ep_list.item(index)
        mark = "\u26a0 " if problem else ("\u25cf " if ep["enabled"] else "\u25cb ")
        item.setText(f"{mark}{ep['name'] or '(no name)'}")

    def _show_endpoint_problem(self, index: int) -> str | None:
        problem = endpoint_problem(self._endpoints[index], self._others(index))
        self._ep_error.show_message(problem or "")
        return problem

    def add_endpoint(self) -> None:
        """Add a new endpoint and put the cursor in its name field."""
        base, n = "My server", 1
        names = {str(e.get("name", "")).lower() for e in self._endpoints}
        name = base
        while name.lower() in names:
            n += 1
            name = f"{base} {n}"
        self._endpoints.append(EndpointConfig(name=name, base_url="http://localhost:8000/v1").model_dump())
        self._key_names.append(None)
        self._refresh_endpoint_list(len(self._endpoints) - 1)
        self._ep_name.setFocus()
        self._ep_name.selectAll()

    def _remove_endpoint(self) -> None:
        index = self._ep_list.currentRow()
        if 0 <= index < len(self._endpoints):
            del self._endpoints[index]
            del self._key_names[index]
            self._refresh_endpoint_list(max(0, index - 1))

    # other tabs
    def _build_retry_tab(self, retry: RetryPolicy) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self._retry_attempts = QSpinBox()
        self._retry_attempts.setRange(1, 10)
        self._retry_attempts.setValue(retry.max_attempts)
        self._retry_base = self._seconds(0, 60, retry.base_delay_s)
        self._retry_max = self._seconds(0, 600, retry.max_delay_s)
        self._retry_jitter = QDoubleSpinBox()
        self._retry_jitter.setRange(0, 1)
        self._retry_jitter.setSingleStep(0.05)
        self._retry_jitter.setValue(retry.jitter)
        self._retry_after = QCheckBox("Wait as long as the server's Retry-After says")
        self._retry_after.setChecked(retry.respect_retry_after)
        self._retry_after_max = self._seconds(0, 3600, retry.max_retry_after_s)
        intro = QLabel("Remote requests that fail with a rate limit, a server error or a lost "
                       "connection are retried before the answer starts, with exponential backoff.")
        intro.setWordWrap(True)
        form.addRow(intro)
        form.addRow("Attempts (1 = no retry)", self._retry_attempts)
        form.addRow("First delay", self._retry_base)
        form.addRow("Longest delay", self._retry_max)
        form.addRow("Jitter (fraction)", self._retry_jitter)
        form.addRow("", self._retry_after)
        form.addRow("Longest Retry-After honoured", self._retry_after_max)
        return tab

    @staticmethod
    def _seconds(low: float, high: float, value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(low, high)
        box.setDecimals(2)
        box.setSuffix(" s")
        box.setValue(value)
        return box

    def _build_models_tab(self, settings: Any) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self._default_model = QComboBox()
        self._default_model.setEditable(True)
        self._default_model.addItem("(automatic: OpenAI with a key, else the bundled model)", "")
        for mid in dict.fromkeys(
            [m for m in (settings.default_model, "openai:gpt-4o-mini", "local:smollm2", "mock:echo") if m]
            + list(settings.recent_local_models)
        ):
            self._default_model.addItem(mid, mid)
        self._default_model.setCurrentIndex(self._default_model.findData(settings.default_model or ""))
        local: LocalModelSettings = settings.local
        self._device = QComboBox()
        self._device.addItems(["auto", "cpu", "cuda", "mps"])
        self._device.setCurrentText(local.device)
        self._dtype = QComboBox()
        self._dtype.addItems(["auto", "float32", "bfloat16", "float16", "int8", "int4", "int4-qkv8"])
        self._dtype.setCurrentText(local.dtype)
        self._dtype.setToolTip("auto: int4-qkv8 on the CPU (int8 q/k/v, int4 elsewhere; the fast path), "
                               "bfloat16 on a GPU. int8/int4/int4-qkv8 run on the CPU only.")
        self._threads = QSpinBox()
        self._threads.setRange(0, 256)
        self._threads.setSpecialValueText("auto")
        self._threads.setToolTip("auto: measured while generating (the count that decodes fastest now)")
        self._threads.setValue(local.threads or 0)
        form.addRow("Default model", self._default_model)
        form.addRow(QLabel("<b>Local models</b>"))
        form.addRow("Device", self._device)
        form.addRow("Weights precision", self._dtype)
        form.addRow("CPU threads", self._threads)
        return tab

    def _build_prices_tab(self, overrides: dict[str, PriceOverride]) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addWidget(QLabel("Your prices in USD per 1M tokens override the bundled table "
                                "(model name like gpt-4o, or a full id like openai:gpt-4o)."))
        self._prices = QTableWidget(0, len(PRICE_COLUMNS))
        self._prices.setHorizontalHeaderLabels(list(PRICE_COLUMNS))
        self._prices.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self._prices.verticalHeader().setVisible(False)
        for model, ov in overrides.items():
            self.add_price_row(model, ov.input, ov.cached_input or "", ov.output)
        layout.addWidget(self._prices, 1)
        row = QHBoxLayout()
        add = QPushButton("Add price")
        add.clicked.connect(lambda: self.add_price_row())
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self._prices.removeRow(self._prices.currentRow()))
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        layout.addLayout(row)
        return tab

    def add_price_row(self, model: str = "", input: str = "", cached: str = "", output: str = "") -> int:
        """Append a price override row; returns its index."""
        r = self._prices.rowCount()
        self._prices.insertRow(r)
        for c, text in enumerate((model, input, cached, output)):
            self._prices.setItem(r, c, QTableWidgetItem(str(text)))
        return r

    # collecting and saving
    def _collect(self) -> tuple[dict[str, Any] | None, str, int]:
        """The new values, or (None, problem, tab index)."""
        endpoints: list[EndpointConfig] = []
        for i, data in enumerate(self._endpoints):
            problem = endpoint_problem(data, self._others(i))
            if problem:
                self._ep_list.setCurrentRow(i)
                return None, f"Endpoint '{data.get('name') or '(no name)'}': {problem}", 0
            endpoints.append(EndpointConfig(**data))
        try:
            retry = RetryPolicy(
                max_attempts=self._retry_attempts.value(),
                base_delay_s=self._retry_base.value(),
                max_delay_s=self._retry_max.value(),
                jitter=self._retry_jitter.value(),
                respect_retry_after=self._retry_after.isChecked(),
                max_retry_after_s=self._retry_after_max.value(),
            )
        except ValidationError as exc:
            return None, _pydantic_message(exc), 1
        if retry.max_delay_s < retry.base_delay_s:
            return None, "The longest delay must be at least the first delay.", 1
        text = self._default_model.currentText().strip()
        idx = self._default_model.findText(text)
        default = (self._default_model.itemData(idx) if idx >= 0 else text) or None
        if default:
            try:
                ModelRef.parse(default)
            except AppError as exc:
                return None, f"Default model: {exc.user_message()}", 2
        local = LocalModelSettings(
            device=self._device.currentText(),
            dtype=self._dtype.currentText(),
            threads=self._threads.value() or None,
            trust_remote_code=list(self._services.settings.local.trust_remote_code),
        )
        overrides: dict[str, PriceOverride] = {}
        for r in range(self._prices.rowCount()):
            items = [self._prices.item(r, c) for c in range(4)]
            cells = [item.text().strip() if item is not None else "" for item in items]
            if not any(cells):
                continue
            model, inp, cached, out = cells
            if not model:
                return None, f"Price row {r + 1}: enter the model id.", 3
            if not inp or not out:
                return None, f"Price of '{model}': enter both an input and an output price.", 3
            overrides[model] = PriceOverride(input=inp, cached_input=cached or None, output=out)
        try:
            prices = PriceTable.load(overrides)
        except AppError as exc:
            return None, exc.user_message(), 3
        values = {
            "endpoints": endpoints,
            "retry": retry,
            "default_model": default or None,
            "local": local,
            "price_overrides": overrides,
            "prices": prices,
        }
        return values, "", -1

    def accept(self) -> None:
        """Validate everything; save and close, or show what to fix and stay open."""
        values, problem, tab = self._collect()
        if values is None:
            self._error.show_message(problem)
            if tab >= 0:
                self._tabs.setCurrentIndex(tab)
            return
        services = self._services
        settings = services.settings
        prices = values.pop("prices")
        for key, value in values.items():
            setattr(settings, key, value)  # in place: providers share this object
        try:
            services.save_settings()
        except OSError as exc:
            self._error.show_message(f"The settings could not be saved: {error_text(exc)} Check the disk and try again.")
            return
        services.prices = prices
        services.engine.prices = prices
        problem = self._move_renamed_keys(settings.endpoints)
        if problem:
            self._error.show_message(problem)
            return
        self._error.clear_message()
        self.settings_changed.emit()
        super().accept()

    def _move_renamed_keys(self, endpoints: list[EndpointConfig]) -> str:
        """Keys follow renamed endpoints (``endpoint:<old>`` -> ``endpoint:<new>``)."""
        secrets = self._services.secrets
        for old, ep in zip(self._key_names, endpoints, strict=True):
            if old is None or old == ep.secret_name:
                continue
            try:
                key = secrets.get(old) if secrets.source(old) in ("keyring", "session") else None
                if key:
                    secrets.set(ep.secret_name, key)
                    secrets.delete(old)
            except AppError as exc:
                return f"The key of '{ep.name}' could not be moved from its old name: {exc.user_message()}"
        self._key_names = [ep.secret_name for ep in endpoints]
        return ""

    def error_text(self) -> str:
        """The problem shown at the bottom ('' when none)."""
        return self._error.text()

    def endpoint_error_text(self) -> str:
        """The inline problem of the endpoint being edited ('' when none)."""
        return self._ep_error.text()
