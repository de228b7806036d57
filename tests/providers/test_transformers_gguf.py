"""GGUF models: converted once into a safetensors cache; the bundled SmolLM2 answers."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ModelLoadError
from app.core.events import Finished, Progress, TextDelta
from app.core.provider import ProviderContext
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers import local_loading
from app.providers.transformers import LocalProvider
from tests.providers.local_fixtures import build_tiny_gguf

MSGS = (ChatMessage("user", "hello world"),)


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gguf(tiny_model, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def fresh(ctx: Any) -> ProviderContext:
    """A second context on the same folders (a new worker, as after an app restart)."""
    return ProviderContext(settings=ctx.settings, secrets=None, paths=ctx.paths)  # type: ignore[arg-type]


async def answer(provider: LocalProvider, model: str, max_tokens: int = 12) -> tuple[str, list[Any]]:
    req = GenerationRequest(ModelRef("local", model), MSGS, GenerationParams(temperature=0.0, max_tokens=max_tokens))
    events = [e async for e in provider.stream(req)]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


def test_gguf_is_converted_once_then_loaded_from_the_cache(
    local_ctx: Any, tiny_model: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    provider = LocalProvider(local_ctx)
    text, events = run(answer(provider, str(tiny_gguf)))
    progress = [e for e in events if isinstance(e, Progress)]
    phases = [e.phase for e in progress]
    assert "converting" in phases and phases[-1] == "loaded"
    # determinate from the first event on: a real fraction that only grows, and an ETA
    fractions = [e.fraction for e in progress]
    assert all(f is not None and 0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # type: ignore[type-var]
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in progress[:-1])  # seconds left, from the first
    tensors = [e.message for e in progress if "tensor " in e.message]
    assert tensors and tensors[-1].startswith("Converting tiny.gguf: tensor 21 of 21")  # counted, not guessed
    assert progress[-1].message.startswith("tiny loaded in ")
    seconds = provider.worker.call(lambda: provider._runtime().loaded.load_seconds)
    assert 0.0 < seconds and f"loaded in {seconds:.1f} s" in progress[-1].message
    assert provider.last_load_seconds == seconds  # readable by the caller, apart from the first token
    sha = local_loading.file_sha256(tiny_gguf)
    cache = local_loading.gguf_cache_dir(local_ctx.paths.cache_dir, sha)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in cache.iterdir()}
    assert [p.name for p in cache.parent.iterdir() if p.is_dir()] == [sha]  # no temp folder left behind
    assert text == run(answer(provider, str(tiny_gguf)))[0] and provider.last_load_seconds is None  # no load this time
    assert text == run(answer(provider, str(tiny_model)))[0]  # same weights as the folder model

    def no_conversion(*_a: Any, **_k: Any) -> Path:
        raise AssertionError("the GGUF was parsed again")

    monkeypatch.setattr(local_loading, "convert_gguf", no_conversion)
    ctx2 = fresh(local_ctx)
    second = LocalProvider(ctx2)
    try:
        text2, events2 = run(answer(second, str(tiny_gguf)))
    finally:
        ctx2.extra["model_worker"].close()  # type: ignore[attr-defined]
    assert text2 == text
    assert "converting" not in [e.phase for e in events2 if isinstance(e, Progress)]
    count = second.count_tokens(str(tiny_gguf), list(MSGS))
    assert count.exact


def test_a_conversion_made_at_setup_is_found_by_a_fresh_profile(
    local_ctx: Any, tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    from app.providers import bundled

    prebuilt = tmp_path / "prebuilt"
    sha = local_loading.file_sha256(tiny_gguf)
    local_loading.convert_gguf(tiny_gguf, local_loading.gguf_cache_dir(prebuilt, sha))
    monkeypatch.setenv(bundled.PREBUILT_ENV, str(prebuilt))
    assert not local_loading.expects_conversion(tiny_gguf, local_ctx.paths.cache_dir)

    def no_conversion(*_a: Any, **_k: Any) -> Path:
        raise AssertionError("converted again")

    monkeypatch.setattr(local_loading, "convert_gguf", no_conversion)
    provider = LocalProvider(local_ctx)  # a fresh profile: its own cache is empty
    text, events = run(answer(provider, str(tiny_gguf)))
    assert text and "converting" not in [e.phase for e in events if isinstance(e, Progress)]
    folder = provider.worker.call(lambda: provider._runtime().loaded.folder)
    assert Path(folder).parent.parent == prebuilt
    assert not (local_ctx.paths.cache_dir / "gguf" / sha).exists()
    local_ctx.settings.local.dtype = "int8"  # its quantized copy goes to the profile's cache, never into prebuilt/
    assert run(answer(provider, str(tiny_gguf)))[0]
    assert not list(prebuilt.rglob("quantized-*"))
    assert list((local_ctx.paths.cache_dir / "gguf" / sha).glob("quantized-int8-*.safetensors"))
    ctx2 = fresh(local_ctx)  # the next process, before its load: the prompt is counted from the prebuilt
    try:  # tokenizer (exact, and cheap: no cl100k estimate built while the model loads)
        count = LocalProvider(ctx2).count_tokens(str(tiny_gguf), list(MSGS))
    finally:
        if "model_worker" in ctx2.extra:
            ctx2.extra["model_worker"].close()  # type: ignore[attr-defined]
    assert count.exact and count.method.startswith("tokenizer.json"), count


def test_interrupted_conversion_leaves_no_cache(
    local_ctx: Any, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    import safetensors.torch

    real = safetensors.torch.save_file

    def full_disk(*_a: Any, **_k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    provider = LocalProvider(local_ctx)
    with pytest.raises(ModelLoadError, match="Could not convert.*No space left"):
        run(answer(provider, str(tiny_gguf)))
    gguf_dir = local_ctx.paths.cache_dir / "gguf"
    assert [p.name for p in gguf_dir.iterdir() if p.is_dir()] == []  # no half cache, no temp folder
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    text, events = run(answer(provider, str(tiny_gguf)))
    assert text and events[-1] == Finished("length")


class _Free:
    def cost(self, model: ModelRef, usage: Any, endpoint: Any = None) -> Decimal:
        return Decimal(0)


@pytest.mark.slow
def test_bundled_smollm2_knows_the_capital_of_france(local_ctx: Any, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]) -> None:
    from app.core.engine import Engine
    from app.core.provider import ProviderRegistry
    from app.core.settings import LocalModelSettings

    local_ctx.settings.local = LocalModelSettings(threads=1)  # the shipped defaults (device/dtype auto)
    registry = ProviderRegistry(local_ctx)
    engine = Engine(registry, _Free())
    req = GenerationRequest(
        ModelRef("local", "smollm2"),
        (ChatMessage("user", "What is the capital of France?"),),
        GenerationParams(temperature=0.0, max_tokens=30),
    )
    try:
        result = run(engine.run(req), timeout=240)
        assert "Paris" in result.text
        assert not result.usage.estimated and result.usage.completion_tokens > 0
        assert result.cost_usd == 0
    finally:
        run(registry.aclose())
    # a restart loads from the safetensors cache (tied lm_head dropped and restored) without parsing the GGUF
    monkeypatch.setattr(local_loading, "convert_gguf", lambda *a, **k: (_ for _ in ()).throw(AssertionError("parsed again")))
    registry2 = ProviderRegistry(fresh(local_ctx))
    try:
        again = run(Engine(registry2, _Free()).run(req), timeout=120)
    finally:
        run(registry2.aclose())
    assert again.text == result.text


def test_conversion_removes_temp_folders_left_by_a_killed_app(
    local_ctx: Any, tiny_gguf: Path, run: Callable[..., Any]
) -> None:
    import os
    import time

    gguf_dir = local_ctx.paths.cache_dir / "gguf"
    stale, recent = gguf_dir / ".tmp-0123456789abcdef-dead", gguf_dir / ".tmp-0123456789abcdef-busy"
    for folder in (stale, recent):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"half written")
    old = time.time() - 2 * local_loading.STALE_TEMP_S
    os.utime(stale, (old, old))
    provider = LocalProvider(local_ctx)
    text, _ = run(answer(provider, str(tiny_gguf)))
    assert text
    assert not stale.exists()  # the app was killed while writing it
    assert recent.exists()  # may belong to another running conversion
