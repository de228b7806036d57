"""Shared helpers of the CLI commands: exit codes, error printing, model ids, masking."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from app.core.errors import (
    AppError,
    InvalidParams,
    NoKeyringError,
    ProviderError,
    SecretsError,
    StorageError,
    ToolError,
)
from app.core.registry import endpoint_provider_id, provider_ids
from app.core.types import ModelRef

if TYPE_CHECKING:
    from pathlib import Path

    from app.core.services import Services

T = TypeVar("T")

EXIT_OK = 0
EXIT_PROVIDER = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""The reader of stdout went away (``... | head``): 128 + SIGPIPE, as the shell reports it."""


MODEL_HELP = "provider:model (default: the settings' default model)"


def subcommand(
    sub: argparse._SubParsersAction, name: str, help: str, description: str,
    func: Callable[[argparse.Namespace], int], text: tuple[str, str] | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` that runs ``func``; ``text`` = (dest, what) adds a positional
    argument that takes the text or '-' for stdin, plus ``-m/--model``."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    if text is not None:
        dest, what = text
        p.add_argument(dest, metavar=dest.upper(), help=f"the {what}; '-' reads it from stdin")
        p.add_argument("-m", "--model", help=MODEL_HELP)
    return p


class OutputClosed(AppError):
    """stdout was closed by its reader (a broken pipe); raised to stop a generation."""


def silence_stdout() -> None:
    """Point stdout at the null device, so nothing more (not even the flush at exit) fails
    on a closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a real descriptor (tests)
        pass


def exit_code_for(exc: AppError) -> int:
    """1 for provider, secret-store, storage (a busy database) and tool failures, 2 for bad input
    (params, model ids, config, a model that is not there: a missing ``local:`` path)."""
    if isinstance(exc, ProviderError | SecretsError | StorageError | ToolError) and not exc.bad_input:
        return EXIT_PROVIDER
    return EXIT_BAD_INPUT


def print_error(exc: AppError, stream: TextIO | None = None) -> None:
    """Print the error's user message (never a traceback) on stderr."""
    out = stream or sys.stderr
    out.write(f"error: {exc.user_message()}\n")
    if isinstance(exc, NoKeyringError):  # 'session only' means nothing to a one-shot command
        out.write(
            "note: on the command line without a keyring, give the OpenAI key in the environment "
            "for the run (read, never stored): OPENAI_API_KEY=... python -m app ask ...\n"
        )
    out.flush()


def resolve_model_id(text: str, endpoint: str | None) -> ModelRef:
    """Parse ``provider:model``. With an endpoint, a bare server model name (which may itself
    contain a colon, like Ollama's ``llama3.2:1b``) means ``openai:<name>`` (the provider that
    serves endpoints)."""
    if endpoint:
        prefix, sep, _ = text.partition(":")
        if not sep or prefix.strip().lower() not in provider_ids():
            return ModelRef(endpoint_provider_id(), text.strip())
    ref = ModelRef.parse(text)
    if endpoint and not ref.caps.endpoints:
        raise InvalidParams(
            f"--endpoint/--base-url only apply to OpenAI-compatible models, not '{ref}'.",
            hint="Drop the endpoint option, or name the server's model (e.g. -m openai:llama3).",
        )
    return ref


def mask_secret(value: str) -> str:
    """Show only the last 4 characters (and a short known prefix): ``sk-…abcd``."""
    if not value:
        return "(empty)"
    tail = value[-4:] if len(value) > 8 else ""
    prefix = "sk-" if value.startswith("sk-") and len(value) > 8 else ""
    return f"{prefix}…{tail}" if tail else "…"


UTF8_HINT = "Give UTF-8 text: convert it first, e.g. iconv -f latin1 -t utf-8 FILE | python -m app ask -"


def ensure_utf8(text: str, what: str) -> str:
    """``text`` unchanged, or :class:`InvalidParams` naming the first byte that is not UTF-8.

    Python hands undecodable bytes of the command line (and of stdin under a C locale) over
    as lone surrogates (``surrogateescape``); they would fail later, deep in the provider."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        byte = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise InvalidParams(
            f"{what} is not valid UTF-8 text ({byte} at character {exc.start + 1}).", hint=UTF8_HINT
        ) from None
    return text


def read_stdin_text(stdin: TextIO | None = None) -> str:
    """All of stdin, decoded as UTF-8 (strictly, whatever the locale): bytes that are not UTF-8
    raise :class:`InvalidParams` saying where, never a UnicodeDecodeError."""
    stream = stdin or sys.stdin
    if stream is None:
        return ""
    raw = getattr(stream, "buffer", None)
    if raw is None:  # a text stream without bytes underneath (tests, embedding)
        return ensure_utf8(stream.read(), "Standard input")
    data = raw.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParams(
            f"Standard input is not valid UTF-8 text (byte 0x{data[exc.start]:02x} at byte offset {exc.start}).",
            hint=UTF8_HINT,
        ) from None


def read_text_arg(value: str, stdin: TextIO | None = None) -> str:
    """The argument itself, or all of stdin when it is ``-`` (UTF-8 either way)."""
    if value == "-":
        return read_stdin_text(stdin)
    return ensure_utf8(value, "The argument")


def output_path(value: str, option: str) -> Path:
    """The file an option names for writing (``~`` expanded); raises InvalidParams (exit 2)
    when its folder does not exist: a typo must not create folders (at the root even)."""
    from pathlib import Path

    path = Path(value).expanduser()
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise InvalidParams(f"Cannot write {option} {value}: {folder} {what}.",
                            hint="Create the folder first, or give a file in an existing folder.")  # fmt: skip
    return path


def check_arguments(args: object) -> None:
    """Every text argument is valid UTF-8 (else :class:`InvalidParams` naming the option)."""
    for name, value in vars(args).items():
        if name in ("func", "command"):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, str):
                label = f"The {name}" if name in ("prompt", "text") else f"--{name.replace('_', '-')}"
                ensure_utf8(item, label)


def accept_url_arguments(args: object) -> None:
    """``--base-url`` (and an ``--endpoint`` given as a URL) split once, here: the namespace
    keeps the clean URL, a key inside it stays in memory (see :mod:`app.core.url_keys`); a
    malformed URL raises :class:`ConfigError` (exit 2) before anything is sent."""
    from app.core.url_keys import accept_endpoint

    for name in ("base_url", "endpoint"):
        value = getattr(args, name, None)
        if isinstance(value, str) and value.strip():
            setattr(args, name, accept_endpoint(value))


def print_warnings(warnings: list[str], stream: TextIO | None = None) -> None:
    """Print each warning once on stderr as ``warning: ...``."""
    out = stream or sys.stderr
    for message in dict.fromkeys(warnings):
        out.write(f"warning: {message}\n")
    if warnings:
        out.flush()


def run_with_services(body: Callable[[Services], Awaitable[T]]) -> T:
    """Build :class:`Services`, run ``body`` on a fresh event loop and close them after; then
    print the storage warnings (a damaged file salvaged and moved aside, usage that could
    not be recorded) on stderr, after the command's own output."""
    from app.core.services import Services

    async def _main() -> T:
        services = Services.create()
        try:
            return await body(services)
        finally:
            try:
                await services.aclose()
            finally:
                print_warnings(services.warnings())

    return run_interruptible(_main())


def ignore_further_interrupts() -> None:
    """After a Ctrl+C the process is on its way out: more Ctrl+C must not cut the clean-up
    (recording the run, closing the databases) or the exit short."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    while True:  # a Ctrl+C already pending fires the old handler inside this very call: again
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            return
        except KeyboardInterrupt:
            continue


def run_interruptible(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop; the first Ctrl+C cancels it (its clean-up runs:
    the ledger records the run as cancelled) and raises KeyboardInterrupt after; further
    Ctrl+C are ignored. (``asyncio.run`` raises KeyboardInterrupt at the second Ctrl+C
    wherever the code is, which left ledger rows ``running`` and tasks never retrieved.)"""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(coro)
    interrupts = 0
    main: list[asyncio.Task[T]] = []

    def on_sigint(_signum: int, _frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and main:
            main[0].get_loop().call_soon_threadsafe(main[0].cancel)

    async def _run() -> T:
        task = asyncio.current_task()
        assert task is not None
        main.append(task)
        if interrupts:
            raise asyncio.CancelledError
        return await coro

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with asyncio.Runner() as runner:
            result = runner.run(_run())
    except asyncio.CancelledError:
        if interrupts:
            raise KeyboardInterrupt from None
        raise
    finally:
        if interrupts:
            ignore_further_interrupts()
        else:
            signal.signal(signal.SIGINT, previous)
    return result
