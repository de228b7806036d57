"""Parts of the settings dialog (app/ui/widgets/settings_tabs.py): the Appearance tab, the
notes about OPENAI_BASE_URL and a key in a URL, the endpoint to test as edited with the right
key, and the Retries / Models / Prices tabs built from the settings."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtWidgets import QWidget

from app.core.errors import AppError
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import LocalModelSettings, PriceOverride, RetryPolicy, Settings, UiSettings
from app.ui.widgets.settings_tabs import (
    AppearanceTab,
    SettingsTabs,
    endpoint_to_test,
    env_override_note,
    url_key_note,
)

OPENAI = {"name": "OpenAI", "kind": "openai", "base_url": "https://api.openai.com/v1", "needs_key": True}


def test_the_appearance_tab_shows_and_returns_the_ui_settings(qtbot: Any) -> None:
    tab = AppearanceTab(UiSettings(theme="dark", font_size=12, enter_sends=True))
    qtbot.addWidget(tab)
    assert (tab.theme.currentData(), tab.font_size.value(), tab.enter_sends.isChecked()) == ("dark", 12, True)
    assert tab.values() == UiSettings(theme="dark", font_size=12, enter_sends=True)
    tab.font_size.setValue(5)  # the lowest value reads "system size"
    assert tab.font_size.text() == "system size" and tab.values().font_size is None
    system = AppearanceTab(UiSettings())
    qtbot.addWidget(system)
    assert system.values() == UiSettings()


def test_the_base_url_note_speaks_only_for_the_built_in_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert env_override_note(OPENAI) == ""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:sk-inside0123456789@127.0.0.1:9/v1")
    note = env_override_note(OPENAI)
    assert "requests go to http://127.0.0.1:9/v1 instead" in note and "sk-inside" not in note
    assert env_override_note({**OPENAI, "name": "Other"}) == ""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://[broken")
    assert env_override_note(OPENAI).startswith("OPENAI_BASE_URL:")


def test_a_key_in_a_url_is_noted() -> None:
    assert url_key_note("http://127.0.0.1:9/v1") == ""
    assert "moved to the keyring" in url_key_note("https://host/v1?api_key=sk-0123456789abcdef")


def test_the_endpoint_to_test_takes_the_url_key_then_the_stored_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    secrets = SecretStore(backend=MemoryKeyring(), environ={})
    data = {"name": "Mine", "base_url": "http://u:sk-typed0123456789@127.0.0.1:9/v1", "needs_key": True}
    ep, key = endpoint_to_test(data, [], secrets)
    assert (ep.base_url, key) == ("http://127.0.0.1:9/v1", "sk-typed0123456789")
    secrets.set("endpoint:Old", "sk-stored0123456789")
    ep, key = endpoint_to_test({**data, "base_url": "http://127.0.0.1:9/v1"}, ["endpoint:Old"], secrets)
    assert key == "sk-stored0123456789"  # renamed in the dialog: the key under its old name
    with pytest.raises(AppError, match="No API key is set for Mine") as info:
        endpoint_to_test({**data, "base_url": "http://127.0.0.1:9/v1"}, [], secrets)
    assert "untick 'Needs an API key'" in info.value.hint and "no keyring" not in info.value.hint
    ep, key = endpoint_to_test({**data, "base_url": "http://127.0.0.1:9/v1", "needs_key": False}, [], secrets)
    assert key is None


def test_the_built_in_endpoint_is_tested_where_openai_base_url_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    secrets = SecretStore(backend=MemoryKeyring(), environ={})
    secrets.set("openai", "sk-openai0123456789")
    ep, key = endpoint_to_test(OPENAI, [], secrets)
    assert ep.base_url == "http://127.0.0.1:9/v1" and key == "sk-openai0123456789"


class Host(QWidget, SettingsTabs):
    """The dialog's side of the mixin: a widget that holds the tabs."""


def test_the_tabs_are_built_from_the_settings(qtbot: Any) -> None:
    host = Host()
    qtbot.addWidget(host)
    retry = RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=20, jitter=0.25, respect_retry_after=False)
    tabs = [host._build_retry_tab(retry)]  # kept: the tab owns its widgets
    assert (host._retry_attempts.value(), host._retry_base.value(), host._retry_max.value()) == (4, 0.5, 20.0)
    assert host._retry_jitter.value() == 0.25 and not host._retry_after.isChecked()
    settings = Settings(default_model="mock:echo", recent_local_models=["local:/m/tiny"],
                        local=LocalModelSettings(device="cpu", dtype="int8", threads=3))  # fmt: skip
    tabs.append(host._build_models_tab(settings))
    items = [host._default_model.itemData(i) for i in range(host._default_model.count())]
    assert items[0] == "" and "local:/m/tiny" in items and items.count("mock:echo") == 1
    assert host._default_model.currentData() == "mock:echo"
    assert (host._device.currentText(), host._dtype.currentText(), host._threads.value()) == ("cpu", "int8", 3)
    tabs.append(host._build_prices_tab({"gpt-4o": PriceOverride(input="2.5", output="10")}))
    assert host._prices.rowCount() == 1 and host._prices.item(0, 0).text() == "gpt-4o"
    assert host._prices.item(0, 2).text() == ""  # no cached price
    assert host.add_price_row("m", "1", "0.5", "2") == 1 and host._prices.item(1, 3).text() == "2"
