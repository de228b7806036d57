"""``keys``: store, delete and list API keys in the OS keyring (never in a file, never argv)."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import TYPE_CHECKING

from app.cli.common import EXIT_OK, mask_secret, read_stdin_text, run_with_services, subcommand
from app.core.errors import (
    ConfigError,
    InvalidParams,
    NoKeyringError,
    SecretsError,
    register_secret,
)
from app.core.mcp_config import KEYRING_PREFIX, SECRET_ENTRY_PREFIX, secret_ref
from app.core.secrets import ENV_FALLBACK, ENV_KEY_PREFIX

if TYPE_CHECKING:
    from app.core.services import Services
    from app.core.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``keys`` subcommand."""
    p = subcommand(
        sub, "keys", "manage API keys",
        "Manage API keys in the OS keyring. 'set' reads the key from stdin "
        "(or asks for it, hidden, in a terminal) - never pass a key as an argument.",
        run_keys,
    )
    p.add_argument("action", choices=("set", "delete", "list"))
    p.add_argument(
        "name",
        nargs="?",
        metavar="PROVIDER_OR_ENDPOINT",
        help="openai, an endpoint name, endpoint:NAME, mcp:NAME or env:VAR",
    )


def secret_name_for(settings: Settings, name: str) -> str:
    """``openai`` for OpenAI; ``endpoint:<name>`` for a named endpoint (settings or explicit);
    ``mcp:<name>`` for an MCP server's secret (referred to as ``keyring:<name>``); ``env:<VAR>``
    for a grid file's ``apiKeyEnvar: VAR`` when that variable is not set."""
    text = name.strip()
    if not text:
        raise InvalidParams(
            "No provider or endpoint given.", hint="Name one: openai, or an endpoint name."
        )
    if text.lower() == "openai":
        return "openai"
    if text.lower().startswith(SECRET_ENTRY_PREFIX) and secret_ref(KEYRING_PREFIX + text[len(SECRET_ENTRY_PREFIX):]):
        return SECRET_ENTRY_PREFIX + text[len(SECRET_ENTRY_PREFIX) :]  # an MCP server's secret (keyring:NAME)
    if text.lower().startswith(ENV_KEY_PREFIX) and re.fullmatch(r"[A-Za-z_]\w*", text[len(ENV_KEY_PREFIX):], re.A):
        return ENV_KEY_PREFIX + text[len(ENV_KEY_PREFIX) :]  # a grid file's apiKeyEnvar: NAME
    if text.lower().startswith("endpoint:") and text[len("endpoint:") :].strip():
        ep = settings.endpoint(text[len("endpoint:") :].strip())
        return ep.secret_name if ep is not None else "endpoint:" + text[len("endpoint:") :].strip()
    ep = settings.endpoint(text)
    if ep is not None:
        return ep.secret_name
    known = ", ".join(["openai"] + [e.name for e in settings.endpoints if e.kind != "openai"])
    raise ConfigError(
        f"'{text}' is neither 'openai' nor an endpoint in the settings.",
        hint=f"Use one of: {known} (or endpoint:NAME, mcp:NAME for an MCP server's secret, "
        "env:VAR for a grid file's apiKeyEnvar).",
    )


def read_key(label: str) -> str:
    """The key from a hidden prompt (terminal) or from stdin (pipe)."""
    if sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass(f"API key for {label} (input hidden): ")
    else:
        value = read_stdin_text().strip()
    value = value.strip()
    if not value:
        raise InvalidParams(
            "No key was given.", hint='Pipe it in: printf %s "$KEY" | python -m app keys set NAME'
        )
    if any(ch.isspace() for ch in value):
        raise InvalidParams(
            "The key contains spaces or line breaks.", hint="Give the key alone, on one line."
        )
    register_secret(value)
    return value


def run_keys(args: argparse.Namespace) -> int:
    """Run ``keys``; return the exit code (errors propagate to the CLI's handler)."""
    if args.action in ("set", "delete") and not args.name:
        raise InvalidParams(
            f"'keys {args.action}' needs a name.",
            hint=f"e.g. python -m app keys {args.action} openai",
        )

    async def body(services: Services) -> list[str]:
        store = services.secrets
        if args.action == "list":
            return _list_lines(services)
        name = secret_name_for(services.settings, args.name)
        if store.session_only:
            raise SecretsError(
                "Keys are set to 'session only' in the settings, so a key given here would be "
                "forgotten when this command ends.",
                hint="Turn off 'session only' in the settings, or set OPENAI_API_KEY for one run.",
            )
        if args.action == "set":
            value = read_key(name)
            store.set(name, value)
            return [
                f"Saved the key for {name} ({mask_secret(value)}) in the {store.source(name) or 'keyring'}."
            ]
        if store.get(name) is None:  # raises when there is no keyring at all
            return [f"No key stored for {name}."]
        if store.source(name) == "environment":  # nothing stored; the variable stays in use
            var = ENV_FALLBACK.get(name, "the environment")
            return [
                f"No key stored for {name}. The key in {var} comes from the environment and "
                f"is still used; unset {var} to stop using it."
            ]
        store.delete(name)
        return [f"Deleted the key for {name}."]

    lines = run_with_services(body)
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _list_lines(services: Services) -> list[str]:
    store = services.secrets
    note = ""
    try:
        names = set(store.names())
    except NoKeyringError as exc:
        names, note = set(), f"note: {exc.user_message()}"
    if store.source("openai") == "environment":
        names.add("openai")
    rows: list[str] = []
    for name in sorted(names):
        source = store.source(name)
        value = store.get(name) if source != "none" else None
        if not value:
            continue
        rows.append(f"  {name:<24} {mask_secret(value):<10} ({source})")
    if not rows:
        if note:
            raise NoKeyringError(f"No secure keyring is available (found: {store.backend_name()}).")
        return ["No keys stored. Add one with: python -m app keys set openai"]
    return ["Keys:", *rows] + ([note] if note else [])
