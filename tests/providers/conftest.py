"""Fixtures for the local-model tests: tiny models and adapters built once per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.paths import AppPaths
from app.core.provider import ProviderContext
from app.core.settings import LocalModelSettings, Settings
from app.providers.transformers import LocalProvider
from tests.providers.local_fixtures import build_adapter, build_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 2-layer Llama folder (hidden 32) with a BPE tokenizer and chat template."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_model_wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny Llama (hidden 48): same layer names, different shapes."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama-wide", hidden=48, seed=3)


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama whose tokenizer has a Qwen2.5-style chat template with tools (<tool_call>)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-qwen", seed=5, style="qwen")


@pytest.fixture(scope="session")
def tiny_llama3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama whose tokenizer has a Llama-3.1-style chat template with JSON tool calls."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama3", seed=6, style="llama3")


@pytest.fixture(scope="session")
def adapters(tiny_model: Path, tiny_model_wide: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """LoRA adapters: a (r=4), b (r=8) for the tiny model; wide (r=4) for the wide model."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": build_adapter(tiny_model, root / "ada", r=4, seed=1),
        "b": build_adapter(tiny_model, root / "adb", r=8, alpha=4, seed=2),
        "wide": build_adapter(tiny_model_wide, root / "wide", r=4, seed=3),
    }


@pytest.fixture
def local_ctx(app_home: Path) -> Iterator[Any]:
    """A provider context on CPU/float32 whose model worker is closed after the test."""
    from app.core.paths import AppPaths
    from app.core.provider import ProviderContext
    from app.core.settings import LocalModelSettings, Settings

    settings = Settings(local=LocalModelSettings(device="cpu", dtype="float32", threads=1))
    ctx = ProviderContext(settings=settings, secrets=None, paths=AppPaths.default().ensure())  # type: ignore[arg-type]
    yield ctx
    worker = ctx.extra.get("model_worker")
    if worker is not None:
        worker.close()  # type: ignore[attr-defined]


@pytest.fixture
def make_provider(app_home: Path) -> Iterator[Callable[..., LocalProvider]]:
    """Providers with their own model worker (a cold one beside a warm one)."""
    contexts: list[ProviderContext] = []

    def make(dtype: str, entries: int = 4) -> LocalProvider:
        settings = Settings(local=LocalModelSettings(device="cpu", dtype=dtype, threads=1,  # type: ignore[arg-type]
                                                     prefix_cache_entries=entries))  # fmt: skip
        ctx = ProviderContext(settings=settings, secrets=None, paths=AppPaths.default().ensure())  # type: ignore[arg-type]
        contexts.append(ctx)
        return LocalProvider(ctx)

    yield make
    for ctx in contexts:
        worker = ctx.extra.get("model_worker")
        if worker is not None:
            worker.close()  # type: ignore[attr-defined]
