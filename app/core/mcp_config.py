"""MCP servers as settings: how to start or reach each one, and where its secrets live.

A server runs over ``stdio`` (``command``, ``args``, ``env``) or streamable ``http`` (``url``,
``headers``). Secret values are never written in the settings file: an env or header value
holds a keyring reference, ``keyring:NAME`` (alone, or after a prefix such as
``Bearer keyring:NAME``), resolved when the server starts from the keyring entry ``mcp:NAME``
(stored with ``python -m app keys set mcp:NAME``). A literal value that looks like a key is
refused when the settings load, with a message saying exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, Protocol

from app.core.errors import ConfigError, redact, register_secret
from app.core.model_fields import Record, spec
from app.core.urls import is_secret_param, url_secrets

KEYRING_PREFIX = "keyring:"
SECRET_ENTRY_PREFIX = "mcp:"
"""Keyring entries of MCP secrets are ``mcp:NAME`` (apart from providers' and endpoints')."""
_REF = re.compile(r"keyring:([A-Za-z0-9_.\-]+)$")
_NAME = re.compile(r"[A-Za-z0-9_\-]{1,48}$")

McpTransport = Literal["stdio", "http"]


class SecretLookup(Protocol):
    """What resolving needs of :class:`app.core.secrets.SecretStore`."""

    def get(self, name: str) -> str | None:
        """The stored value for ``name``, or None."""


def secret_ref(value: str) -> str | None:
    """The keyring name a value refers to (``keyring:NAME``, possibly after a prefix), or None."""
    match = _REF.search(value.strip())
    return match.group(1) if match else None


def looks_like_secret(name: str, value: str) -> bool:
    """True when ``value`` (of the variable or header ``name``) looks like a key or token:
    the name says so (``*_KEY``, ``*_TOKEN``, ``Authorization``, ...) or the value has a key's
    shape (``sk-...``, ``Bearer ...``, ``api_key=...``)."""
    text = value.strip()
    if not text or secret_ref(text) is not None:
        return False
    return is_secret_param(name) or redact(text) != text or bool(url_secrets(text))


def _check_values(values: Mapping[str, str], what: str) -> dict[str, str]:
    for name, value in values.items():
        if looks_like_secret(name, value):
            register_secret(value.strip())  # in case a caller's message quotes the input
            ref = re.sub(r"[^A-Za-z0-9_]", "_", name.strip()).upper() or "SECRET"
            raise ValueError(
                f"{what} {name!r} holds a secret written in plain text; secrets are never stored in the "
                f"settings file. Store it with `python -m app keys set {SECRET_ENTRY_PREFIX}{ref}` and write "
                f"'{KEYRING_PREFIX}{ref}' as its value instead"
            )
    return dict(values)


def _server_name(value: str) -> str:
    if not _NAME.match(value.strip()):
        raise ValueError(f"the MCP server name {value!r} must be 1-48 letters, digits, '_' or '-'")
    return value.strip()


class McpServerConfig(Record):
    """One MCP server in the settings (``mcp_servers``)."""

    name: str = spec(check=_server_name)
    """Letters, digits, ``_`` and ``-`` (it may prefix tool names: ``server__tool``)."""
    transport: McpTransport = "stdio"
    command: str = ""
    args: list[str] = spec(default_factory=list)
    env: dict[str, str] = spec(default_factory=dict, check=lambda v: _check_values(v, "the environment variable"))
    url: str = ""
    headers: dict[str, str] = spec(default_factory=dict, check=lambda v: _check_values(v, "the header"))
    trusted: bool = False
    """Calls run without asking for approval."""
    timeout_s: float = spec(default=30.0, gt=0, le=3600)
    """Longest wait for each call."""
    start_timeout_s: float = spec(default=60.0, gt=0, le=3600)
    """Longest wait for the server to start and list its tools (``npx`` may download first)."""
    enabled: bool = True

    def _check_record(self) -> None:
        if self.transport == "stdio" and not self.command.strip():
            raise ValueError(f"the MCP server {self.name!r} runs over stdio and needs a 'command'")
        if self.transport == "http":
            if not self.url.strip().lower().startswith(("http://", "https://")):
                raise ValueError(f"the MCP server {self.name!r} needs an http(s) 'url'")
            if url_secrets(self.url):
                raise ValueError(f"the URL of the MCP server {self.name!r} holds a secret; put it in a header "
                                 f"as '{KEYRING_PREFIX}NAME' (stored with `python -m app keys set "
                                 f"{SECRET_ENTRY_PREFIX}NAME`) instead")  # fmt: skip

    def resolved(self, secrets: SecretLookup) -> tuple[dict[str, str], dict[str, str]]:
        """The env and the headers with each ``keyring:NAME`` replaced by its stored value.
        Raises :class:`ConfigError` naming the missing entry (never a value)."""
        return _resolve(self.env, secrets, self.name), _resolve(self.headers, secrets, self.name)


def _resolve(values: Mapping[str, str], secrets: SecretLookup, server: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        ref = secret_ref(value)
        if ref is None:
            out[key] = value
            continue
        entry = SECRET_ENTRY_PREFIX + ref
        secret = secrets.get(entry)
        if not secret:
            raise ConfigError(f"The MCP server '{server}' needs the secret '{entry}' for {key}, and the keyring "
                              "has none.", hint=f"Store it with: python -m app keys set {entry}")  # fmt: skip
        out[key] = value.strip()[: -len(KEYRING_PREFIX + ref)] + secret
    return out
