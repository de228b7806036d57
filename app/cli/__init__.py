"""The headless command line; the commands are listed once, in :mod:`app.cli.commands`.

This package imports nothing up front (the window's start-up passes through it): the parser
and the commands load in :mod:`app.cli.dispatch` when a command runs. Every command goes
through :class:`app.core.services.Services`, so generations land in the usage ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def main(argv: list[str] | None = None) -> int:
    """Run one CLI command; return its exit code (see :func:`app.cli.dispatch.main`)."""
    from app.cli.dispatch import main as dispatch_main

    return dispatch_main(argv)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (see :func:`app.cli.dispatch.build_parser`)."""
    from app.cli.dispatch import build_parser as dispatch_parser

    return dispatch_parser()
