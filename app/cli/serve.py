"""``serve``: the app's models, LoRA adapters and keys as a local OpenAI-compatible API
(headless; the window's Server panel runs the same :class:`app.serve.server.LocalServer`).

Prints the address, the models offered and where the key is; a line per request on stderr
(never the key). Ctrl+C stops it cleanly and exits 0 (stopping is the normal way to end a
server); a refused setup (a non-loopback address without a key, a busy port) exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING

from app.cli.ask import parse_lora
from app.cli.common import EXIT_OK, run_with_services
from app.core.errors import ConfigError, InvalidParams, NoKeyringError
from app.core.figures import speed_parts
from app.core.types import AdapterSpec

if TYPE_CHECKING:
    from app.core.services import Services
    from app.serve.routes import RequestFigures

NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``serve`` subcommand."""
    p = sub.add_parser(
        "serve", help="a local OpenAI-compatible server",
        description="Serve the app's models (in-process, mock, LoRA adapters; remote endpoints with --proxy) as "
        "an OpenAI-compatible API: GET /v1/models, POST /v1/chat/completions, GET /health. A key is required; "
        "it is made on first start and kept in the keyring (--show-key prints it). Ctrl+C stops it.",
    )  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    p.add_argument("--lora", metavar="NAME=PATH[:SCALE]", action="append", default=[],
                   help="offer a LoRA adapter as BASE+NAME on every in-process model, e.g. local:smollm2+NAME")  # fmt: skip
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--api-key-env", metavar="VAR", help="take the key from this environment variable")
    auth.add_argument("--no-auth", action="store_true", help="no key (only when bound to a loopback address)")
    auth.add_argument("--show-key", action="store_true", help="print the server's key (made if missing) and exit")
    p.add_argument("--proxy", action="store_true",
                   help="also offer the configured endpoints' models, forwarded with the app's keyring keys")  # fmt: skip
    p.add_argument("--cors-origin", metavar="ORIGIN", action="append", default=[],
                   help="allow browser pages from ORIGIN (repeatable; default: no CORS)")  # fmt: skip
    p.set_defaults(func=run_serve)


def parse_named_lora(spec: str) -> tuple[str, AdapterSpec]:
    """``NAME=PATH[:SCALE]`` -> the name and the adapter (the folder must exist)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or set(name) - NAME_CHARS or not rest:
        raise InvalidParams(f"--lora '{spec}' is not NAME=PATH[:SCALE].",
                            hint="Write it as --lora allcaps=/path/to/adapter:0.8 (NAME: letters, digits, _ . -).")  # fmt: skip
    adapter = parse_lora(rest)
    if not os.path.exists(adapter.path):
        raise InvalidParams(f"--lora {name}: there is no adapter at '{adapter.path}'.",
                            hint="Give the folder that holds adapter_config.json.")  # fmt: skip
    return name, AdapterSpec(os.path.abspath(adapter.path), adapter.scale, name)


def _key_from_env(var: str) -> str:
    value = os.environ.get(var, "").strip()
    if not value:
        raise ConfigError(f"The environment variable {var} is not set (or empty).",
                          hint=f"Set it first, e.g. export {var}=... (8 or more characters).")  # fmt: skip
    return value


def _no_keyring() -> ConfigError:
    return ConfigError("No keyring to keep the server's key in.",
                       hint="Give the key in the environment: --api-key-env VAR, or serve 127.0.0.1 with --no-auth.")  # fmt: skip


def _has_key(services: Services) -> bool:
    try:
        from app.serve.server import KEY_NAME

        return services.secrets.get(KEY_NAME) is not None
    except Exception:  # no keyring: start() says so
        return True


def log_line(f: RequestFigures) -> str | None:
    """One stderr line per ended request: status, model, client, figures (never the key)."""
    if f.status == "running":
        return None
    parts = [str(f.http_status), f.model or "-", f.client]
    if f.tokens:
        parts.append(f"{f.tokens} tokens")
    parts.extend(speed_parts(f.ttft_s, f.tokens_per_s))
    if f.status != "finished":
        parts.append(f.status + (f": {f.error}" if f.error else ""))
    return " · ".join(parts)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C (exit 0), or print the key with ``--show-key``."""
    adapters = dict(parse_named_lora(s) for s in args.lora)
    api_key = _key_from_env(args.api_key_env) if args.api_key_env else None

    async def body(services: Services) -> int:
        from app.serve.server import LocalServer, server_key

        if args.show_key:
            try:
                sys.stdout.write(f"{server_key(services.secrets)}\n")
            except NoKeyringError:
                raise _no_keyring() from None
            return EXIT_OK

        def show(f: RequestFigures) -> None:
            line = log_line(f)
            if line is not None:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

        server = LocalServer(services, host=args.host, port=args.port, adapters=adapters, api_key=api_key,
                             no_auth=args.no_auth, proxy=args.proxy, cors_origins=tuple(args.cors_origin),
                             on_request=show)  # fmt: skip
        had_key = api_key is not None or args.no_auth or _has_key(services)
        try:
            await server.start()
        except NoKeyringError:
            raise _no_keyring() from None
        try:
            models = await server.models()
            out = sys.stdout
            out.write(f"Serving on {server.address}\n")
            if args.no_auth:
                out.write("Key: none (--no-auth; this machine only)\n")
            elif api_key is not None:
                out.write(f"Key: the value of ${args.api_key_env}\n")
            else:
                out.write("Key: in the keyring; print it with: python -m app serve --show-key\n")
                if not had_key and sys.stderr.isatty():  # first start: once, on the terminal only
                    sys.stderr.write(f"New key (shown once here): {server.key}\n")
            out.write(f"Models ({len(models)}): " + ", ".join(m.id for m in models) + "\n")
            out.write("Press Ctrl+C to stop.\n")
            out.flush()
            await asyncio.Event().wait()
        finally:
            await server.stop()
            sys.stderr.write("Server stopped.\n")
        return EXIT_OK

    try:
        return run_with_services(body)
    except KeyboardInterrupt:
        return EXIT_OK
