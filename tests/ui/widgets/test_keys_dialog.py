"""Keys dialog: keys go to the secret store only, shown masked; no-keyring fallback; test
connection against the loopback OpenAI-compatible server (through the real BackendManager)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import keyring.backends.fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from app.core.secrets import SecretStore
from app.core.services import Services
from app.core.settings import SettingsStore
from app.ui.backend_manager import BackendManager
from app.ui.widgets.keys_dialog import KeysDialog, mask_key
from tests.support.openai_server import OpenAIServer

KEY = "sk-test-UNIQUEkeyVALUE0123456789abcd"


def _files_containing(root: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def _dialog(qtbot: Any, services: Services) -> KeysDialog:
    dialog = KeysDialog(BackendManager(services, model_id="mock:echo"))
    qtbot.addWidget(dialog)
    dialog.open()
    return dialog


def test_saving_a_key_writes_the_secret_store_and_never_the_settings(
    qtbot: Any, services: Services, app_home: Path
) -> None:
    dialog = _dialog(qtbot, services)
    assert dialog.secret_names()[0] == "openai"
    assert "not set" in dialog.status_text("openai")
    box = dialog.key_input("openai")
    assert box.echoMode() == QLineEdit.EchoMode.Password
    qtbot.keyClicks(box, KEY)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert services.secrets.get("openai") == KEY
    assert services.secrets.source("openai") == "keyring"
    assert box.text() == ""  # the typed key does not linger in the widget
    assert dialog.isVisible()  # Enter saved the row; it did not close the dialog
    status = dialog.status_text("openai")
    assert KEY not in status and mask_key(KEY) in status and status.count("\u2022") == 8
    assert "Saved in the keyring" in dialog.result_text("openai")
    # whatever else gets saved, the key is in no file under the app home
    services.save_settings()
    dialog.close()
    settings_bytes = services.paths.settings_file.read_bytes()
    assert KEY.encode() not in settings_bytes
    assert _files_containing(app_home, KEY) == []
    assert KEY not in json.dumps(SettingsStore(services.paths.settings_file).load().model_dump())


def test_bad_input_and_remove(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    dialog.key_input("openai").setText("sk-with a space")
    assert not dialog.save_key("openai")
    assert "no spaces" in dialog.result_text("openai")
    assert services.secrets.get("openai") is None
    dialog.key_input("openai").setText(KEY)
    assert dialog.save_key("openai")
    dialog._rows["openai"].delete.click()
    assert services.secrets.get("openai") is None
    assert "not set" in dialog.status_text("openai")


def test_no_keyring_warns_and_offers_session_only(qtbot: Any, app_home: Path) -> None:
    services = Services.create(secrets=SecretStore(backend=keyring.backends.fail.Keyring(), environ={}))
    try:
        dialog = _dialog(qtbot, services)
        assert "No secure keyring" in dialog.banner_text()
        assert "session only" in dialog.banner_text()
        session, remember = dialog.session_only_checkbox(), dialog.remember_checkbox()
        assert session.isVisibleTo(dialog) and not session.isChecked()
        assert not dialog.key_input("openai").isEnabled()  # nowhere safe to put it yet
        assert not remember.isEnabled()

        session.setChecked(True)
        assert services.secrets.session_only
        assert "memory for this session" in dialog.banner_text()
        assert dialog.key_input("openai").isEnabled()
        dialog.key_input("openai").setText(KEY)
        assert dialog.save_key("openai")
        assert services.secrets.get("openai") == KEY
        assert "this session only" in dialog.status_text("openai")
        # not remembered unless asked
        assert not services.settings.session_only_secrets
        remember.setChecked(True)
        reloaded = SettingsStore(services.paths.settings_file).load()
        assert reloaded.session_only_secrets is True
        assert _files_containing(app_home, KEY) == []
    finally:
        services.ledger.close()
        services.history.close()


def test_test_connection_uses_the_stored_key_against_the_loopback_server(
    qtbot: Any, qloop: Any, services: Services
) -> None:
    with OpenAIServer(require_key=KEY) as server:
        services.settings.endpoints.append(server.endpoint("Loopback", needs_key=True))
        dialog = _dialog(qtbot, services)
        assert "endpoint:Loopback" in dialog.secret_names()

        async def scenario() -> None:
            dialog.key_input("endpoint:Loopback").setText("sk-wrong-key-000000000000000000")
            task = dialog.test_connection("endpoint:Loopback")
            assert task is not None
            await asyncio.wait([task], timeout=20)
            wrong = dialog.result_text("endpoint:Loopback")
            assert wrong and "Connected" not in wrong
            assert "sk-wrong-key-000000000000000000" not in wrong  # redacted
            dialog.key_input("endpoint:Loopback").setText(KEY)
            task = dialog.test_connection("endpoint:Loopback")
            assert task is not None
            await asyncio.wait([task], timeout=20)

        qloop.run_until_complete(asyncio.wait_for(scenario(), 30))
        assert "Connected to Loopback" in dialog.result_text("endpoint:Loopback")
        assert server.requests[-1].authorization == f"Bearer {KEY}"
        assert services.secrets.get("endpoint:Loopback") == KEY
        qloop.run_until_complete(asyncio.wait_for(services.registry.aclose(), 10))


def test_testing_without_a_key_says_so_even_without_a_keyring(qtbot: Any, app_home: Path) -> None:
    services = Services.create(secrets=SecretStore(backend=keyring.backends.fail.Keyring(), environ={}))
    try:
        dialog = _dialog(qtbot, services)
        assert dialog.test_connection("openai") is None
        text = dialog.result_text("openai")
        assert text.startswith("No API key is set for OpenAI") and "keyring" not in text.lower()
    finally:
        services.ledger.close()
        services.history.close()


def test_every_row_button_is_whole_at_the_dialogs_smallest_size(qtbot: Any, services: Services) -> None:
    """Seen in a real window: the rows were wider than the dialog, which cut Test to "Tes"."""
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QApplication, QPushButton, QScrollArea

    services.settings.endpoints.append(services.settings.endpoints[0].model_copy(
        update={"name": "A rather long endpoint name for a server", "base_url": "http://127.0.0.1:9/v1",
                "needs_key": True, "enabled": True}))  # fmt: skip
    dialog = _dialog(qtbot, services)
    dialog.resize(dialog.minimumSize())
    for _ in range(3):
        QApplication.processEvents()
    area = dialog.findChild(QScrollArea)
    assert area is not None
    viewport = area.viewport()
    buttons = [b for b in area.widget().findChildren(QPushButton) if b.isVisibleTo(dialog)]
    assert {b.text() for b in buttons} >= {"Save", "Remove", "Test"}
    for button in buttons:
        spot = QRect(button.mapTo(viewport, button.rect().topLeft()), button.size())
        assert viewport.rect().contains(spot), (button.text(), spot, viewport.width())
        assert button.width() >= button.minimumSizeHint().width()
