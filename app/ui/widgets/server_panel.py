"""The Server panel (a dock tabbed with Usage and LoRA adapters): start and stop the local
OpenAI-compatible server (also proxying the remote endpoints, and with CORS origins, when
asked: both kept in the settings), its address, its key (masked, with a reveal toggle and a
Copy button), the models it offers, "Add as endpoint", and a live log of the requests with
their figures. The status-bar indicator is
:class:`~app.ui.widgets.server_indicator.ServerIndicator` (the panel is made when its dock is
first shown; the indicator is there from the start).

The panel talks to a :class:`ServerControl` only (the window's
:class:`~app.ui.controllers.server.ServerController`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.widgets.common import MessageLabel, selectable_label
from app.ui.widgets.fitted_table import FittedTable

if TYPE_CHECKING:
    from asyncio import Task

    from app.serve.routes import RequestFigures

LOG_COLUMNS = ("Time", "Client", "Model", "Tokens", "TTFT", "tok/s", "Status")
LOG_PRIORITY = ("Status", "Tokens", "tok/s", "TTFT", "Client", "Time")
MAX_LOG_ROWS = 500
"""The live log keeps the newest requests only (bounded memory)."""


def _status_text(f: RequestFigures) -> str:
    if f.status == "running":
        return "live"  # short: the column is narrow in a 1024 px window
    if f.status == "finished":
        return str(f.http_status)
    return f"{f.http_status} {f.status}"


def log_cells(f: RequestFigures, when: float) -> dict[str, str]:
    """The log row of one request (never the key or the prompt)."""
    ttft = "" if f.ttft_s is None else f"{f.ttft_s:.2f} s"
    speed = "" if f.tokens_per_s is None else f"{f.tokens_per_s:.0f}" if f.tokens_per_s >= 100 else f"{f.tokens_per_s:.1f}"
    return {"Time": time.strftime("%H:%M:%S", time.localtime(when)), "Client": f.client, "Model": f.model or "-",
            "Tokens": str(f.tokens) if f.status != "running" else "", "TTFT": ttft, "tok/s": speed,
            "Status": _status_text(f)}  # fmt: skip


class ServerControl(Protocol):
    """What the panel and the indicator need of the server's controller."""

    state_changed: Any
    """Signal(bool running)."""
    request_seen: Any
    """Signal(RequestFigures)."""
    models_changed: Any
    """Signal(list[str] ids)."""
    failed: Any
    """Signal(str message)."""

    @property
    def running(self) -> bool: ...
    @property
    def address(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def key(self) -> str | None: ...
    def start(self, host: str = ..., port: int = ..., *, require_key: bool = ..., proxy: bool | None = ...,
              cors_origins: str | None = ...) -> Task[object]: ...  # fmt: skip
    def saved_options(self) -> tuple[bool, str]: ...
    def stop(self) -> Task[object]: ...
    def copy_key(self) -> bool: ...
    def add_as_endpoint(self) -> object: ...
    def indicator(self) -> str: ...


class ServerPanel(QWidget):
    """The Server panel over ``control``."""

    def __init__(self, control: ServerControl, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.control = control
        self._rows: dict[str, tuple[float, QTableWidgetItem]] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)

        where = QHBoxLayout()
        self.host_edit = QLineEdit("127.0.0.1")
        self.host_edit.setToolTip("The address to listen on: 127.0.0.1 is this machine only. "
                                  "Another address lets the network in (a key is then required).")  # fmt: skip
        self.port_spin = QSpinBox()
        self.port_spin.setRange(0, 65535)
        self.port_spin.setValue(8080)
        self.port_spin.setToolTip("The port (0: any free port)")
        where.addWidget(self.host_edit, 1)
        where.addWidget(QLabel(":"))
        where.addWidget(self.port_spin)
        lay.addLayout(where)
        row = QHBoxLayout()
        self.key_check = QCheckBox("Require a key")
        self.key_check.setChecked(True)
        self.key_check.setToolTip("Clients send the key as 'Authorization: Bearer KEY'. Without it, only on 127.0.0.1.")
        self.start_button = QPushButton("Start")
        row.addWidget(self.key_check, 1)
        row.addWidget(self.start_button)
        lay.addLayout(row)
        proxy, origins = control.saved_options()
        self.proxy_check = QCheckBox("Also serve remote endpoints (proxy)")
        self.proxy_check.setChecked(proxy)
        self.proxy_check.setToolTip("Also offer the configured endpoints' models (openai:MODEL@ENDPOINT), forwarded "
                                    "with the app's keyring keys: clients never see those keys")  # fmt: skip
        lay.addWidget(self.proxy_check)
        cors = QFormLayout()
        cors.setContentsMargins(0, 0, 0, 0)
        self.cors_edit = QLineEdit(origins)
        self.cors_edit.setPlaceholderText("none")
        self.cors_edit.setToolTip("Web pages allowed to call the server from a browser, e.g. http://localhost:3000 "
                                  "(separate several with commas; * for any). Empty: no CORS.")  # fmt: skip
        cors.addRow("CORS origins", self.cors_edit)
        lay.addLayout(cors)
        self.message = MessageLabel(self)
        lay.addWidget(self.message)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.address_label = selectable_label("Stopped", wrap=False)
        form.addRow("Address", self.address_label)
        keys = QHBoxLayout()
        self.key_edit = QLineEdit()
        self.key_edit.setReadOnly(True)
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("(not serving)")
        self.reveal_button = QToolButton()
        self.reveal_button.setText("Show")
        self.reveal_button.setCheckable(True)
        self.reveal_button.setToolTip("Show or hide the key")
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("Copy the key to the clipboard")
        keys.addWidget(self.key_edit, 1)
        keys.addWidget(self.reveal_button)
        keys.addWidget(self.copy_button)
        form.addRow("Key", keys)
        lay.addLayout(form)
        self.endpoint_button = QPushButton("Add as endpoint")
        self.endpoint_button.setToolTip("Let the app use its own server: an endpoint in Settings, its key in the keyring")
        lay.addWidget(self.endpoint_button)

        self.models_label = QLabel("Models")
        lay.addWidget(self.models_label)
        self.models_list = QListWidget()
        self.models_list.setMaximumHeight(110)
        lay.addWidget(self.models_list)
        lay.addWidget(QLabel("Requests"))
        self.log_table = FittedTable(LOG_COLUMNS, stretch="Model", priority=LOG_PRIORITY)
        lay.addWidget(self.log_table, 1)

        self.start_button.clicked.connect(self._on_start_clicked)
        self.reveal_button.toggled.connect(self._on_reveal_toggled)
        self.copy_button.clicked.connect(control.copy_key)
        self.endpoint_button.clicked.connect(control.add_as_endpoint)
        control.state_changed.connect(self._on_state_changed)
        control.request_seen.connect(self.show_request)
        control.models_changed.connect(self.set_models)
        control.failed.connect(self._on_failed)
        self._on_state_changed(control.running)

    # -- what it shows -------------------------------------------------------------------------
    def models(self) -> list[str]:
        """The model ids listed."""
        return [self.models_list.item(i).text() for i in range(self.models_list.count())]

    def log_rows(self) -> list[dict[str, str]]:
        """The live log, newest first, as column -> text."""
        out = []
        for r in range(self.log_table.rowCount()):
            out.append({c: (item.text() if (item := self.log_table.item(r, i)) is not None else "")
                        for i, c in enumerate(LOG_COLUMNS)})  # fmt: skip
        return out

    def set_models(self, ids: Sequence[str]) -> None:
        """List the models the server offers."""
        self.models_list.clear()
        self.models_list.addItems(list(ids))
        self.models_label.setText(f"Models ({len(ids)})")

    def show_request(self, figures: RequestFigures) -> None:
        """Add a request to the log (newest on top), or update its row when it ends."""
        known = self._rows.get(figures.request_id)
        cells = log_cells(figures, known[0] if known else time.time())
        if known is None:
            self.log_table.insertRow(0)
            row = 0
        else:
            row = self.log_table.row(known[1])
        items = {c: QTableWidgetItem(text) for c, text in cells.items()}
        if figures.error:
            items["Status"].setToolTip(figures.error)
        self.log_table.set_row(row, items)
        self._rows[figures.request_id] = (known[0] if known else time.time(), items["Time"])
        while self.log_table.rowCount() > MAX_LOG_ROWS:
            last = self.log_table.rowCount() - 1
            gone = self.log_table.item(last, 0)
            self._rows = {k: v for k, v in self._rows.items() if v[1] is not gone}
            self.log_table.removeRow(last)

    # -- slots ---------------------------------------------------------------------------------
    def _on_start_clicked(self) -> None:
        self.message.clear_message()
        self.start_button.setEnabled(False)  # until the server says it started, stopped or failed
        if self.control.running:
            self.control.stop()
        else:
            self.control.start(self.host_edit.text(), self.port_spin.value(), require_key=self.key_check.isChecked(),
                               proxy=self.proxy_check.isChecked(), cors_origins=self.cors_edit.text())  # fmt: skip

    def _on_state_changed(self, running: bool) -> None:
        self.start_button.setEnabled(True)
        self.start_button.setText("Stop" if running else "Start")
        for w in (self.host_edit, self.port_spin, self.key_check, self.proxy_check, self.cors_edit):
            w.setEnabled(not running)
        address, key = self.control.address, self.control.key
        self.address_label.setText(address or "Stopped")
        self.key_edit.setText(key or "")
        self.key_edit.setPlaceholderText("(no key)" if running else "(not serving)")
        self.copy_button.setEnabled(bool(key))
        self.reveal_button.setEnabled(bool(key))
        self.endpoint_button.setEnabled(running)
        if running:
            self.port_spin.setValue(self.control.port or 0)  # the bound port (0 picked a free one)
        else:
            self.reveal_button.setChecked(False)

    def _on_reveal_toggled(self, shown: bool) -> None:
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        self.reveal_button.setText("Hide" if shown else "Show")

    def _on_failed(self, message: str) -> None:
        self.start_button.setEnabled(True)
        self.message.show_message(message)
