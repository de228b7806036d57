"""Where a grid file's values are: the file's name, the line of each key path, its folder
(for ``file://`` references) and the warnings; errors made here name the line and key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from app.core.errors import ConfigError

Path_ = tuple[str | int, ...]
FORMAT_HINT = "See docs/grids.md for the grid file format."
KeyLookup = Callable[[str], str | None]
"""Reads a stored key by its keyring entry name (``SecretStore.get``); None when none."""


class GridFileError(ConfigError):
    """A grid file is wrong; the message names the file, line and key."""


def key_path(path: Path_) -> str:
    """``providers[1].config.temperature``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Doc:
    """The parsed document's line numbers (by key path), its name and folder, its warnings."""

    def __init__(self, source: str, lines: dict[Path_, int], base_dir: Path | None,
                 keys: KeyLookup | None = None) -> None:  # fmt: skip
        self.source = source
        self.lines = lines
        self.base_dir = base_dir
        self.keys = keys
        """Where an ``apiKeyEnvar`` that is not set is looked up (the keyring), if anywhere."""
        self.warnings: list[str] = []
        self.read_chars = 0
        """Characters of the prompt and variable files read so far (bounded)."""

    def where(self, path: Path_) -> str:
        if not path:  # the whole file (e.g. a missing top-level key): no line to name
            return self.source
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        at = f"{self.source}, line {line}" if line else self.source
        return f"{at}: {key_path(path)}" if path else at

    def fail(self, path: Path_, message: str, hint: str = FORMAT_HINT) -> NoReturn:
        raise GridFileError(f"{self.where(path)}: {message}", hint=hint)

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(f"{self.where(path)}: {message}")

    def file(self, path: Path_, ref: str) -> Path:
        target = Path(ref.removeprefix("file://")).expanduser()
        if not target.is_absolute() and self.base_dir is not None:
            target = self.base_dir / target
        if not target.is_file():
            self.fail(path, f"the file '{target}' does not exist.", "Check the path (relative paths start at the grid file's folder).")
        return target
