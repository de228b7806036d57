"""The API keys dialog: one row per provider/endpoint that takes a key.

Keys go to the OS keyring through ``services.secrets`` (never to the settings file) and are
only ever shown masked. When the system has no secure keyring the dialog says so plainly and
offers session-only storage (memory, forgotten when the app closes). "Test" checks the key
against the endpoint as an asyncio task (no nested event loop).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import NoKeyringError
from app.ui.widgets.common import MessageLabel, error_text, spawn

if TYPE_CHECKING:
    from app.core.settings import Settings
    from app.ui.backend_manager import BackendManager

BULLETS = "\u2022" * 8


def mask_key(value: str | None) -> str:
    """``••••••••abcd`` (last four characters only for keys long enough to stay secret)."""
    if not value:
        return ""
    return BULLETS + (value[-4:] if len(value) >= 16 else "")


@dataclass(frozen=True)
class KeyEntry:
    """One row: the keyring name, the endpoint to test against, and what to show."""

    secret_name: str
    endpoint_name: str
    title: str
    subtitle: str
    required: bool


def key_entries(settings: Settings, stored: set[str]) -> list[KeyEntry]:
    """OpenAI first, then every endpoint that needs a key, is enabled, or has one stored."""
    entries: dict[str, KeyEntry] = {}
    for ep in settings.endpoints:
        name = ep.secret_name
        if name in entries or not (ep.needs_key or ep.enabled or name in stored or ep.kind == "openai"):
            continue
        entries[name] = KeyEntry(name, ep.name, ep.name, ep.base_url, bool(ep.needs_key))
    if "openai" not in entries:
        entries["openai"] = KeyEntry("openai", "OpenAI", "OpenAI", "https://api.openai.com/v1", True)
    return sorted(entries.values(), key=lambda e: (e.secret_name != "openai", not e.required, e.title.lower()))


class _KeyRow:
    """The widgets of one row."""

    def __init__(self, entry: KeyEntry, grid: QGridLayout, row: int) -> None:
        self.entry = entry
        title = QLabel(f"<b>{entry.title}</b>" + ("" if entry.required else " <small>(optional)</small>"))
        sub = QLabel(entry.subtitle)
        sub.setStyleSheet("color: palette(placeholder-text); font-size: 8pt;")
        left = QVBoxLayout()
        left.setSpacing(0)
        left.addWidget(title)
        left.addWidget(sub)
        self.status = QLabel()
        self.status.setMinimumWidth(210)  # "••••••••1234 (this session only)" whole
        self.edit = QLineEdit()
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("Paste a new key")
        self.edit.setMinimumWidth(200)
        self.save = QPushButton("Save")
        self.delete = QPushButton("Remove")
        self.test = QPushButton("Test")
        self.test.setToolTip("Ask the server for its model list with this key")
        self.result = MessageLabel()
        buttons = QHBoxLayout()
        for b in (self.save, self.delete, self.test):
            b.setAutoDefault(False)  # Enter in the key box saves that row only
            buttons.addWidget(b)
        grid.addLayout(left, row * 2, 0)
        grid.addWidget(self.status, row * 2, 1)
        grid.addWidget(self.edit, row * 2, 2)
        grid.addLayout(buttons, row * 2, 3)
        grid.addWidget(self.result, row * 2 + 1, 0, 1, 4)


class KeysDialog(QDialog):
    """Manage API keys. Show it with ``open()`` or ``show()`` (never ``exec()``)."""

    def __init__(self, backend: BackendManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("API keys")
        self.setObjectName("keysDialog")
        self.setMinimumWidth(820)
        self._backend = backend
        self._services = backend.services
        self._secrets = backend.services.secrets
        self._tests: dict[str, asyncio.Task[object]] = {}

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        intro = QLabel(
            "Keys are stored in your system's keyring, never in the settings file, logs or exports."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self._banner = MessageLabel()
        layout.addWidget(self._banner)
        self._session_box = QCheckBox("Keep keys in memory for this session only (forgotten when the app closes)")
        self._session_box.toggled.connect(self._on_session_box_toggled)
        self._remember_box = QCheckBox("Remember this choice (don't ask again)")
        self._remember_box.setStyleSheet("margin-left: 22px;")
        self._remember_box.setEnabled(False)
        self._remember_box.toggled.connect(self._on_remember_box_toggled)
        layout.addWidget(self._session_box)
        layout.addWidget(self._remember_box)

        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QWidget()
        self._grid = QGridLayout(inner)
        self._grid.setHorizontalSpacing(10)
        self._grid.setVerticalSpacing(4)
        self._grid.setColumnStretch(2, 1)
        area.setWidget(inner)
        layout.addWidget(area, 1)
        self._rows: dict[str, _KeyRow] = {}
        try:
            stored = set(self._secrets.names()) if (self._secrets.available() or self._secrets.session_only) else set()
        except Exception:
            stored = set()
        for i, entry in enumerate(key_entries(self._services.settings, stored)):
            row = _KeyRow(entry, self._grid, i)
            row.save.clicked.connect(lambda _=False, n=entry.secret_name: self.save_key(n))
            row.edit.returnPressed.connect(lambda n=entry.secret_name: self.save_key(n))
            row.delete.clicked.connect(lambda _=False, n=entry.secret_name: self.remove_key(n))
            row.test.clicked.connect(lambda _=False, n=entry.secret_name: self.test_connection(n))
            self._rows[entry.secret_name] = row
        self._grid.setRowStretch(len(self._rows) * 2, 1)
        area.setMinimumHeight(min(360, 64 * max(1, len(self._rows))))
        # the rows are never cut (the area does not scroll sideways): as wide as they need
        area.setMinimumWidth(inner.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width())

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAutoDefault(False)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._update_storage_state()
        self.setMinimumWidth(max(820, layout.minimumSize().width()))  # Save / Remove / Test whole

    # public API (also used by tests)
    def secret_names(self) -> list[str]:
        """The keyring names listed, top to bottom."""
        return list(self._rows)

    def key_input(self, secret_name: str) -> QLineEdit:
        """The input box of a row."""
        return self._rows[secret_name].edit

    def status_text(self, secret_name: str) -> str:
        """What the row shows about the stored key (masked)."""
        return self._rows[secret_name].status.text()

    def result_text(self, secret_name: str) -> str:
        """The last save/test message of a row."""
        return self._rows[secret_name].result.text()

    def banner_text(self) -> str:
        """The keyring warning or information shown at the top."""
        return self._banner.text()

    def session_only_checkbox(self) -> QCheckBox:
        """The 'session only' option (visible only when there is no keyring)."""
        return self._session_box

    def remember_checkbox(self) -> QCheckBox:
        """The 'remember this choice' option."""
        return self._remember_box

    def save_key(self, secret_name: str) -> bool:
        """Store the typed key for ``secret_name``; True when stored."""
        row = self._rows[secret_name]
        value = row.edit.text().strip()
        if not value:
            row.result.show_message("Paste the key first, then press Save.", "warning")
            return False
        if any(ch.isspace() for ch in value):
            row.result.show_message("A key has no spaces or line breaks. Copy it again from your provider.")
            return False
        try:
            self._secrets.set(secret_name, value)
        except Exception as exc:
            row.result.show_message(error_text(exc))
            return False
        row.edit.clear()
        where = "for this session" if self._secrets.session_only else "in the keyring"
        row.result.show_message(f"Saved {where}.", "ok")
        self._refresh_row(secret_name)
        return True

    def remove_key(self, secret_name: str) -> None:
        """Forget the stored key for ``secret_name``."""
        row = self._rows[secret_name]
        try:
            self._secrets.delete(secret_name)
        except Exception as exc:
            row.result.show_message(error_text(exc))
            return
        row.result.show_message("Removed.", "info")
        self._refresh_row(secret_name)

    def test_connection(self, secret_name: str) -> asyncio.Task[object] | None:
        """Test the endpoint with its key (a typed key is saved first). Returns the task."""
        row = self._rows[secret_name]
        if row.edit.text().strip() and not self.save_key(secret_name):
            return None
        if row.entry.required and self._secrets.source(secret_name) == "none":  # (no keyring: still "no key")
            row.result.show_message(f"No API key is set for {row.entry.title}, so there is nothing to test yet. "
                                    "Paste the key above, then press Test (it is saved first).", "warning")  # fmt: skip
            return None
        row.test.setEnabled(False)
        row.result.show_message("Testing\u2026", "info")
        task = spawn(self._test(secret_name), lambda msg: self._show_test_result(secret_name, msg, False))
        self._tests[secret_name] = task
        task.add_done_callback(lambda _t: row.test.setEnabled(True))
        return task

    async def _test(self, secret_name: str) -> None:
        message = await self._services.openai().test_connection(self._rows[secret_name].entry.endpoint_name)
        self._show_test_result(secret_name, str(message) or "Connected.", True)

    def _show_test_result(self, secret_name: str, message: str, ok: bool) -> None:
        row = self._rows.get(secret_name)
        if row is not None:
            row.result.show_message(("\u2713 " if ok else "") + message, "ok" if ok else "error")

    # state
    def _refresh_row(self, secret_name: str) -> None:
        row = self._rows[secret_name]
        secrets = self._secrets
        source = secrets.source(secret_name)
        value: str | None = None
        if source != "none":
            try:
                value = secrets.get(secret_name)
            except Exception:
                value = None
        labels = {
            "keyring": "in keyring",
            "session": "this session only",
            "environment": "from environment variable",
        }
        if value:
            row.status.setText(f"{mask_key(value)}  <small>({labels.get(source, source)})</small>")
            row.status.setToolTip("The key is stored; only its last characters are shown.")
        else:
            row.status.setText("<i>not set</i>")
            row.status.setToolTip("")
        row.delete.setEnabled(source in ("keyring", "session"))

    def _update_storage_state(self) -> None:
        secrets = self._secrets
        available = secrets.available()
        usable = available or secrets.session_only
        if secrets.session_only:
            self._banner.show_message(
                "Keys are kept in memory for this session only and are forgotten when the app closes.",
                "info",
            )
        elif not available:
            hint = NoKeyringError("").hint
            self._banner.show_message(
                f"No secure keyring was found on this system (found: {secrets.backend_name()}). "
                f"Keys cannot be saved safely, and they are never written to a plain file. {hint}",
                "warning",
            )
        else:
            self._banner.show_message(f"Keys are stored in: {secrets.backend_name()}.", "ok")
        offer = not available
        self._session_box.setVisible(offer)
        self._remember_box.setVisible(offer)
        self._session_box.blockSignals(True)
        self._session_box.setChecked(secrets.session_only)
        self._session_box.setEnabled(not secrets.session_only)
        self._session_box.blockSignals(False)
        self._remember_box.blockSignals(True)
        self._remember_box.setChecked(self._services.settings.session_only_secrets)
        self._remember_box.setEnabled(offer and secrets.session_only)
        self._remember_box.blockSignals(False)
        for name, row in self._rows.items():
            for widget in (row.edit, row.save):
                widget.setEnabled(usable)
            row.edit.setPlaceholderText("Paste a new key" if usable else "Choose 'session only' above first")
            self._refresh_row(name)

    def _on_session_box_toggled(self, checked: bool) -> None:
        if not checked:
            return
        self._secrets.use_session_only()
        self._update_storage_state()

    def _on_remember_box_toggled(self, checked: bool) -> None:
        """Store only the *choice* (a flag) in the settings; keys never go there."""
        settings = self._services.settings
        if settings.session_only_secrets != checked:
            settings.session_only_secrets = checked
            self._services.save_settings()

    def done(self, result: int) -> None:
        """Close; running connection tests are cancelled."""
        for task in self._tests.values():
            task.cancel()
        super().done(result)
