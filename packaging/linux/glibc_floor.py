"""Print the newest glibc symbol version any ELF file under a folder asks for (e.g. ``2.36``).

``python glibc_floor.py BUNDLE_DIR`` -> the version for the .deb's ``libc6 (>= ...)``: PyInstaller
copies some libraries (libstdc++, libexpat, ...) from the build machine, so the bundle needs at
least that machine's glibc. Reads the version strings directly (no binutils needed).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_VERSION = re.compile(rb"GLIBC_2\.(\d+)(?:\.(\d+))?\x00")
ELF_MAGIC = b"\x7fELF"


def glibc_floor(folder: Path, default: tuple[int, int, int] = (2, 28, 0)) -> str:
    """The highest ``GLIBC_2.x[.y]`` found in the ELF files under ``folder`` (at least ``default``)."""
    best = default
    for path in folder.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as fh:
            if fh.read(4) != ELF_MAGIC:
                continue
            data = fh.read()
        for m in _VERSION.finditer(data):
            found = (2, int(m.group(1)), int(m.group(2) or 0))
            best = max(best, found)
    return f"{best[0]}.{best[1]}" + (f".{best[2]}" if best[2] else "")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: glibc_floor.py BUNDLE_DIR", file=sys.stderr)
        sys.exit(2)
    print(glibc_floor(Path(sys.argv[1])))
