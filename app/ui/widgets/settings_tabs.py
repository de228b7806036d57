"""Parts of the settings dialog: the Appearance tab (theme, font size, the key that sends)
and the endpoint Test (an endpoint as edited, before it is saved; a key typed into its URL
is used for the test and moved to the keyring on OK, never saved in settings.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError
from app.core.settings import EndpointConfig, UiSettings, env_base_url, split_url_key
from app.core.urls import clean_url
from app.ui.widgets.common import add_rows

if TYPE_CHECKING:
    from app.core.secrets import SecretStore
    from app.core.settings import LocalModelSettings, PriceOverride, RetryPolicy, Settings

PRICE_COLUMNS = ("Model id", "Input", "Cached input", "Output")

THEMES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


class AppearanceTab(QWidget):
    """Theme (system / light / dark), font size, and whether Enter sends."""

    def __init__(self, ui: UiSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self.theme = QComboBox()
        for value, label in THEMES:
            self.theme.addItem(label, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(ui.theme)))
        self.font_size = QSpinBox()
        self.font_size.setRange(5, 32)
        self.font_size.setSpecialValueText("system size")
        self.font_size.setSuffix(" pt")
        self.font_size.setValue(ui.font_size or 5)
        self.enter_sends = QCheckBox("Enter sends the message (Shift+Enter starts a new line)")
        self.enter_sends.setChecked(ui.enter_sends)
        note = QLabel("Ctrl+Enter always sends; Esc stops the answer.")
        note.setStyleSheet("color: palette(placeholder-text);")
        add_rows(form, ("Theme", self.theme), ("Font size", self.font_size), ("", self.enter_sends))  # fmt: skip
        form.addRow("", note)

    def values(self) -> UiSettings:
        """The settings as chosen."""
        size = self.font_size.value()
        return UiSettings(theme=self.theme.currentData(), font_size=None if size < 6 else size,
                          enter_sends=self.enter_sends.isChecked())  # fmt: skip


def env_override_note(data: dict[str, object]) -> str:
    """What the dialog says under the built-in OpenAI endpoint when OPENAI_BASE_URL is set."""
    if data.get("kind") != "openai" or data.get("name") != "OpenAI":
        return ""
    try:
        url = env_base_url()
    except AppError as exc:  # a malformed OPENAI_BASE_URL: say so (requests fail with it)
        return exc.message
    if url is None:
        return ""
    return (f"OPENAI_BASE_URL is set: requests go to {clean_url(url)} instead (read from the environment, "
            "never saved).")  # fmt: skip


def url_key_note(url: str) -> str:
    """What the dialog says about a key typed into a base URL ('' when there is none)."""
    _clean, key = split_url_key(url)
    if key is None:
        return ""
    return ("This URL holds a key. On OK it is moved to the keyring and the URL is saved without it "
            "(it is then sent as the API key).")  # fmt: skip


def endpoint_to_test(data: dict[str, object], stored_names: list[str], secrets: SecretStore) -> tuple[EndpointConfig, str | None]:
    """The endpoint to test as edited (at OPENAI_BASE_URL for the built-in one) and its key:
    one typed into the URL, else the stored one (under its new or old name). Raises AppError
    saying what to do when a key is needed and none is set (never "no keyring")."""
    clean, url_key = split_url_key(str(data.get("base_url", "")))
    ep = EndpointConfig.model_validate({**data, "base_url": clean})
    env = env_base_url() if ep.kind == "openai" and ep.name == "OpenAI" else None
    if env:
        ep = ep.model_copy(update={"base_url": env})
    if url_key:
        return ep, url_key
    key = None
    no_keyring = False
    for name in dict.fromkeys([ep.secret_name, *stored_names]):
        try:
            key = secrets.get(name)
        except AppError:
            no_keyring = True
            continue
        if key:
            break
    if not key and ep.needs_key:
        where = (" This system has no keyring: in API keys, choose to keep keys for this session."
                 if no_keyring else "")  # fmt: skip
        raise AppError(f"No API key is set for {ep.name}, so it cannot be tested yet.",
                       hint="Add the key in API keys (Model menu), or untick 'Needs an API key' for a "
                       f"server that takes none.{where}")  # fmt: skip
    return ep, key or None


class SettingsTabs:
    """The Retries, Models and Prices tabs of :class:`SettingsDialog` (a mixin: the widgets
    are the dialog's attributes)."""

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
        add_rows(form, ("Attempts (1 = no retry)", self._retry_attempts),
                 ("First delay", self._retry_base), ("Longest delay", self._retry_max),
                 ("Jitter (fraction)", self._retry_jitter), ("", self._retry_after),
                 ("Longest Retry-After honoured", self._retry_after_max))  # fmt: skip
        return tab

    @staticmethod
    def _seconds(low: float, high: float, value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(low, high)
        box.setDecimals(2)
        box.setSuffix(" s")
        box.setValue(value)
        return box

    def _build_models_tab(self, settings: Settings) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self._default_model = QComboBox()
        self._default_model.setEditable(True)
        self._default_model.addItem("(automatic: the model used last; at first OpenAI with a key, else the bundled model)", "")
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
        self._dtype.setToolTip("auto: int4 on the CPU (the fast path; int4-qkv8: int8 q/k/v, int4 elsewhere), "
                               "bfloat16 on a GPU. int8/int4/int4-qkv8 run on the CPU only.")
        self._threads = QSpinBox()
        self._threads.setRange(0, 256)
        self._threads.setSpecialValueText("auto")
        self._threads.setToolTip("auto: measured while generating (the count that decodes fastest now)")
        self._threads.setValue(local.threads or 0)
        form.addRow("Default model", self._default_model)
        form.addRow(QLabel("<b>Local models</b>"))
        add_rows(form, ("Device", self._device), ("Weights precision", self._dtype),
                 ("CPU threads", self._threads))  # fmt: skip
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

