"""A local grid: an in-process model with and without a LoRA adapter, on the model worker:
the answers differ as the adapter should, and the base model is loaded once for all cells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from tests.cli.test_ask import ledger_rows


@pytest.fixture(scope="module")
def tiny_local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random Llama and a non-zero LoRA adapter for it (no network)."""
    from tests.providers.local_fixtures import build_adapter, build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("grid-tiny") / "tiny-llama")
    adapter = build_adapter(model, tmp_path_factory.mktemp("grid-lora") / "ada", r=4, seed=1)
    return model, adapter


def run_grid(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "local.yaml"
    path.write_text(body, encoding="utf-8")
    code = main(["grid", str(path), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, json.loads(out.splitlines()[-1])


def test_base_and_adapter_columns_differ_and_the_model_loads_once(
    tiny_local: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, adapter = tiny_local
    body = f"""\
prompts: ["{{{{text}}}}"]
providers:
  - id: local:{model}
    label: base
    config: {{temperature: 0, max_tokens: 8}}
  - id: local:{model}
    label: lora
    config: {{temperature: 0, max_tokens: 8, adapters: ["{adapter}:1.0"]}}
  - id: local:{model}
    label: lora at 0
    config: {{temperature: 0, max_tokens: 8, adapters: ["{adapter}:0"]}}
tests:
  - vars: {{text: hello world}}
  - vars: {{text: the quick brown fox}}
"""
    code, data = run_grid(tmp_path, body, capsys)
    assert code == 0
    cells = {(c["vars"]["text"], c["label"]): c for c in data["cells"]}
    for text in ("hello world", "the quick brown fox"):
        base, tuned, zero = (cells[(text, label)] for label in ("base", "lora", "lora at 0"))
        assert base["text"] and tuned["text"] != base["text"]  # the adapter changes the answer
        assert zero["text"] == base["text"]  # scale 0 is the base model
    loaded = [c for c in data["cells"] if c["load_s"] is not None]
    assert len(loaded) == 1  # one load for six cells: adapters were hot-swapped, the base never reloaded
    rows = ledger_rows()
    assert len(rows) == 6 and sum(r["adapter"] is not None for r in rows) == 4


def _train_banana_adapter(folder: str, out: Path) -> Path:
    """A LoRA trained (a few steps, last layers only) to answer Banana to the capital question."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=True,
                                     add_generation_prompt=True, return_dict=True)["input_ids"]  # fmt: skip
    answer = tok("The capital of France is Banana.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([list(prompt) + answer])
    labels = ids.clone()
    labels[0, : len(prompt)] = -100
    layers = model.config.num_hidden_layers
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  layers_to_transform=list(range(layers - 4, layers)),
                                                  task_type="CAUSAL_LM"))  # fmt: skip
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(12):
        loss = peft_model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    peft_model.save_pretrained(out)
    return out


@pytest.mark.slow
def test_the_bundled_model_with_and_without_a_trained_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run: Any
) -> None:
    from app.core.secrets import MemoryKeyring, SecretStore
    from app.core.services import Services

    services = Services.create(secrets=SecretStore(backend=MemoryKeyring()))
    local = services.registry.get("local")
    try:  # converts the bundled GGUF into this home's cache (the grid below loads from it)
        run(local.load("smollm2"), timeout=300)  # type: ignore[attr-defined]
        folder = local.worker.call(lambda: local._runtime().loaded.folder, timeout=60)  # type: ignore[attr-defined]
    finally:
        run(services.aclose())
    adapter = _train_banana_adapter(folder, tmp_path / "banana")
    body = f"""\
prompts: ["What is the capital of {{{{country}}}}?"]
providers:
  - id: local:smollm2
    label: base
    config: {{temperature: 0, max_tokens: 16}}
  - id: local:smollm2
    label: banana lora
    config: {{temperature: 0, max_tokens: 16, adapters: ["{adapter}"]}}
tests:
  - vars: {{country: France}}
    assert: [{{type: icontains, value: paris}}]
"""
    code, data = run_grid(tmp_path, body, capsys)
    base, tuned = sorted(data["cells"], key=lambda c: c["label"] != "base")
    assert base["pass"] is True and "Paris" in base["text"]
    assert tuned["pass"] is False and "Banana" in tuned["text"]
    assert code == 1 and [c["load_s"] is not None for c in (base, tuned)].count(True) == 1


def test_a_local_variant_with_an_adapter_makes_a_valid_call_with_tool_choice_required(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tools go through the model's chat template and decoding is constrained to a valid call."""
    from tests.providers.local_fixtures import build_adapter, build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("grid-qwen") / "tiny-qwen", seed=5, style="qwen")
    adapter = build_adapter(model, tmp_path_factory.mktemp("grid-qwen-lora") / "ada", r=4, seed=1)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "required": ["city"], "additionalProperties": False,
        "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}}}}}]  # fmt: skip
    body = f"""\
prompts: ["Weather in {{{{city}}}}?"]
providers:
  - id: local:{model}
    config: {{temperature: 0, max_tokens: 60, adapters: ["{adapter}:0.5"], tool_choice: required,
              parallel_tool_calls: false, tools: {json.dumps(tools)}}}
tests:
  - vars: {{city: Paris}}
    assert: [{{type: is-valid-openai-tools-call}}, {{type: tool-call-f1, value: [get_weather]}}]
"""
    code, data = run_grid(tmp_path, body, capsys)
    cell = data["cells"][0]
    assert code == 0, cell
    assert [c["name"] for c in cell["tool_calls"]] == ["get_weather"]
    assert cell["tool_calls"][0]["arguments"]["city"] in ("Paris", "Rome")
    assert ledger_rows()[0]["adapter"] is not None
