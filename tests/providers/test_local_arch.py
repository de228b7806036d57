"""The lean step on Qwen3, Gemma 3, Phi-3 and Mistral: logits as transformers' own forward, decode as prefill."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.cli.models import format_listing
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers import local_quant
from app.providers.local_arch import config_reason, layer_rope_types, layer_windows
from app.providers.transformers import LocalProvider
from tests.providers.local_fixtures import ARCH_CONFIGS, build_tiny_arch, build_tiny_gpt2

ARCHS = sorted(ARCH_CONFIGS)
TOP_TOLERANCE = {"gemma3_text": 0.003, "qwen3": 0.012, "phi3": 0.04, "mistral": 0.04}
"""Top-8 logits against transformers in float32, measured 0.0008, 0.004 and 0.013-0.02: bf16
activations before each packed matmul (Gemma's norms after attention and MLP keep them small).
Tight enough that SiLU for Gemma's GELU (0.005) or head_dim ** -0.5 for its query scale fail."""
IDS = [5, 17, 42, 99, 7, 3, 64, 11, 250, 31, 8, 120, 77, 19, 200, 45] * 5  # 80 tokens: past every window


@pytest.fixture(scope="session")
def arch_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random model folder per architecture (see ARCH_CONFIGS)."""
    root = tmp_path_factory.mktemp("arch")
    return {t: build_tiny_arch(root / t, t, seed=i) for i, t in enumerate(ARCHS)}


def relative(a: Any, b: Any) -> float:
    import torch

    return float(torch.linalg.vector_norm(a.float() - b.float()) / torch.linalg.vector_norm(b.float()))


def test_config_reason_names_what_the_fast_path_lacks() -> None:
    def cfg(**kw: Any) -> SimpleNamespace:
        return SimpleNamespace(**{"model_type": "llama", "hidden_act": "silu", **kw})

    assert config_reason(cfg()) is None
    assert config_reason(cfg(model_type="qwen3")) is None
    assert config_reason(cfg(model_type="gemma3_text", hidden_activation="gelu_pytorch_tanh")) is None
    reason = config_reason(cfg(model_type="falcon_h1"))
    assert reason is not None and "'falcon_h1'" in reason and "gemma3_text" in reason  # says what does run
    assert config_reason(cfg(hidden_act="relu")) == "activation 'relu'"
    assert config_reason(cfg(model_type="phi3", rope_scaling={"type": "longrope"})) == "rope type 'longrope'"
    assert config_reason(cfg(model_type="phi3", partial_rotary_factor=0.75)) == "partial rotary embeddings"
    assert config_reason(cfg(model_type="gemma3_text", attn_logit_softcapping=50.0)) == "attention logit softcapping"
    nested = {"sliding_attention": {"rope_type": "default"}, "full_attention": {"rope_type": "dynamic"}}
    assert config_reason(cfg(model_type="gemma3_text", rope_parameters=nested)) == "rope type 'dynamic'"
    # windows: per layer type (Qwen, Gemma), or the config's one for every layer (Mistral, Phi-3)
    assert layer_windows(cfg(sliding_window=8, layer_types=["sliding_attention", "full_attention"]), 2) == [8, None]
    assert layer_windows(cfg(model_type="mistral", sliding_window=4096), 2) == [4096, 4096]
    assert layer_windows(cfg(sliding_window=None), 2) == [None, None]
    types = ["sliding_attention", "full_attention"]
    assert layer_rope_types(cfg(model_type="gemma3_text", layer_types=types), 2) == types
    assert layer_rope_types(cfg(model_type="qwen3", layer_types=types), 2) == [None, None]


@pytest.mark.parametrize("variant", ["int8", "int4"])
@pytest.mark.parametrize("model_type", ARCHS)
def test_lean_step_matches_transformers_on_each_architecture(arch_models: dict[str, Path], model_type: str,
                                                             variant: str) -> None:  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM

    from app.providers.local_fast import FastDecoder, unsupported_reason

    folder = arch_models[model_type]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    quantized = local_quant.quantize_model(model, variant)
    assert unsupported_reason(model, quantized) is None
    kinds = {n: m.kind for n, m in model.named_modules() if type(m).__name__ == "QuantLinear"}
    assert variant in set(kinds.values())  # int4 packs q/k/v too at these sizes (head_dim 32)
    fast = FastDecoder(model, quantized)
    ids = torch.tensor(IDS)
    with torch.inference_mode():
        quant_ref = model(ids[None]).logits[0].float()  # transformers' forward on the same packed weights
        prefill = fast.all_logits(ids)
    # transformers runs its residual stream in bf16, ours in float32: measured 3-7% apart
    assert relative(prefill, quant_ref) < 0.1
    # unquantized: transformers in float32 over the weights the packed ones stand for (lm_head: the
    # bf16 rows the lean step refines its top logits from); only bf16 activations remain
    reference = float32_reference(folder, kinds)
    with torch.inference_mode():
        exact = reference(ids[None]).logits[0].float()
    top = prefill.topk(8, dim=-1).indices
    assert relative(prefill.gather(1, top), exact.gather(1, top)) < TOP_TOLERANCE[model_type]
    # the static cache: one token at a time after a prefill, past the sliding windows' edges
    stepper = FastDecoder(model, quantized)
    with torch.inference_mode():
        steps = [stepper.forward(ids[:20], 0)] + [stepper.forward(ids[i : i + 1], i) for i in range(20, len(IDS))]
    worst = max(relative(s, prefill[i]) for s, i in zip(steps, range(19, len(IDS)), strict=True))
    assert worst < 0.02  # rounding only (random weights amplify it; measured <= 0.9%)
    windows = [layer.window for layer in fast.layers]
    if any(windows):  # the windows are real: attending to every key would fail the check above
        full = FastDecoder(model, quantized)
        for layer in full.layers:
            layer.window = None
        with torch.inference_mode():
            unwindowed = full.all_logits(ids)
        assert relative(unwindowed.gather(1, top), exact.gather(1, top)) > TOP_TOLERANCE[model_type]
    expected = {"gemma3_text": ([24, None, 24], 2), "phi3": ([40, 40], 1), "qwen3": ([None, 24], 1),
                "mistral": ([40, 40], 1)}
    assert (windows, len(fast.rope_types)) == expected[model_type]


def float32_reference(folder: Path, kinds: dict[str, str]) -> Any:
    """transformers' float32 model of ``folder`` with the weights the packed ones stand for."""
    import torch
    from transformers import AutoModelForCausalLM

    from app.providers.local_quant import fake_quantize

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        for name, module in model.named_modules():
            if name == "lm_head":
                module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16).float())
            elif name in kinds:
                module.weight.copy_(fake_quantize(kinds[name], module.weight))
        for name, p in model.named_parameters():  # the norms and embeddings are bf16 beside packed weights
            if "lm_head" not in name and (p.dim() == 1 or "embed" in name):
                p.copy_(p.to(torch.bfloat16).float())
    return model


def test_models_say_why_one_runs_on_the_slow_path(local_ctx: Any, arch_models: dict[str, Path],
                                                  tmp_path: Path, run: Callable[..., Any]) -> None:  # fmt: skip
    """``models`` (and the picker, from the same ModelInfo) give the reason before and after a load."""
    gpt2 = build_tiny_gpt2(tmp_path / "gpt2")
    gemma = arch_models["gemma3_text"]
    local_ctx.settings.local.dtype = "auto"  # int4 on the CPU
    provider = LocalProvider(local_ctx)
    before = provider.model_info(str(gpt2))
    assert before.fast_path is not None and "'gpt2'" in before.fast_path and "gemma3_text" in before.fast_path
    assert provider.model_info(str(gemma)).fast_path is None

    def load(model: Path) -> None:
        req = GenerationRequest(ModelRef("local", str(model)), (ChatMessage("user", "hi"),),
                                GenerationParams(temperature=0.0, max_tokens=2))  # fmt: skip

        async def go() -> None:
            async for _ in provider.stream(req):
                pass

        run(go(), timeout=120)

    load(gpt2)  # falls back to bfloat16 and says so
    loaded = provider.model_info(str(gpt2))
    assert loaded.state == "ready" and loaded.fast_path == "no int8/int4 path for 'gpt2'"
    assert loaded.to_dict()["fast_path"] == "no int8/int4 path for 'gpt2'"  # models --json
    assert "(slow path: no int8/int4 path for 'gpt2')" in format_listing([loaded], {})
    load(gemma)
    assert provider.model_info(str(gemma)).fast_path is None
    assert provider.worker.call(lambda: provider._runtime().loaded.fast is not None)
    local_ctx.settings.local.dtype = "float32"
    assert provider.model_info(str(gpt2)).fast_path == "dtype float32 (the fast path runs int8/int4 weights)"
