"""The one-token step's layer loop (app/providers/local_step.py): TorchScript compiles it, and
the compiled function computes exactly what the same function does as Python, on every
architecture of the fast path, int8 and int4, with an unmerged LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.providers import local_quant
from tests.providers.test_local_arch import ARCHS, IDS, arch_models

__all__ = ["arch_models"]  # a fixture, used by name


def _both_ways(fast: Any, pos: int, token: int) -> tuple[list[Any], list[Any]]:
    """(hidden state, K cache, V cache) after one step at ``pos``, run by the compiled function
    and then, from the same cache, by the Python one."""
    import torch

    from app.providers.local_step import decode_layers, scripted

    compiled = scripted()
    assert isinstance(compiled, torch.jit.ScriptFunction)  # not the fallback
    saved = fast.k_cache.clone(), fast.v_cache.clone()
    results = []
    for fn in (compiled, decode_layers):
        fast.k_cache.copy_(saved[0])
        fast.v_cache.copy_(saved[1])
        h = fast._embed(torch.tensor([token]))
        cos = [c[pos] for c in fast.cos_halves]
        sin = [s[pos] for s in fast.sin_halves]
        fn(h, pos, cos, sin, fast.k_layers, fast.v_layers, fast.plan, fast.shape, fast.norm_floor, fast.qk_floor)
        results.append([h, fast.k_cache.clone(), fast.v_cache.clone()])
    return results[0], results[1]


@pytest.mark.parametrize("variant", ["int8", "int4"])
@pytest.mark.parametrize("model_type", ARCHS)
def test_the_compiled_step_equals_the_python_one(arch_models: dict[str, Path], model_type: str, variant: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from app.providers.local_fast import FastDecoder

    model = AutoModelForCausalLM.from_pretrained(arch_models[model_type], dtype=torch.float32).eval()
    fast = FastDecoder(model, local_quant.quantize_model(model, variant))
    with torch.inference_mode():
        fast.forward(torch.tensor(IDS[:70]), 0)  # past every sliding window
        for pos in range(70, 74):  # TorchScript optimizes its graph after the first runs: still equal
            compiled, python = _both_ways(fast, pos, IDS[pos])
            for a, b in zip(compiled, python, strict=True):
                assert torch.equal(a, b)
            assert bool(compiled[1][:, :, pos].abs().sum() > 0)  # the step wrote its K row


def test_the_compiled_step_runs_an_unmerged_lora_as_python_does(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from app.providers.local_fast import FastDecoder
    from app.providers.local_fast_lora import LoraPlan

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    fast = FastDecoder(model, local_quant.quantize_model(model, "int4"))
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        fast.forward(torch.tensor(IDS[:10]), 0)
        plain, _ = _both_ways(fast, 10, IDS[10])
        for layer in fast.layers:
            width_in = fast.hidden
            width_out = layer.packs["qkv"].qweight.shape[0] if layer.packs["qkv"].kind == "int8" else None
            out = width_out or sum(layer.packs["qkv"].splits)
            layer.lora = {"qkv": LoraPlan(torch.randn(width_in, 4, generator=gen).to(torch.bfloat16) * 0.1,
                                          torch.randn(4, out, generator=gen).to(torch.bfloat16) * 0.1)}  # fmt: skip
        fast.plan = fast._make_plan()
        compiled, python = _both_ways(fast, 10, IDS[10])
    for a, b in zip(compiled, python, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(compiled[0], plain[0])  # the adapter changed the answer
