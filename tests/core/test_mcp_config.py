"""MCP server settings: transports checked, secrets only as keyring references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.keys import secret_name_for
from app.core.errors import ConfigError, redact
from app.core.mcp_config import McpServerConfig, looks_like_secret, secret_ref
from app.core.model_fields import ValidationError
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import Settings, SettingsStore


def test_stdio_and_http_servers_in_the_settings_round_trip(tmp_path: Path) -> None:
    servers = [
        {"name": "files", "command": "npx", "args": ["-y", "server-fs", "/tmp"], "env": {"GITHUB_TOKEN": "keyring:GH"}},
        {"name": "remote", "transport": "http", "url": "https://mcp.example.com/mcp", "trusted": True,
         "headers": {"Authorization": "Bearer keyring:REMOTE"}, "timeout_s": 5},
    ]  # fmt: skip
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 1, "mcp_servers": servers}), encoding="utf-8")
    settings = SettingsStore(path).load()
    files, remote = settings.mcp_servers
    assert (files.transport, files.command, files.args, files.trusted, files.timeout_s) == (
        "stdio", "npx", ["-y", "server-fs", "/tmp"], False, 30.0)  # fmt: skip
    assert (remote.transport, remote.trusted, remote.timeout_s, remote.enabled) == (
        "http",
        True,
        5.0,
        True,
    )
    SettingsStore(path).save(settings)
    assert SettingsStore(path).load().mcp_servers == settings.mcp_servers
    assert Settings().mcp_servers == []


@pytest.mark.parametrize(
    ("field", "key", "value"),
    [
        ("env", "OPENAI_API_KEY", "abc123def456"),
        ("env", "PLAIN", "sk-abcdefghijklmnop"),
        ("headers", "Authorization", "Bearer abcdefghijkl"),
        ("headers", "X-Api-Key", "0123456789"),
    ],
)
def test_a_secret_in_plain_text_is_refused_with_what_to_do(
    field: str, key: str, value: str
) -> None:
    with pytest.raises(ValidationError) as info:
        McpServerConfig(
            name="s", transport="http", url="http://127.0.0.1:1/mcp", **{field: {key: value}}
        )
    text = redact(str(info.value))
    assert "secrets are never stored in the settings file" in text
    assert "python -m app keys set mcp:" in text and "'keyring:" in text
    assert value not in text  # the value was registered for redaction


def test_plain_values_and_keyring_references_are_accepted() -> None:
    cfg = McpServerConfig(
        name="s", command="srv", env={"LOG_LEVEL": "debug", "API_TOKEN": "keyring:TOK"}
    )
    assert cfg.env["LOG_LEVEL"] == "debug"
    assert secret_ref("Bearer keyring:TOK") == "TOK" and secret_ref("plain") is None
    assert not looks_like_secret("HOME", "/home/me") and looks_like_secret("GH_TOKEN", "ghp_x")


def test_references_resolve_from_the_keyring_and_a_missing_one_says_how_to_add_it() -> None:
    store = SecretStore(MemoryKeyring())
    store.set("mcp:TOK", "t0ken-value")
    cfg = McpServerConfig(name="s", transport="http", url="http://127.0.0.1:1/mcp",
                          headers={"Authorization": "Bearer keyring:TOK", "Accept": "text/plain"})  # fmt: skip
    env, headers = cfg.resolved(store)
    assert env == {} and headers == {"Authorization": "Bearer t0ken-value", "Accept": "text/plain"}
    missing = cfg.model_copy(update={"headers": {"Authorization": "keyring:NOPE"}})
    with pytest.raises(ConfigError, match="python -m app keys set mcp:NOPE"):
        missing.resolved(store)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "s"}, "needs a 'command'"),
        ({"name": "s", "transport": "http", "url": "ftp://x"}, "needs an http"),
        (
            {"name": "s", "transport": "http", "url": "http://h/mcp?api_key=abcdefgh123"},
            "holds a secret",
        ),
        ({"name": "bad name", "command": "x"}, "letters, digits"),
        ({"name": "s", "command": "x", "timeout_s": 0}, "greater than 0"),
    ],
)
def test_bad_servers_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        McpServerConfig.model_validate(data)


def test_keys_cli_names_mcp_secrets() -> None:
    assert secret_name_for(Settings(), "mcp:GITHUB_TOKEN") == "mcp:GITHUB_TOKEN"
    with pytest.raises(ConfigError):
        secret_name_for(Settings(), "GITHUB_TOKEN")
