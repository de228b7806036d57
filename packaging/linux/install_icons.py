"""Copy the app's icons into a hicolor theme tree: ``install_icons.py DEST SRC_DIR...``.

Every square PNG found (recursively) in the first source folder that has any is installed as
``DEST/<n>x<n>/apps/llm-playground.png`` (its size read from the PNG header); an SVG goes to
``DEST/scalable/apps/llm-playground.svg``. Exits non-zero when no icon is found.
"""

from __future__ import annotations

import shutil
import struct
import sys
from pathlib import Path

NAME = "llm-playground"


def png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None when it is not a PNG."""
    with path.open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def install(dest: Path, sources: list[Path]) -> list[Path]:
    """Install icons from the first source folder that holds any; return the files written."""
    for src in sources:
        if not src.is_dir():
            continue
        by_size: dict[int, Path] = {}
        svg: Path | None = None
        for f in sorted(src.rglob("*")):
            if f.suffix.lower() == ".png":
                size = png_size(f)
                if size and size[0] == size[1] and size[0] not in by_size:
                    by_size[size[0]] = f
            elif f.suffix.lower() == ".svg" and svg is None:
                svg = f
        if not by_size and svg is None:
            continue
        written: list[Path] = []
        for n, f in sorted(by_size.items()):
            target = dest / f"{n}x{n}" / "apps" / f"{NAME}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            target.chmod(0o644)
            written.append(target)
        if svg is not None:
            target = dest / "scalable" / "apps" / f"{NAME}.svg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(svg, target)
            target.chmod(0o644)
            written.append(target)
        return written
    return []


def main(argv: list[str]) -> int:
    """Command-line entry."""
    if len(argv) < 2:
        print("usage: install_icons.py DEST SRC_DIR [SRC_DIR...]", file=sys.stderr)
        return 2
    written = install(Path(argv[0]), [Path(a) for a in argv[1:]])
    if not written:
        print(f"install_icons.py: no PNG or SVG icon in {', '.join(argv[1:])}", file=sys.stderr)
        return 1
    print("icons: " + ", ".join(p.parent.parent.name for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
