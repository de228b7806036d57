"""Settings dialog: endpoint validation, retry policy / prices / defaults saved and reloaded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt

from app.core.events import UsageReport
from app.core.services import Services
from app.core.settings import SettingsStore
from app.core.types import ModelRef
from app.ui.backend_manager import BackendManager
from app.ui.widgets.settings_dialog import SettingsDialog


def _dialog(qtbot: Any, services: Services) -> SettingsDialog:
    dialog = SettingsDialog(BackendManager(services, model_id="mock:echo"))
    qtbot.addWidget(dialog)
    dialog.open()
    return dialog


def _reload(services: Services) -> Any:
    return SettingsStore(services.paths.settings_file).load()


def test_adding_an_endpoint_validates_the_url_inline(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    before = len(services.settings.endpoints)
    qtbot.mouseClick(dialog._ep_add, Qt.MouseButton.LeftButton)
    dialog._ep_name.clear()
    qtbot.keyClicks(dialog._ep_name, "Box under the desk")
    dialog._ep_url.clear()
    qtbot.keyClicks(dialog._ep_url, "localhost:9000/v1")
    assert "http://" in dialog.endpoint_error_text()
    # OK refuses, says what to fix, and nothing is saved
    dialog._ok.click()
    assert dialog.isVisible()
    assert "Box under the desk" in dialog.error_text()
    assert not services.paths.settings_file.exists()
    # a duplicate name is refused too
    dialog._ep_url.clear()
    qtbot.keyClicks(dialog._ep_url, "http://127.0.0.1:9000/v1/")
    assert dialog.endpoint_error_text() == ""
    dialog._ep_name.clear()
    qtbot.keyClicks(dialog._ep_name, "ollama")
    assert "already called" in dialog.endpoint_error_text()
    dialog._ep_name.clear()
    qtbot.keyClicks(dialog._ep_name, "Box under the desk")
    saved: list[bool] = []
    dialog.settings_changed.connect(lambda: saved.append(True))
    dialog._ok.click()
    assert saved == [True] and not dialog.isVisible()
    reloaded = _reload(services)
    assert len(reloaded.endpoints) == before + 1
    ep = reloaded.endpoint("Box under the desk")
    assert ep is not None and ep.base_url == "http://127.0.0.1:9000/v1"
    # the live settings object (shared with the providers) was updated in place
    assert services.settings.endpoint("Box under the desk") is not None


def test_retry_policy_is_saved_and_reloaded(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    dialog._retry_attempts.setValue(5)
    dialog._retry_base.setValue(1.5)
    dialog._retry_max.setValue(20)
    dialog._retry_after.setChecked(False)
    dialog._ok.click()
    retry = _reload(services).retry
    assert (retry.max_attempts, retry.base_delay_s, retry.max_delay_s, retry.respect_retry_after) == (
        5, 1.5, 20.0, False,
    )
    # a new dialog shows the saved values
    again = _dialog(qtbot, services)
    assert again._retry_attempts.value() == 5 and not again._retry_after.isChecked()


def test_retry_delays_must_make_sense(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    dialog._retry_base.setValue(30)
    dialog._retry_max.setValue(2)
    dialog._ok.click()
    assert dialog.isVisible() and "longest delay" in dialog.error_text().lower()
    assert dialog._tabs.currentIndex() == 1


def test_price_overrides_validate_and_apply_to_the_engine(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    row = dialog.add_price_row("openai:my-finetune", "abc", "", "4")
    dialog._ok.click()
    assert dialog.isVisible() and "not a price" in dialog.error_text()
    cell = dialog._prices.item(row, 1)
    assert cell is not None
    cell.setText("2.50")
    dialog._ok.click()
    assert not dialog.isVisible()
    assert _reload(services).price_overrides["openai:my-finetune"].input == "2.50"
    cost = services.engine.prices.cost(ModelRef("openai", "my-finetune"), UsageReport(1_000_000, 1_000_000))
    assert cost == Decimal("6.50")


def test_default_model_and_local_device(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    dialog._default_model.setEditText("nonsense")
    dialog._ok.click()
    assert dialog.isVisible() and "not a model id" in dialog.error_text()
    dialog._default_model.setEditText("mock:echo")
    dialog._device.setCurrentText("cpu")
    dialog._threads.setValue(1)
    dialog._ok.click()
    reloaded = _reload(services)
    assert reloaded.default_model == "mock:echo"
    assert (reloaded.local.device, reloaded.local.threads) == ("cpu", 1)
    assert services.default_model() == "mock:echo"


def test_cancel_changes_nothing(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    dialog._retry_attempts.setValue(9)
    dialog.reject()
    assert services.settings.retry.max_attempts == 3
    assert not services.paths.settings_file.exists()


def test_renaming_an_endpoint_moves_its_key(qtbot: Any, services: Services) -> None:
    services.secrets.set("endpoint:Ollama", "ollama-key-123456")
    dialog = _dialog(qtbot, services)
    row = next(i for i, e in enumerate(dialog._endpoints) if e["name"] == "Ollama")
    dialog._ep_list.setCurrentRow(row)
    dialog._ep_name.clear()
    qtbot.keyClicks(dialog._ep_name, "Ollama on the desk")
    dialog._ok.click()
    assert not dialog.isVisible(), dialog.error_text()
    assert services.secrets.get("endpoint:Ollama on the desk") == "ollama-key-123456"
    assert services.secrets.get("endpoint:Ollama") is None
    assert b"ollama-key-123456" not in services.paths.settings_file.read_bytes()


def _edit_new_endpoint(qtbot: Any, dialog: SettingsDialog, name: str, url: str) -> None:
    qtbot.mouseClick(dialog._ep_add, Qt.MouseButton.LeftButton)
    dialog._ep_name.clear()
    qtbot.keyClicks(dialog._ep_name, name)
    dialog._ep_url.clear()
    qtbot.keyClicks(dialog._ep_url, url)


def test_the_test_button_checks_the_endpoint_as_edited(qtbot: Any, qloop: Any, services: Services) -> None:
    import asyncio

    from tests.support.openai_server import OpenAIServer

    dialog = _dialog(qtbot, services)
    _edit_new_endpoint(qtbot, dialog, "Dead box", "http://127.0.0.1:9/v1")
    task = dialog.test_endpoint()
    assert task is not None
    qloop.run_until_complete(asyncio.wait_for(task, 10))
    assert dialog.test_result_text().startswith("unreachable: connection refused")
    with OpenAIServer(models=["m1"]) as server:
        dialog._ep_url.clear()
        qtbot.keyClicks(dialog._ep_url, server.base_url)  # not saved: tested as typed
        task = dialog.test_endpoint()
        assert task is not None
        qloop.run_until_complete(asyncio.wait_for(task, 10))
    assert dialog.test_result_text().startswith("\u2713 Connected to Dead box") and "1 model" in dialog.test_result_text()
    assert not services.paths.settings_file.exists()


def test_testing_an_endpoint_without_its_key_says_so_not_no_keyring(qtbot: Any, services: Services) -> None:
    import keyring.backends.fail

    from app.core.secrets import SecretStore

    services.secrets = SecretStore(backend=keyring.backends.fail.Keyring(), environ={})  # no keyring at all
    dialog = _dialog(qtbot, services)
    dialog._ep_list.setCurrentRow(0)  # the built-in OpenAI endpoint, which needs a key
    assert dialog.test_endpoint() is None
    text = dialog.test_result_text()
    assert text.startswith("No API key is set for OpenAI") and "API keys" in text


def test_a_key_inside_an_endpoint_url_goes_to_the_keyring_not_the_settings_file(
    qtbot: Any, services: Services
) -> None:
    dialog = _dialog(qtbot, services)
    _edit_new_endpoint(qtbot, dialog, "Proxy", "https://me:sk-inurl-0123456789@proxy.example/v1")
    assert "moved to the keyring" in dialog._ep_note.text()
    dialog._ok.click()
    assert not dialog.isVisible()
    text = services.paths.settings_file.read_text()
    assert "sk-inurl-0123456789" not in text and "me:" not in text
    ep = _reload(services).endpoint("Proxy")
    assert ep is not None and ep.base_url == "https://proxy.example/v1" and ep.needs_key
    assert services.secrets.get("endpoint:Proxy") == "sk-inurl-0123456789"
    dialog = _dialog(qtbot, services)
    _edit_new_endpoint(qtbot, dialog, "Query", "http://127.0.0.1:9/v1?api_key=sk-query-0123456789&tier=free")
    dialog._ok.click()
    assert "sk-query" not in services.paths.settings_file.read_text()
    ep = _reload(services).endpoint("Query")
    assert ep is not None and ep.base_url == "http://127.0.0.1:9/v1?tier=free"
    assert services.secrets.get("endpoint:Query") == "sk-query-0123456789"


def test_appearance_is_saved(qtbot: Any, services: Services) -> None:
    dialog = _dialog(qtbot, services)
    tab = dialog._appearance
    tab.theme.setCurrentIndex(tab.theme.findData("dark"))
    tab.font_size.setValue(13)
    tab.enter_sends.setChecked(True)
    dialog._ok.click()
    ui = _reload(services).ui
    assert (ui.theme, ui.font_size, ui.enter_sends) == ("dark", 13, True)
    assert services.settings.ui == ui
