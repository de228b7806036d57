"""The fast CPU path on a tiny Llama: quantized weights, the lean decode step, its cache, threads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ModelLoadError
from app.core.events import Finished, TextDelta, UsageReport
from app.core.provider import ProviderContext
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers import local_quant, local_quant_cache
from app.providers.transformers import LocalProvider

MSGS = (ChatMessage("user", "hello world, what is the capital?"),)
VARIANTS = ["int8", "int4", "int4-qkv8"]


def request(model: Path, **params: Any) -> GenerationRequest:
    params.setdefault("temperature", 0.0)
    return GenerationRequest(ModelRef("local", str(model)), MSGS, GenerationParams(**params))


async def collect(provider: LocalProvider, req: GenerationRequest) -> tuple[str, list[Any]]:
    events = [e async for e in provider.stream(req)]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


def relative(a: Any, b: Any) -> float:
    import torch

    return float(torch.linalg.vector_norm(a.float() - b.float()) / torch.linalg.vector_norm(b.float()))


def test_lean_rms_norm_keeps_the_models_epsilon() -> None:
    """The lean step's RMSNorm equals the model's, eps included (it matters for small states)."""
    import torch

    from app.providers.local_fast import FastDecoder

    torch.manual_seed(2)
    weight = torch.rand(64) + 0.5
    for magnitude in (1.0, 1e-3):  # at 1e-3, mean(h^2) ~ 1e-6 is below eps = 1e-5
        h = torch.randn(3, 64) * magnitude
        floor = torch.tensor((64 * 1e-5) ** 0.5)
        ours = FastDecoder._norm(h, weight * 64 ** 0.5, floor).float()
        theirs = torch.nn.functional.rms_norm(h, (64,), weight, 1e-5)
        assert relative(ours, theirs) < 0.01  # bf16 output


@pytest.mark.parametrize("order", ["random", "rising", "ties"])
def test_the_heads_top_indices_are_a_top_k_of_the_row(order: str) -> None:
    """The blockwise top-k of one row returns k distinct indices, none below a value left out,
    whatever the order of the values (rising rows cost torch's own topk the most)."""
    import torch

    from app.providers.local_fast import top_indices

    gen = torch.Generator().manual_seed(3)
    row = torch.randn(1, 49152, generator=gen) * 3
    if order == "rising":
        row = torch.linspace(-10, 10, 49152).unsqueeze(0) + row * 0.03
    elif order == "ties":  # the int4 head's bf16 output: many equal values around the cut
        row = row.to(torch.bfloat16).float().round()
    top = top_indices(row, 64)
    assert top.shape == (1, 64) and len(set(top[0].tolist())) == 64
    chosen = row[0, top[0]]
    rest = torch.ones(49152, dtype=torch.bool)
    rest[top[0]] = False
    assert float(chosen.min()) >= float(row[0, rest].max())
    assert torch.equal(chosen.sort().values, row.topk(64).values[0].sort().values)


def test_the_heads_top_indices_fall_back_to_topk_for_small_or_several_rows() -> None:
    import torch

    from app.providers.local_fast import top_indices

    rows = torch.randn(3, 49152)
    assert torch.equal(top_indices(rows, 8).sort().values, rows.topk(8).indices.sort().values)
    small = torch.randn(1, 1000)
    assert torch.equal(top_indices(small, 64).sort().values, small.topk(64).indices.sort().values)


def test_the_decoders_own_norm_floor_matches_the_models_norm(tiny_model: Path) -> None:
    """The floor FastDecoder builds from the config (sqrt(hidden * eps)) gives the model's own
    RMSNorm where eps matters: states whose mean square is about eps."""
    import torch
    from transformers import AutoModelForCausalLM

    from app.providers.local_fast import FastDecoder

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    fast = FastDecoder(model, local_quant.quantize_model(model, "int8"))
    torch.manual_seed(3)
    h = torch.randn(4, fast.hidden) * fast.eps**0.5
    with torch.inference_mode():
        ours = FastDecoder._rms(h, fast.final_norm, fast.norm_floor)
        theirs = model.model.norm(h)
    assert relative(ours, theirs) < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_lean_step_matches_the_quantized_transformers_forward(tiny_model: Path, variant: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from app.providers.local_fast import FastDecoder, unsupported_reason

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    quantized = local_quant.quantize_model(model, variant)
    assert unsupported_reason(model, quantized) is None
    assert {type(m).__name__ for n, m in model.named_modules() if n.endswith(("q_proj", "down_proj", "lm_head"))} == {"QuantLinear"}
    fast = FastDecoder(model, quantized)
    ids = torch.tensor([5, 17, 42, 99, 7, 3, 64, 11])
    with torch.inference_mode():
        reference = model(ids[None].long()).logits[0].float()  # transformers' forward, same packed weights
        prefill = fast.all_logits(ids)
        # both round activations to bf16 before each packed matmul, at different points (each
        # is ~4-5% off a float32 computation over the same dequantized weights; ours, with
        # float32 attention, the closer one)
        assert relative(prefill, reference) < 0.06
        steps = [fast.forward(ids[:4], 0)] + [fast.forward(ids[i : i + 1], i) for i in range(4, 8)]
    for i, logits in zip(range(3, 8), steps, strict=True):  # the static cache: one token at a time
        assert relative(logits, prefill[i]) < 0.01
    from app.providers import local_fast

    small = FastDecoder(model, quantized)
    small.max_positions = 4096
    with torch.inference_mode():  # the cache grows past its first size mid-way and keeps its contents
        local_fast_step, local_fast.CACHE_STEP = local_fast.CACHE_STEP, 4
        try:
            grown = [small.forward(ids[:3], 0)] + [small.forward(ids[i : i + 1], i) for i in range(3, 8)]
        finally:
            local_fast.CACHE_STEP = local_fast_step
    assert small.capacity == 8
    assert relative(grown[-1], prefill[7]) < 0.01


def test_fast_path_is_the_cpu_default_streams_and_stops(local_ctx: Any, tiny_model: Path, run: Callable[..., Any]) -> None:
    import torch

    from app.providers.local_prompt import prompt_ids

    local_ctx.settings.local.dtype = "auto"
    provider = LocalProvider(local_ctx)
    text, events = run(collect(provider, request(tiny_model, max_tokens=12)))
    loaded = provider.worker.call(lambda: provider._runtime().loaded)
    assert loaded.dtype == "int4" and loaded.fast is not None
    assert events[-1] == Finished("length")
    usage = next(e for e in events if isinstance(e, UsageReport))

    def greedy() -> list[int]:  # the same 12 tokens straight from the lean step
        ids = prompt_ids(loaded.tokenizer, MSGS)
        out: list[int] = []
        with torch.inference_mode():
            logits = loaded.fast.forward(torch.tensor(ids), 0)
            for pos in range(len(ids), len(ids) + 12):
                out.append(int(logits.argmax()))
                logits = loaded.fast.forward(torch.tensor(out[-1:]), pos)
        return out

    tokens = provider.worker.call(greedy)
    assert text == loaded.tokenizer.decode(tokens, skip_special_tokens=True) and text
    assert (usage.prompt_tokens, usage.completion_tokens) == (len(prompt_ids(loaded.tokenizer, MSGS)), 12)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut, events = run(collect(provider, request(tiny_model, max_tokens=12, stop=(stop,))))
    assert cut == text[: text.index(stop)] and events[-1] == Finished("stop")
    a = run(collect(provider, request(tiny_model, temperature=1.0, seed=7, max_tokens=20)))[0]
    b = run(collect(provider, request(tiny_model, temperature=1.0, seed=7, max_tokens=20)))[0]
    c = run(collect(provider, request(tiny_model, temperature=1.0, seed=8, max_tokens=20)))[0]
    assert a == b and a != c


def test_quantized_copy_is_cached_by_source_and_variant(
    local_ctx: Any, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    import shutil

    local_ctx.settings.local.dtype = "int4"
    provider = LocalProvider(local_ctx)
    first = run(collect(provider, request(tiny_model, max_tokens=8)))[0]
    copies = list((local_ctx.paths.cache_dir / "quantized").rglob("quantized-int4-*.safetensors"))
    assert len(copies) == 1
    older = copies[0].with_name("quantized-int4-v1.safetensors")  # an earlier format's copy: deleted on the next write
    other = copies[0].with_name("quantized-int8-v1.safetensors")  # another variant's: kept
    older.write_bytes(b"old")
    other.write_bytes(b"old")
    assert local_quant_cache.prune_older_formats(copies[0], "int4") == [older]
    assert not older.exists() and other.exists() and copies[0].exists()

    def no_quantizing(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("quantized again")

    monkeypatch.setattr(local_quant, "quantize_model", no_quantizing)
    ctx2 = ProviderContext(settings=local_ctx.settings, secrets=None, paths=local_ctx.paths)  # type: ignore[arg-type]
    second = LocalProvider(ctx2)
    try:
        again = run(collect(second, request(tiny_model, max_tokens=8)))[0]
        assert second.worker.call(lambda: second._runtime().loaded.fast is not None)
    finally:
        ctx2.extra["model_worker"].close()  # type: ignore[attr-defined]
    assert again == first
    copy = tmp_path / "copy"  # a changed source never reuses that copy
    shutil.copytree(tiny_model, copy)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("\n}", ', "note": "changed"\n}'))
    with pytest.raises(ModelLoadError, match="quantized again"):
        run(collect(provider, request(copy, max_tokens=2)))
    local_ctx.settings.local.dtype = "int8"  # nor does another variant
    with pytest.raises(ModelLoadError, match="quantized again"):
        run(collect(provider, request(tiny_model, max_tokens=2)))
