"""GenerationParams validation and ModelRef parsing."""

from __future__ import annotations

import math

import pytest

from app.core.errors import InvalidModelId, InvalidParams
from app.core.types import GenerationParams, ModelRef


def test_defaults_are_valid() -> None:
    p = GenerationParams()
    assert p.validated() is p


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"temperature": -0.1}, "temperature must be between 0 and 2"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0.0}, "top_p must be greater than 0"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens must be a whole number from 1"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": 2_000_000}, "max_tokens"),
        ({"seed": -1}, "seed must be a whole number"),
        ({"seed": 2**63}, "seed"),
        ({"top_k": -1}, "top_k must be a whole number >= 0"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": 11.0}, "repetition_penalty"),
        ({"stop": ("",)}, "stop sequences must be non-empty strings"),
        ({"stop": tuple(str(i) for i in range(17))}, "at most 16 stop sequences"),
    ],
)
def test_bad_values_raise_invalid_params(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidParams) as info:
        GenerationParams().with_(**changes).validated()
    assert needle in info.value.message
    assert "nothing was sent" in info.value.hint
    bad_value = next(iter(changes.values()))
    if not isinstance(bad_value, tuple):
        assert repr(bad_value) in info.value.message  # the message shows the bad value


@pytest.mark.parametrize(
    "changes",
    [{"temperature": 0}, {"temperature": 2}, {"top_p": 1}, {"max_tokens": None}, {"max_tokens": 1},
     {"seed": 0}, {"top_k": 0}, {"repetition_penalty": 1.1}, {"stop": ("\n\n", "END")}],
)
def test_edge_values_are_accepted(changes: dict[str, object]) -> None:
    GenerationParams().with_(**changes).validated()


def test_params_dict_roundtrip() -> None:
    p = GenerationParams(temperature=0.3, seed=5, stop=("x",), top_k=40, extras={"min_p": 0.1})
    data = p.to_dict()
    assert data["stop"] == ["x"] and data["seed"] == 5
    assert GenerationParams.from_dict({**data, "unknown": 1}) == p


@pytest.mark.parametrize(
    ("text", "provider", "name"),
    [
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini"),
        (" OpenAI : gpt-4o ", "openai", "gpt-4o"),
        ("mock:echo", "mock", "echo"),
        ("local:/models/x.gguf", "local", "/models/x.gguf"),
        ("local:C:/models/x.gguf", "local", "C:/models/x.gguf"),
        ("openai:llama3.1:8b", "openai", "llama3.1:8b"),
        ("huggingface:HuggingFaceTB/SmolLM2-135M-Instruct", "huggingface", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ],
)
def test_model_ref_parse(text: str, provider: str, name: str) -> None:
    ref = ModelRef.parse(text)
    assert (ref.provider, ref.name) == (provider, name)
    assert str(ref) == f"{provider}:{name}"


@pytest.mark.parametrize(("text", "needle"), [("gpt-4o", "not a model id"), ("openai:", "not a model id"),
                                              ("anthropic:claude", "Unknown provider")])
def test_model_ref_parse_errors(text: str, needle: str) -> None:
    with pytest.raises(InvalidModelId) as info:
        ModelRef.parse(text)
    assert needle in info.value.message
    assert info.value.hint
