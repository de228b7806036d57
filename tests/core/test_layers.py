"""Layering rules: app/core and app/providers never import Qt, and importing them (every
module, as the app does at start) loads no heavy library (torch, transformers, peft, openai...)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QT_MODULES = ("PySide6", "shiboken6", "qasync", "PyQt5", "PyQt6")
HEAVY_MODULES = ("torch", "transformers", "peft", "openai", "accelerate", "safetensors", "gguf", *QT_MODULES)
PACKAGES = ("app/core", "app/providers")


def source_files() -> list[Path]:
    files = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    assert files, "no source files found"
    return files


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_roots(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_qt_imports_anywhere_in_core_or_providers(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [f"line {n}: {mod}" for n, mod in imported_roots(tree) if mod in QT_MODULES]
    assert not bad, f"{path.relative_to(ROOT)} imports Qt ({', '.join(bad)}); only app/ui may"


def test_the_ast_check_catches_qt_imports() -> None:
    tree = ast.parse("import os\ndef f():\n    from PySide6.QtCore import QObject\nimportlib.import_module('qasync')\n")
    assert [m for _, m in imported_roots(tree) if m in QT_MODULES] == ["PySide6", "qasync"]


def heavy_loaded_by(modules: list[str], *, path: Path = ROOT) -> list[str]:
    """Import ``modules`` in a fresh interpreter; return the heavy libraries that got loaded."""
    code = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(path)!r})\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_every_module_loads_no_heavy_library() -> None:
    modules = [module_name(p) for p in source_files()]
    assert "app.core.services" in modules and "app.providers.mock" in modules
    loaded = heavy_loaded_by(modules)
    assert loaded == [], f"importing app.core/app.providers loaded {loaded}: import them inside functions"


def test_the_import_check_sees_a_module_level_heavy_import(tmp_path: Path) -> None:
    (tmp_path / "eager_probe.py").write_text("import openai\n")
    assert heavy_loaded_by(["eager_probe"], path=tmp_path) == ["openai"]
