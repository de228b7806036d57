"""Weight-only quantization (app/providers/local_quant.py): the int8 and int4 grids, fused
packing, quantizing a tiny Llama in place, and the packed file written and loaded back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.providers import local_quant
from tests.providers.test_local_fast import relative


def test_int4_keeps_a_4bit_grid_exactly_and_int8_rounds_to_half_a_step() -> None:
    """Weights already on a Q4_1 grid (blocks of 32: scale * q + minimum) come back unchanged."""
    import torch

    torch.manual_seed(0)
    scale = torch.rand(64, 4, 1).mul(0.1).add(0.01).to(torch.bfloat16).float()
    minimum = (-8 * scale).to(torch.bfloat16).float()  # zero = minimum + 8 * scale = 0, exact in bf16
    q = torch.randint(0, 16, (64, 4, 32)).float()
    q[..., 0], q[..., 1] = 0, 15  # each block uses its whole range, as the Q4_1 quantizer does
    w = (q * scale + minimum).reshape(64, 128)
    assert torch.equal(local_quant.fake_quantize("int4", w), w)
    x = torch.randn(3, 128, dtype=torch.bfloat16)
    packed, scales = local_quant.quantize_int4(w)
    assert relative(local_quant.qmm("int4", x, packed, scales), x.float() @ w.t()) < 0.01
    dense = torch.randn(48, 128)
    step = dense.abs().amax(dim=1, keepdim=True) / 127
    assert bool(((local_quant.fake_quantize("int8", dense) - dense).abs() <= step * 0.51).all())


def test_int4_zeros_are_fitted_by_least_squares() -> None:
    """A Q4_1 grid with f16 scales (which bf16 cannot hold): the fitted zero is closer to it than
    the min/max one; on plain weights it is no worse."""
    import torch

    torch.manual_seed(1)
    scale = (torch.rand(96, 8, 1) * 0.05 + 0.005).half().float()
    minimum = (-scale * torch.rand(96, 8, 1) * 15).half().float()
    q = torch.randint(0, 16, (96, 8, 32)).float()
    q[..., 0], q[..., 1] = 0, 15
    gguf = (q * scale + minimum).reshape(96, 256)

    def error(w: Any, fit_zero: bool) -> float:
        q, s, z = local_quant._int4_grid(w, fit_zero=fit_zero)
        return float((((q - 8) * s.float()[..., None] + z.float()[..., None]).reshape(w.shape) - w).pow(2).mean())

    assert error(gguf, True) < 0.7 * error(gguf, False)
    plain = torch.randn(96, 256)
    assert error(plain, True) < error(plain, False)


def test_can_int4_needs_whole_groups_and_members_on_64_row_boundaries() -> None:
    assert local_quant.can_int4((64, 64), 32)
    assert not local_quant.can_int4((64, 64), 48)  # 48 inputs: not whole groups of 32
    assert not local_quant.can_int4((40, 24), 32)  # the second member starts at row 40
    assert not local_quant.can_int4((8,), 32)  # rows not a multiple of 16


def test_pack_fuses_members_and_falls_back_to_int8_where_int4_cannot_run() -> None:
    import torch

    torch.manual_seed(4)
    q, k = torch.randn(64, 64), torch.randn(64, 64)
    fused = local_quant.pack("int4", [q, k], [None, torch.ones(64)])
    assert (fused.kind, fused.splits, fused.in_features) == ("int4", (64, 64), 64)
    qw, qs, bias = fused.rows(1)
    assert bias is not None and torch.equal(bias, torch.ones(64, dtype=torch.bfloat16))
    back = local_quant.dequantize("int4", qw, qs, 64).float()
    assert relative(back, local_quant.fake_quantize("int4", torch.cat([q, k]))[64:]) < 0.01
    odd = local_quant.pack("int4", [torch.randn(40, 64), torch.randn(24, 64)], [None, None])
    assert odd.kind == "int8" and odd.bias is None  # members not on 64-row boundaries
    qw8, qs8, _ = odd.rows(0)
    assert qw8.shape == (40, 64) and qs8.shape == (40,)


def test_quantize_model_refuses_unknown_variants_and_other_architectures(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with pytest.raises(ValueError, match="unknown quantization variant"):
        local_quant.quantize_model(model, "int3")
    with pytest.raises(ValueError, match="not a Llama-style decoder"):
        local_quant.quantize_model(torch.nn.Sequential(torch.nn.Linear(4, 4)), "int8")


def test_a_packed_model_saved_and_loaded_back_gives_the_same_logits(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    steps: list[tuple[int, int]] = []
    quantized = local_quant.quantize_model(model, "int4-qkv8", progress=lambda done, total: steps.append((done, total)))
    layers = len(quantized.layers)
    assert steps[-1] == (layers + 1, layers + 1) and len(steps) == layers + 1
    assert quantized.layers[0]["qkv"].kind == "int8" and quantized.layers[0]["down"].kind == "int4"
    path = tmp_path / "cache" / "model.safetensors"
    local_quant.save_packed(quantized, model, path, {"source": "tiny"})
    meta, tensors = local_quant.load_packed(path)
    assert meta["source"] == "tiny" and meta["variant"] == "int4-qkv8"
    rebuilt, again = local_quant.model_from_packed(AutoConfig.from_pretrained(tiny_model), meta, tensors)
    assert again.layout() == quantized.layout()
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.inference_mode():
        assert relative(rebuilt.eval()(ids).logits, model(ids).logits) < 1e-3
    with pytest.raises(ValueError, match="format"):
        local_quant.model_from_packed(AutoConfig.from_pretrained(tiny_model), {**meta, "format": "1"}, tensors)


def test_the_quantized_linear_runs_the_packed_weight() -> None:
    import torch

    torch.manual_seed(5)
    w = torch.randn(64, 64)
    packed = local_quant.pack("int8", [w], [None])
    layer: Any = local_quant.quant_linear_class()(64, 64, "int8", packed.qweight, packed.qscale, None)
    assert isinstance(layer, torch.nn.Linear)  # peft can wrap it with LoRA
    x = torch.randn(3, 64)
    assert relative(layer(x), x @ local_quant.fake_quantize("int8", w).t()) < 0.02
