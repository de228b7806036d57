"""LoRA adapters on a tiny Llama: validation, activation, scale, combination, unload.

Every test runs twice: on float32 weights with transformers' forward, and on the fast CPU
path (int4/int8 quantized weights, the lean decode step). On the fast path the reference is
the same merge computed in float32 from the dequantized base weights, and the comparison
allows for bf16 activations.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import AdapterError
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.transformers import LocalProvider

PROMPT = (ChatMessage("user", "the quick brown fox"),)
# the tolerance of the current test's mode (set by the ``loaded`` fixture)
TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}
DEQUANTIZED: dict[str, Any] = {}  # fast path: the provider's dequantized base weights


def logits(provider: LocalProvider) -> Any:
    """Last-position logits the worker generates with (whatever adapters are active).

    On the fast path these come from the lean decode step, the code that generates."""
    import torch

    from app.providers.local_prompt import prompt_ids

    def job() -> Any:
        loaded = provider._runtime().loaded
        ids = torch.tensor([prompt_ids(loaded.tokenizer, PROMPT)])
        with torch.inference_mode():  # as the app generates (its caches are inference tensors)
            if loaded.fast is not None:
                assert loaded.fast.ready, loaded.fast.lora_reason
                return loaded.fast.forward(ids[0], 0).clone()
            return loaded.model(ids).logits[0, -1].clone()

    return provider.worker.call(job, timeout=30)


def activate(provider: LocalProvider, run: Callable[..., Any], weights: dict[str, float]) -> None:
    """Make exactly ``weights`` (loaded adapters by name -> scale) active the public way: a
    request naming those adapters (``score`` applies them, as ``stream`` does)."""
    infos = {i.name: i for i in run(provider.list_adapters())}
    specs = tuple(AdapterSpec(infos[n].path, w, n) for n, w in weights.items())
    model = run(provider.loaded_model()).partition(":")[2]
    run(provider.score(GenerationRequest(ModelRef("local", model), PROMPT, adapters=specs), [0]))


def merged_logits(model_dir: Path, adapters: dict[str, tuple[Path, float]]) -> Any:
    """Reference: a separate float32 copy with the adapters (scaled) merged into the weights
    (on the fast path its base weights are the dequantized quantized ones)."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.providers.local_prompt import prompt_ids

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if DEQUANTIZED:
        with torch.no_grad():
            for name, module in base.named_modules():
                if name in DEQUANTIZED:
                    module.weight.copy_(DEQUANTIZED[name])
    peft_model = None
    for name, (path, scale) in adapters.items():
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(base, str(path), adapter_name=name)
        else:
            peft_model.load_adapter(str(path), adapter_name=name)
        for m in peft_model.modules():
            if isinstance(m, LoraLayer) and name in m.scaling:
                m.scaling[name] *= scale
    assert peft_model is not None
    merged = peft_model.merge_and_unload(adapter_names=list(adapters))
    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return merged(torch.tensor([prompt_ids(tok, PROMPT)])).logits[0, -1]


@pytest.fixture(params=["float32", "int4"])
def loaded(
    request: pytest.FixtureRequest, local_ctx: Any, tiny_model: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalProvider]:
    from app.providers import local_fast

    monkeypatch.setattr(local_fast, "REFINE", 10_000)  # every logit from the bf16 head rows: the LoRA is what is compared
    local_ctx.settings.local.dtype = request.param
    provider = LocalProvider(local_ctx)
    run(provider.load(str(tiny_model)))
    if request.param != "float32":
        DEQUANTIZED.update(dequantized(provider, tiny_model, request.param))
        TOLERANCE.update(relative=0.05)  # bf16 activations (measured ~2%); an adapter moves them ~90%
    yield provider
    DEQUANTIZED.clear()
    TOLERANCE.clear()
    TOLERANCE.update(atol=1e-4, rtol=1e-4)


def dequantized(provider: LocalProvider, model_dir: Path, variant: str) -> dict[str, Any]:
    """The float32 weights the provider's quantized layers stand for, by module name."""
    import torch
    from transformers import AutoModelForCausalLM

    from app.providers.local_quant import fake_quantize

    def kinds() -> dict[str, str] | None:
        loaded = provider._runtime().loaded
        if loaded.fast is None:
            return None
        return {n: m.kind for n, m in loaded.model.named_modules() if type(m).__name__ == "QuantLinear"}

    found = provider.worker.call(kinds, timeout=30)
    assert found, f"the fast path did not engage for {variant}"
    original = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    # lm_head: the lean step recomputes the draft's logits from bf16 rows (all of them here)
    return {n: fake_quantize(found[n], m.weight.detach()) if n != "lm_head" else m.weight.detach().to(torch.bfloat16).float()
            for n, m in original.named_modules() if n in found}


def close(a: Any, b: Any) -> bool:
    """Equal within the mode's tolerance (fast path: |a - b| <= 5% of |b|, as vectors)."""
    import torch

    a, b = a.float(), b.float()
    if "relative" in TOLERANCE:
        return bool(torch.linalg.vector_norm(a - b) <= TOLERANCE["relative"] * torch.linalg.vector_norm(b))
    return bool(torch.allclose(a, b, **TOLERANCE))


def test_adapter_changes_output_matches_merged_and_switches_off(
    loaded: LocalProvider, tiny_model: Path, adapters: dict[str, Path], run: Callable[..., Any]
) -> None:
    base = logits(loaded)
    info = run(loaded.load_adapter(str(adapters["a"] / "adapter_config.json")))
    assert (info.name, info.rank, info.alpha, info.active) == ("ada", 4, 8.0, False)
    assert set(info.target_modules) == {"q_proj", "v_proj"} and len(info.sha256) == 64
    assert close(logits(loaded), base)  # loaded but not active
    activate(loaded, run, {"ada": 1.0})
    on = logits(loaded)
    assert not close(on, base)
    assert close(on, merged_logits(tiny_model, {"ada": (adapters["a"], 1.0)}))
    assert [(i.name, i.active, i.scale) for i in run(loaded.list_adapters())] == [("ada", True, 1.0)]
    activate(loaded, run, {})
    assert close(logits(loaded), base)


def test_scale_changes_output(loaded: LocalProvider, tiny_model: Path, adapters: dict[str, Path], run: Callable[..., Any]) -> None:
    run(loaded.load_adapter(str(adapters["a"]), "ada"))
    activate(loaded, run, {"ada": 1.0})
    full = logits(loaded)
    activate(loaded, run, {"ada": 0.5})
    half = logits(loaded)
    assert not close(half, full)
    assert close(half, merged_logits(tiny_model, {"ada": (adapters["a"], 0.5)}))
    activate(loaded, run, {"ada": 1.0})
    assert close(logits(loaded), full)


def test_two_adapters_and_a_weighted_combination(
    loaded: LocalProvider, tiny_model: Path, adapters: dict[str, Path], run: Callable[..., Any]
) -> None:
    base_ref = loaded.worker.call(lambda: loaded._runtime().loaded.model)
    run(loaded.load_adapter(str(adapters["a"])))
    run(loaded.load_adapter(str(adapters["b"]), "second"))
    activate(loaded, run, {"ada": 1.0})
    a = logits(loaded)
    activate(loaded, run, {"second": 1.0})
    b = logits(loaded)
    assert not close(a, b)
    activate(loaded, run, {"ada": 0.7, "second": 0.5})  # unequal ranks (4 and 8)
    combo = logits(loaded)
    expected = merged_logits(tiny_model, {"ada": (adapters["a"], 0.7), "second": (adapters["b"], 0.5)})
    assert close(combo, expected)
    infos = {i.name: i for i in run(loaded.list_adapters())}
    assert set(infos) == {"ada", "second"} and infos["ada"].scale == 0.7 and infos["second"].active
    activate(loaded, run, {"ada": 1.0})  # switching back: same numbers, base never reloaded
    assert close(logits(loaded), a)
    assert loaded.worker.call(lambda: loaded._runtime().loaded.model) is base_ref
    run(loaded.unload_adapter("ada"))
    assert [i.name for i in run(loaded.list_adapters())] == ["second"]
    run(loaded.unload_adapter("second"))
    activate(loaded, run, {})
    assert run(loaded.list_adapters()) == []


def test_wrong_shape_adapter_is_rejected_and_the_base_is_intact(
    loaded: LocalProvider, adapters: dict[str, Path], run: Callable[..., Any]
) -> None:
    run(loaded.load_adapter(str(adapters["a"])))
    activate(loaded, run, {"ada": 1.0})
    with_a = logits(loaded)
    with pytest.raises(AdapterError, match="does not fit this model.*shape"):
        run(loaded.load_adapter(str(adapters["wide"])))
    assert close(logits(loaded), with_a)
    assert [i.name for i in run(loaded.list_adapters())] == ["ada"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_weights", "has no adapter_model.safetensors"),
        ("no_config", "has no adapter_config.json"),
        ("bad_json", "not valid JSON"),
        ("corrupt", "corrupt or unreadable"),
        ("wrong_targets", "does not have: nonexistent_proj"),
        ("missing", "No adapter at"),
        ("missing_layers", "no LoRA weights for 2 of the layers"),
        ("renamed_keys", "no LoRA weights for 4 of the layers"),
    ],
)
def test_bad_adapters_get_plain_errors(
    loaded: LocalProvider, adapters: dict[str, Path], tmp_path: Path, run: Callable[..., Any], damage: str, message: str
) -> None:
    base = logits(loaded)
    bad = tmp_path / "bad"
    shutil.copytree(adapters["a"], bad)
    cfg = bad / "adapter_config.json"
    if damage == "no_weights":
        (bad / "adapter_model.safetensors").unlink()
    elif damage == "no_config":
        cfg.unlink()
    elif damage == "bad_json":
        cfg.write_text("{not json")
    elif damage == "corrupt":
        (bad / "adapter_model.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    elif damage == "wrong_targets":
        data = json.loads(cfg.read_text())
        data["target_modules"] = ["q_proj", "nonexistent_proj"]
        cfg.write_text(json.dumps(data))
    elif damage in ("missing_layers", "renamed_keys"):  # peft only warns and leaves those layers at init
        from safetensors.torch import load_file, save_file

        weights = bad / "adapter_model.safetensors"
        state = load_file(weights)
        if damage == "missing_layers":
            state = {k: v for k, v in state.items() if "v_proj" not in k}
        else:  # a layout with the adapter name in the key, which peft does not map
            state = {k.replace(".weight", ".default.weight"): v for k, v in state.items()}
        save_file(state, weights)
    else:
        bad = tmp_path / "missing"
    with pytest.raises(AdapterError, match=message):
        run(loaded.load_adapter(str(bad)))
    assert close(logits(loaded), base)
    assert run(loaded.list_adapters()) == []


@pytest.mark.parametrize("hint", ["meta-llama/Llama-3.1-8B", "/models/Mistral-7B/", "C:\\models\\Qwen2.5-0.5B\\"])
def test_base_model_mismatch_is_a_warning(
    loaded: LocalProvider, adapters: dict[str, Path], tmp_path: Path, run: Callable[..., Any], hint: str
) -> None:
    other = tmp_path / "other"
    shutil.copytree(adapters["a"], other)
    cfg = other / "adapter_config.json"
    data = json.loads(cfg.read_text())
    data["base_model_name_or_path"] = hint  # a local path with a trailing slash used to match any model
    cfg.write_text(json.dumps(data))
    info = run(loaded.load_adapter(str(other)))
    assert info.base_model_hint == hint
    assert len(info.warnings) == 1 and f"trained on '{hint}'" in info.warnings[0]


def test_same_base_model_names_give_no_warning() -> None:
    from app.providers.lora import _same_model

    assert _same_model("HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct (bundled)")
    assert _same_model("HuggingFaceTB/SmolLM2-135M", "SmolLM2-135M-Instruct-Q4_K_M")
    assert _same_model("/models/tiny-llama/", "tiny-llama")
    assert not _same_model("HuggingFaceTB/SmolLM2-1.7B", "SmolLM2-135M-Instruct (bundled)")
    assert not _same_model("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B")


def test_adapter_names_are_checked(loaded: LocalProvider, adapters: dict[str, Path], run: Callable[..., Any]) -> None:
    with pytest.raises(AdapterError, match="cannot be an adapter name"):
        run(loaded.load_adapter(str(adapters["a"]), "lora"))
    run(loaded.load_adapter(str(adapters["a"]), "mine"))
    with pytest.raises(AdapterError, match="already loaded"):
        run(loaded.load_adapter(str(adapters["b"]), "mine"))
    model = run(loaded.loaded_model()).partition(":")[2]
    gone = GenerationRequest(ModelRef("local", model), PROMPT, adapters=(AdapterSpec(str(adapters["a"].parent / "nope"), 1.0),))
    with pytest.raises(AdapterError, match="No adapter at"):  # a request naming an adapter that is not there
        run(loaded.score(gone, [0]))
    assert [(i.name, i.active) for i in run(loaded.list_adapters())] == [("mine", False)]


def test_request_adapters_are_authoritative_and_cached(
    loaded: LocalProvider, tiny_model: Path, adapters: dict[str, Path], run: Callable[..., Any]
) -> None:
    def req(*specs: AdapterSpec) -> GenerationRequest:
        return GenerationRequest(ModelRef("local", str(tiny_model)), PROMPT, GenerationParams(temperature=0.0, max_tokens=12), adapters=specs)

    async def text(r: GenerationRequest) -> str:
        return "".join([getattr(e, "text", "") async for e in loaded.stream(r)])

    base = run(text(req()))
    with_a = run(text(req(AdapterSpec(str(adapters["a"]), 1.0))))
    assert with_a != base
    sha = [i.sha256 for i in run(loaded.list_adapters())]
    assert run(text(req(AdapterSpec(str(adapters["a"]), 1.0)))) == with_a
    assert [i.sha256 for i in run(loaded.list_adapters())] == sha  # not loaded twice
    assert run(text(req())) == base  # empty = base model
    both = run(text(req(AdapterSpec(str(adapters["a"]), 0.5), AdapterSpec(str(adapters["b"]), 1.0, name="bee"))))
    infos = {i.name: i for i in run(loaded.list_adapters())}
    assert set(infos) == {"ada", "bee"} and infos["ada"].scale == 0.5 and infos["bee"].active
    assert both not in (base, with_a)
