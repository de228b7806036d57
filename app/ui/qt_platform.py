"""Why Qt's X11 platform plugin cannot load: the system libraries it lacks, by name.

Qt 6 aborts the process when no platform plugin loads, and on X11 its message blames
``libxcb-cursor0`` whatever library is really missing. :func:`watch_platform_start` wraps the
creation of the QApplication: it holds Qt's messages back and, on the fatal "no Qt platform
plugin could be initialized", runs ``ldd`` on the xcb plugin and prints the libraries that are
not found (with their Debian packages and the install command), then exits with status 2
instead of a core dump. On success the held messages are printed as Qt would have.

No Qt import at module level (the missing-library check is plain ``ldd``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from PySide6.QtCore import QMessageLogContext

EXIT_NO_PLATFORM = 2
XCB_PLUGIN = "libqxcb.so"
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")
_PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libz.so.1": "zlib1g",
    "libgcc_s.so.1": "libgcc-s1",
}


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname`` by the library packaging rule
    (``libfoo.so.N`` -> ``libfooN``, ``libfoo2.so.N`` -> ``libfoo2-N``), or a known exception."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    name, sep, version = soname.partition(".so.")
    if not sep:
        return soname
    version = version.split(".")[0]
    name = name.lower()
    return f"{name}-{version}" if name[-1:].isdigit() else f"{name}{version}"


def xcb_plugin(plugins_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The xcb platform plugin Qt loads: ``QT_QPA_PLATFORM_PLUGIN_PATH`` first, then the
    ``platforms`` folder of ``plugins_dir`` (default: PySide6's own plugins); None if absent."""
    candidates: list[Path] = []
    env_dir = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH")
    if env_dir:
        candidates.append(Path(env_dir) / XCB_PLUGIN)
    if plugins_dir is None:
        import importlib.util

        spec = importlib.util.find_spec("PySide6")
        if spec is not None and spec.origin:
            plugins_dir = Path(spec.origin).parent / "Qt" / "plugins"
    if plugins_dir is not None:
        candidates.append(Path(plugins_dir) / "platforms" / XCB_PLUGIN)
    return next((p for p in candidates if p.is_file()), None)


def missing_libraries(library: str | os.PathLike[str], timeout: float = 20.0) -> list[str]:
    """The shared libraries ``ldd`` reports as "not found" for ``library`` (direct or
    indirect), in order, without repeats. Empty when ``ldd`` is not there or fails."""
    import shutil  # only when Qt could not start: never on the window's fast path
    import subprocess

    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        run = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, "LC_ALL": "C"})  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    found: list[str] = []
    for line in run.stdout.splitlines():
        m = _NOT_FOUND.match(line)
        if m and m.group(1) not in found:
            found.append(m.group(1))
    return found


def explain_missing(missing: list[str]) -> str:
    """The user's message for libraries the xcb plugin lacks: which, their packages, the fix."""
    packages = list(dict.fromkeys(debian_package(s) for s in missing))
    lines = [
        "error: the window cannot open: Qt's X11 platform plugin (xcb) needs system libraries "
        "that are not installed:",
        *(f"  {s}  (Debian/Ubuntu package {debian_package(s)})" for s in missing),
        f"Install them: sudo apt-get install {' '.join(packages)}",
        "(in a source checkout, bash scripts/setup.sh installs every library the window needs;"
        " the .deb pulls them in itself).",
        'Without a window meanwhile: python -m app ask "your prompt", or python -m app --self-test.',
    ]
    return "\n".join(lines) + "\n"


def _format(category: str, message: str) -> str:
    """A Qt message as Qt's default handler prints it."""
    return f"{category}: {message}" if category and category != "default" else message


@contextmanager
def watch_platform_start(
    stream: TextIO | None = None,
    exit: Callable[[int], Any] = os._exit,
    plugins_dir: str | os.PathLike[str] | None = None,
) -> Iterator[None]:
    """Run the block (the QApplication's creation) with Qt's messages held back; on Qt's
    fatal platform error print the really missing libraries and ``exit(2)``."""
    from PySide6.QtCore import QLibraryInfo, QtMsgType, qInstallMessageHandler

    out = stream or sys.stderr
    held: list[str] = []

    def handler(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
        line = _format(getattr(context, "category", "") or "", message)
        if kind != QtMsgType.QtFatalMsg:
            held.append(line)
            return
        where = plugins_dir or QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)
        plugin = xcb_plugin(where)
        missing = missing_libraries(plugin) if plugin is not None else []
        if missing:
            out.write(explain_missing(missing))
        else:  # not a library problem: Qt's own words are the best we have
            out.write("".join(f"{h}\n" for h in held) + f"{line}\n")
        out.flush()
        exit(EXIT_NO_PLATFORM)

    previous = qInstallMessageHandler(handler)
    try:
        yield
    finally:
        qInstallMessageHandler(previous)
        if held:
            out.write("".join(f"{h}\n" for h in held))
            out.flush()
