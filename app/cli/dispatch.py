"""Parse the command line and run one command (the commands come from :mod:`app.cli.commands`).

Imports no Qt and no heavy library up front; each command's module loads when the parser is
built.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from app.cli.commands import COMMANDS
from app.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    accept_url_arguments,
    check_arguments,
    exit_code_for,
    ignore_further_interrupts,
    print_error,
    silence_stdout,
)
from app.core.errors import AppError


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="LLM Playground, headless. Run without a command to open the window.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        importlib.import_module(f"app.cli.{command.module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one CLI command; return its exit code (0 ok, 1 provider error, 2 bad input, 130 Ctrl+C,
    141 when the reader of stdout went away, e.g. ``| head``)."""
    raw = sys.argv[1:] if argv is None else argv
    args = argparse.Namespace(json="--json" in raw)  # until parsed (Ctrl+C while the parser is built)
    try:
        try:  # inside the Ctrl+C handling: building the parser imports the commands (seconds, cold)
            args = build_parser().parse_args(raw)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            return int(exc.code) if isinstance(exc.code, int) else 2
        check_arguments(args)  # bytes that are not UTF-8: a clear message, exit 2
        accept_url_arguments(args)  # a key inside a base URL: memory only; malformed: exit 2
        return int(args.func(args))
    except AppError as exc:
        print_error(exc)
        _json_line(args, exc)
        return exit_code_for(exc)
    except BrokenPipeError:  # stdout's reader is gone: stop quietly, no traceback
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        ignore_further_interrupts()
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
        sys.stderr.write("\nCancelled.\n")
        if not getattr(args, "json_done", False):
            _json_line(args, None)
        return EXIT_INTERRUPTED


def _json_line(args: argparse.Namespace, exc: AppError | None) -> None:
    """With ``--json``, an error that reached here (a bad argument, Ctrl+C: ``exc`` None)
    still ends the output with one JSON line: the command's own (``json_failure``) or
    ``{"error": ...}``."""
    if not getattr(args, "json", False):
        return
    hook = getattr(args, "json_failure", None)
    try:
        if hook is not None:
            hook(args, exc)
        else:
            sys.stdout.write(json.dumps({"error": exc.user_message() if exc else "Cancelled."}, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        silence_stdout()
