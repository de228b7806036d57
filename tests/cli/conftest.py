"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tiny_local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random Llama folder and a non-zero LoRA adapter for it (no network)."""
    from tests.providers.local_fixtures import build_adapter, build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("cli-tiny") / "tiny-llama")
    adapter = build_adapter(model, tmp_path_factory.mktemp("cli-lora") / "ada", r=4, seed=1)
    return model, adapter
