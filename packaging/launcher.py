"""Entry point of the frozen app (PyInstaller): the same dispatch as ``python -m app``."""

from __future__ import annotations

import multiprocessing
import sys


def _run() -> int:
    multiprocessing.freeze_support()
    from app.__main__ import main

    result = main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(_run())
