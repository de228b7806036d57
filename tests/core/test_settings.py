"""Settings: defaults, roundtrip, atomic writes, corrupt files moved aside."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app.core.settings import EndpointConfig, PriceOverride, RetryPolicy, Settings, SettingsStore


def test_defaults_when_missing(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    s = store.load()
    assert s == Settings()
    assert s.endpoint("openai") is not None and s.endpoint("OPENAI").needs_key  # type: ignore[union-attr]
    assert {e.kind for e in s.endpoints} >= {"openai", "ollama", "lmstudio", "llamacpp", "vllm"}
    assert s.endpoint("nope") is None
    assert store.warnings == []
    assert not (tmp_path / "settings.json").exists()  # loading never writes


def test_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "settings.json"
    store = SettingsStore(path)
    s = Settings(default_model="mock:echo", session_only_secrets=True)
    s.endpoints.append(EndpointConfig(name="Mine", base_url="http://127.0.0.1:9999/v1/", needs_key=True))
    s.price_overrides["gpt-4o"] = PriceOverride(input="1.00", output="2.00")
    s.retry.max_attempts = 5
    store.save(s)
    loaded = SettingsStore(path).load()
    assert loaded == s
    mine = loaded.endpoint("mine")
    assert mine is not None and mine.base_url == "http://127.0.0.1:9999/v1"
    assert mine.secret_name == "endpoint:Mine"
    assert "key" not in path.read_text().lower().replace("needs_key", "")  # no secrets in the file


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    for i in range(3):
        store.save(Settings(default_model=f"mock:echo{i}"))
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
    assert json.loads((tmp_path / "settings.json").read_text())["default_model"] == "mock:echo2"


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    store.save(Settings(default_model="mock:echo"))

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("app.core.settings.os.replace", boom)
    with pytest.raises(OSError):
        store.save(Settings(default_model="mock:lorem"))
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
    assert SettingsStore(tmp_path / "settings.json").load().default_model == "mock:echo"


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", "null", "[" * 100_000, "[" * 5_000 + "]" * 5_000,
                                     '{"retry": ' + "[" * 5_000 + "]" * 5_000 + "}"])  # fmt: skip
def test_corrupt_file_moved_aside_with_warning(tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture) -> None:
    """Nested too deeply for json (RecursionError) is corrupt like any other; the warning is
    kept once in ``warnings`` (shown by the CLI / window) and logged below WARNING, so that
    logging's stderr fallback does not print it a second time."""
    path = tmp_path / "settings.json"
    path.write_text(content)
    store = SettingsStore(path)
    with caplog.at_level(logging.INFO, logger="app.core.settings"):
        s = store.load()
    assert s == Settings()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("settings.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_text() == content
    assert not path.exists()
    assert len(store.warnings) == 1 and str(aside[0]) in store.warnings[0]
    assert any("moved" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unknown_keys_ignored_and_old_version_migrated(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"default_model": "mock:echo", "future_option": 1}))
    s = SettingsStore(path).load()
    assert s.default_model == "mock:echo" and s.version == 1


def test_invalid_values_fall_back_alone_and_the_rest_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One out-of-range value or one bad endpoint must not wipe the user's other settings."""
    path = tmp_path / "settings.json"
    good_ep = {"name": "box", "base_url": "http://10.0.0.5:8000/v1", "kind": "vllm"}
    content = json.dumps(
        {
            "version": 1,
            "default_model": "openai:gpt-4o",
            "retry": {"max_attempts": 99, "base_delay_s": 2.0},
            "endpoints": [{"name": "broken", "base_url": "ftp://nope"}, good_ep, {"base_url": "http://x/v1"}],
            "price_overrides": {"openai:my-ft": {"input": "1.5", "output": "3"}},
        }
    )
    path.write_text(content)
    store = SettingsStore(path)
    with caplog.at_level(logging.INFO, logger="app.core.settings"):
        s = store.load()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # shown once, from ``warnings``
    assert s.default_model == "openai:gpt-4o"
    assert (s.retry.max_attempts, s.retry.base_delay_s) == (RetryPolicy().max_attempts, 2.0)
    assert [e.name for e in s.endpoints] == ["box"]
    assert s.price_overrides["openai:my-ft"].input == "1.5"
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("settings.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_text() == content  # the original, for reference
    assert len(store.warnings) == 1 and "retry.max_attempts" in store.warnings[0] and str(aside[0]) in store.warnings[0]
    again = SettingsStore(path)  # the repaired file was written back: the next start is clean
    assert again.load() == s and again.warnings == []


def test_openai_base_url_is_honoured_for_the_built_in_endpoint_and_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:4000/v1/")
    s = Settings()
    assert s.resolve_endpoint(None).base_url == "http://127.0.0.1:4000/v1"  # as the SDK does
    assert s.resolve_endpoint("OpenAI").base_url == "http://127.0.0.1:4000/v1"
    assert s.resolve_endpoint("Ollama").base_url == "http://localhost:11434/v1"  # only the built-in one
    path = tmp_path / "settings.json"
    SettingsStore(path).save(s)
    assert "4000" not in path.read_text()
    monkeypatch.setenv("OPENAI_BASE_URL", "not a url")  # ignored, never a crash
    assert s.resolve_endpoint(None).base_url == "https://api.openai.com/v1"


def test_a_key_inside_a_url_is_split_off() -> None:
    from app.core.settings import split_url_key

    assert split_url_key("http://user:sk-abc123456789@host:8080/v1") == ("http://host:8080/v1", "sk-abc123456789")
    assert split_url_key("https://host/v1?api_key=sk-1234&region=eu") == ("https://host/v1?region=eu", "sk-1234")
    assert split_url_key("https://TOKEN123456789@host/v1") == ("https://host/v1", "TOKEN123456789")
    assert split_url_key("http://localhost:11434/v1") == ("http://localhost:11434/v1", None)


def test_window_settings_have_defaults_and_bounds() -> None:
    s = Settings.model_validate({"ui": {"theme": "dark", "font_size": 12, "enter_sends": True}})
    assert (s.ui.theme, s.ui.font_size, s.ui.enter_sends) == ("dark", 12, True)
    assert Settings().ui.theme == "system" and Settings().ui.font_size is None
    with pytest.raises(ValueError):
        Settings.model_validate({"ui": {"font_size": 99}})


@pytest.mark.parametrize("depth", [150, 900])
def test_a_value_nested_too_deeply_to_save_is_dropped_alone(tmp_path: Path, depth: int) -> None:
    """json reads ~990 levels; a value nested deeper than 100 inside a free-form field (preset
    parameters) is dropped like any invalid value, so the settings can still be saved."""
    path = tmp_path / "settings.json"
    deep = "[" * depth + "]" * depth
    content = ('{"version": 1, "default_model": "mock:echo", "presets": [{"name": "p", "params": '
               '{"temperature": 0.5, "x": ' + deep + '}}]}')  # fmt: skip
    path.write_text(content)
    store = SettingsStore(path)
    s = store.load()
    assert s.default_model == "mock:echo" and s.presets[0].params == {"temperature": 0.5}
    assert len(store.warnings) == 1 and "presets.0.params.x" in store.warnings[0]
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("settings.json.corrupt-")]
    assert aside.read_text() == content
    assert SettingsStore(path).load() == s  # written back
