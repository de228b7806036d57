"""The settings dialog: endpoints, retry policy, default model, local device, price overrides.

Edits happen on a working copy; every field is validated as you type and errors are shown
inline in plain words. OK validates everything, writes the settings in place (providers keep
a reference to the same object), saves them atomically and emits ``settings_changed``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core import endpoint_status
from app.core.errors import AppError
from app.core.model_fields import ValidationError
from app.core.pricing import PriceTable
from app.core.settings import (
    EndpointConfig,
    LocalModelSettings,
    PriceOverride,
    RetryPolicy,
    split_url_key,
)
from app.core.types import ModelRef
from app.ui.widgets.common import MessageLabel, add_rows, error_text, spawn
from app.ui.widgets.settings_tabs import (
    AppearanceTab,
    SettingsTabs,
    endpoint_to_test,
    env_override_note,
    url_key_note,
)

if TYPE_CHECKING:
    from app.ui.backend_manager import BackendManager

KINDS = ("custom", "openai", "ollama", "lmstudio", "llamacpp", "vllm")
PRICE_COLUMNS = ("Model id", "Input", "Cached input", "Output")


def _validation_message(exc: ValidationError) -> str:
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
        EndpointConfig.model_validate(data)
    except ValidationError as exc:
        return _validation_message(exc)
    return None


class SettingsDialog(QDialog, SettingsTabs):
    """Edit ``backend.services.settings``. Open it with ``open()`` (never ``exec()``).

    Signals:
        settings_changed(): the settings were saved.
    """

    settings_changed = Signal()

    def __init__(self, backend: BackendManager, parent: QWidget | None = None) -> None:
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
        self._appearance = AppearanceTab(settings.ui)
        self._tabs.addTab(self._appearance, "Appearance")
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
        add_rows(form, ("Name", self._ep_name), ("Base URL", self._ep_url),
                 ("Kind", self._ep_kind), ("", self._ep_needs_key), ("", self._ep_enabled),
                 ("Read timeout", self._ep_timeout), ("Connect timeout", self._ep_connect))  # fmt: skip
        self._ep_note = MessageLabel()
        form.addRow(self._ep_note)
        test_row = QHBoxLayout()
        self._ep_test = QPushButton("Test")
        self._ep_test.setToolTip("Ask the server for its model list, with the values above (before saving)")
        self._ep_test.setAutoDefault(False)
        self._ep_test.clicked.connect(self.test_endpoint)
        test_row.addWidget(self._ep_test)
        test_row.addStretch(1)
        form.addRow(test_row)
        self._ep_test_result = MessageLabel()
        form.addRow(self._ep_test_result)
        self._ep_error = MessageLabel()
        form.addRow(self._ep_error)
        self._test_task: asyncio.Task[object] | None = None
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
        self._ep_test_result.clear_message()  # it was about the endpoint shown before
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

    def _on_ep_form_edited(self, *_: object) -> None:
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
        data = self._endpoints[index]
        problem = endpoint_problem(data, self._others(index))
        self._ep_error.show_message(problem or "")
        note = url_key_note(str(data.get("base_url", ""))) or env_override_note(data)
        self._ep_note.show_message(note, "info")
        return problem

    # the Test button
    def test_endpoint(self) -> asyncio.Task[object] | None:
        """Test the endpoint being edited, as it is now (not saved yet). Returns the task."""
        index = self._ep_list.currentRow()
        if not 0 <= index < len(self._endpoints):
            return None
        data = dict(self._endpoints[index])
        problem = endpoint_problem(data, self._others(index))
        if problem:
            self._ep_test_result.show_message(problem)
            return None
        try:
            ep, key = endpoint_to_test(data, [n for n in (self._key_names[index],) if n], self._services.secrets)
        except AppError as exc:
            self._ep_test_result.show_message(exc.user_message(), "warning")
            return None
        if self._test_task is not None:
            self._test_task.cancel()
        self._ep_test.setEnabled(False)
        self._ep_test_result.show_message(f"Testing {ep.name}…", "info")
        self._test_task = spawn(self._run_test(ep, key),
                                lambda msg: self._ep_test_result.show_message(msg))  # fmt: skip
        self._test_task.add_done_callback(lambda _t: self._ep_test.setEnabled(True))
        return self._test_task

    async def _run_test(self, ep: EndpointConfig, key: str | None) -> None:
        state = await endpoint_status.check(ep, key)
        self._ep_test_result.show_message(("\u2713 " if state.ok else f"{state.text}: ") + state.detail,
                                          "ok" if state.ok else "error")  # fmt: skip

    def test_result_text(self) -> str:
        """What the last Test said ('' when none)."""
        return self._ep_test_result.text()

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

    # collecting and saving
    def _collect(self) -> tuple[dict[str, Any] | None, str, int]:
        """The new values, or (None, problem, tab index)."""
        endpoints: list[EndpointConfig] = []
        url_keys: dict[int, str] = {}
        for i, data in enumerate(self._endpoints):
            problem = endpoint_problem(data, self._others(i))
            if problem:
                self._ep_list.setCurrentRow(i)
                return None, f"Endpoint '{data.get('name') or '(no name)'}': {problem}", 0
            clean, key = split_url_key(str(data["base_url"]))
            if key is not None:  # never saved in settings.json: the keyring keeps it
                url_keys[i] = key
                data = {**data, "base_url": clean, "needs_key": True}
            endpoints.append(EndpointConfig.model_validate(data))
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
            return None, _validation_message(exc), 1
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
        local = LocalModelSettings.model_validate({
            "device": self._device.currentText(),
            "dtype": self._dtype.currentText(),
            "threads": self._threads.value() or None,
            "trust_remote_code": list(self._services.settings.local.trust_remote_code),
        })
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
            "ui": self._appearance.values(),
            "url_keys": url_keys,
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
        url_keys: dict[int, str] = values.pop("url_keys")
        for index, key in url_keys.items():  # into the keyring before the cleaned URLs are saved
            ep = values["endpoints"][index]
            try:
                services.secrets.set(ep.secret_name, key)
            except AppError as exc:
                self._ep_list.setCurrentRow(index)
                self._error.show_message(f"The key in the URL of '{ep.name}' could not be put in the keyring, so "
                                         f"nothing was saved: {exc.user_message()} Remove the key from the URL "
                                         "and set it in API keys instead.")  # fmt: skip
                return
        for index, ep in enumerate(values["endpoints"]):
            if index in url_keys:
                self._endpoints[index] = ep.model_dump()
                self._key_names[index] = None  # the URL's key is the one to keep: nothing to move
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
