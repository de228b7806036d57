"""Qt's X11 platform plugin has every system library it needs (scripts/setup.sh installs them,
the .deb depends on them), and when one is missing the app names it instead of Qt's message."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from app.ui.qt_platform import debian_package, missing_libraries, xcb_plugin

ROOT = Path(__file__).resolve().parents[2]
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1"}
"""Always on Debian (apt and dpkg need them); libc6 is in the .deb's Depends with a version."""


def _qt_dir() -> Path:
    import PySide6

    return Path(PySide6.__file__).parent / "Qt"


def _xcb_files() -> list[Path]:
    """The xcb plugin, the Qt library it is built on and the X11 GL integrations."""
    qt = _qt_dir()
    files = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"]
    files += sorted((qt / "plugins" / "xcbglintegrations").glob("*.so"))
    return [f for f in files if f.is_file()]


def dt_needed(path: Path) -> list[str]:
    """The DT_NEEDED entries of a 64-bit little-endian ELF file (what it links directly)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path}: not ELF64 LE"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for _name, kind, _flags, _addr, offset, size, link, *_ in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link]
        str_off = strtab[4]
        names = []
        for pos in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                start = str_off + value
                names.append(data[start:data.index(b"\0", start)].decode())
        return names
    return []


def _resolved(path: Path) -> dict[str, str]:
    """soname -> the file ldd resolves it to (system libraries only)."""
    run = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30)
    out: dict[str, str] = {}
    for line in run.stdout.splitlines():
        m = re.match(r"^\s*(\S+)\s+=>\s+(/\S+)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _owner(path: str) -> str | None:
    """The Debian package that owns ``path`` (its real file or the symlink)."""
    for candidate in (os.path.realpath(path), path):
        run = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, timeout=30)
        if run.returncode == 0:
            return run.stdout.split(":", 1)[0].strip()
    return None


def _setup_packages() -> set[str]:
    text = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    m = re.search(r"^pkgs=\((.*?)\)", text, re.M | re.S)
    assert m, "scripts/setup.sh has no pkgs=(...) list"
    return set(m.group(1).split())


def _deb_depends() -> set[str]:
    text = (ROOT / "packaging" / "linux" / "control.in").read_text(encoding="utf-8")
    m = re.search(r"^Depends:(.*)$", text, re.M)
    assert m
    return {re.split(r"[\s(]", p.strip())[0] for p in m.group(1).split(",")}


def test_the_xcb_plugin_finds_every_library() -> None:
    plugin = xcb_plugin(_qt_dir() / "plugins")
    assert plugin is not None and plugin.name == "libqxcb.so"
    for f in _xcb_files():
        missing = missing_libraries(f)
        assert missing == [], f"{f.name}: not found {missing}: add {[debian_package(m) for m in missing]} to scripts/setup.sh"


def test_setup_and_the_deb_provide_every_library_the_plugin_links() -> None:
    setup, depends = _setup_packages(), _deb_depends()
    needed: dict[str, str] = {}
    for f in _xcb_files():
        resolved = _resolved(f)
        for soname in dt_needed(f):
            if soname in resolved and "/PySide6/" in resolved[soname]:
                continue  # shipped in the PySide6 wheel
            if soname not in resolved and soname.startswith(("libQt6", "libicu", "ld-linux")):
                continue
            package = (_owner(resolved[soname]) if soname in resolved else None) or debian_package(soname)
            needed.setdefault(package, soname)
    assert "libxcb-icccm4" in needed and "libxcb-keysyms1" in needed  # the two
    wanted = set(needed) - BASE_PACKAGES
    assert not wanted - setup, f"missing from scripts/setup.sh: {sorted(wanted - setup)}"
    assert not wanted - depends, f"missing from the .deb Depends: {sorted(wanted - depends)}"
    for package in wanted:  # the naming rule the error message uses holds for all of them
        assert debian_package(needed[package]) == package, (needed[package], package)


@pytest.mark.parametrize(("soname", "package"), [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libX11-xcb.so.1", "libx11-xcb1"), ("libGL.so.1", "libgl1"), ("libdbus-1.so.3", "libdbus-1-3"),
    ("libglib-2.0.so.0", "libglib2.0-0"), ("libxcb-render-util.so.0", "libxcb-render-util0"),
])  # fmt: skip
def test_debian_package_names(soname: str, package: str) -> None:
    assert debian_package(soname) == package


def test_a_missing_library_is_named_instead_of_qts_message(tmp_path: Path) -> None:
    """A copy of the real plugin linked against a library that does not exist: the window's
    start names exactly that library and its package, exits 2, and does not abort."""
    qt = _qt_dir()
    data = (qt / "plugins" / "platforms" / "libqxcb.so").read_bytes()
    assert b"libxcb-icccm.so.4\0" in data
    platforms = tmp_path / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (platforms / "libqxcb.so").write_bytes(data.replace(b"libxcb-icccm.so.4\0", b"libxcb-missx.so.4\0"))
    (tmp_path / "lib").symlink_to(qt / "lib")  # the plugin's RUNPATH: $ORIGIN/../../lib
    assert missing_libraries(platforms / "libqxcb.so") == ["libxcb-missx.so.4"]
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(QT_QPA_PLATFORM="xcb", QT_QPA_PLATFORM_PLUGIN_PATH=str(platforms), DISPLAY=":9")
    run = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "libxcb-missx.so.4" in run.stderr
    assert "sudo apt-get install libxcb-missx4" in run.stderr
    assert "xcb-cursor0" not in run.stderr and "Reinstalling the application" not in run.stderr
    assert "Traceback" not in run.stderr


def test_without_a_library_problem_qts_own_message_is_kept(tmp_path: Path) -> None:
    """The plugin loads but there is no X server: no library is blamed, Qt's words stay."""
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    free = next(n for n in range(500, 600) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    env.update(QT_QPA_PLATFORM="xcb", DISPLAY=f":{free}")
    if shutil.which("ldd") is None or missing_libraries(_xcb_files()[0]):
        pytest.fail("the xcb plugin lacks libraries; run bash scripts/setup.sh")
    run = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "could not connect to display" in run.stderr.lower()
    assert "needs system libraries" not in run.stderr
