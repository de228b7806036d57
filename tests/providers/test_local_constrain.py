"""Constrained decoding of in-process models (llguidance): random tiny models write garbage
unconstrained, so every answer that parses and validates proves the constraint. On
transformers' generate (float32) and on the CPU fast path (dtype auto: int4, lean step)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import InvalidParams
from app.core.events import Finished, TextDelta, ToolCallDelta
from app.core.tools import (
    ResponseSchema,
    ToolCallAccumulator,
    ToolSpec,
    validate_answer,
    validate_instance,
)
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers import local_constrain
from app.providers.local_tools import HERMES
from app.providers.transformers import LocalProvider

SCHEMA = ResponseSchema({"type": "object", "additionalProperties": False, "required": ["answer", "score", "tags"],
                         "properties": {"answer": {"type": "string", "maxLength": 12},
                                        "score": {"type": "integer", "minimum": 0, "maximum": 100},
                                        "tags": {"type": "array", "maxItems": 2,
                                                 "items": {"enum": ["red", "green", "blue"]}}}})  # fmt: skip
TOOLS = (
    ToolSpec("get_weather", "The weather in a city", {
        "type": "object", "additionalProperties": False, "required": ["city"],
        "properties": {"city": {"type": "string", "maxLength": 10}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}}),
    ToolSpec("add", "Add two numbers", {
        "type": "object", "additionalProperties": False, "required": ["a", "b"],
        "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99}, "b": {"type": "integer", "minimum": 0, "maximum": 9}}}),
)  # fmt: skip
SEEDS = range(4)
PATHS = ["float32", "auto"]


def request(model: Path, seed: int, **kwargs: Any) -> GenerationRequest:
    temperature = kwargs.pop("temperature", 1.0)
    params = GenerationParams(temperature=temperature, seed=seed, max_tokens=kwargs.pop("max_tokens", 120),
                              logprobs=kwargs.pop("logprobs", None))
    return GenerationRequest(ModelRef("local", str(model)), (ChatMessage("user", "what is the weather in paris?"),),
                             params, **kwargs)  # fmt: skip


async def answers(provider: LocalProvider, reqs: list[GenerationRequest]) -> list[list[Any]]:
    return [[e async for e in provider.stream(r)] for r in reqs]


def calls_of(events: list[Any]) -> list[Any]:
    acc = ToolCallAccumulator()
    for e in events:
        if isinstance(e, ToolCallDelta):
            acc.add(e.index, e.id, e.name, e.arguments)
    return list(acc.calls())


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def check_fast_path(provider: LocalProvider, dtype: str, run: Callable[..., Any]) -> None:
    """The path the parameter names was the one taken (the lean step for dtype auto)."""
    loaded = run(provider._on_worker(lambda rt: rt.loaded))
    assert (loaded.fast is not None) == (dtype == "auto")


@pytest.fixture
def provider(local_ctx: Any, run: Callable[..., Any]) -> Any:
    p = LocalProvider(local_ctx)
    yield p
    run(p.aclose())


@pytest.mark.parametrize("dtype", PATHS)
def test_every_sampled_answer_follows_the_schema(provider: LocalProvider, tiny_model: Path, dtype: str,
                                                  run: Callable[..., Any]) -> None:  # fmt: skip
    provider.context.settings.local.dtype = dtype
    free = run(answers(provider, [request(tiny_model, 0)]), timeout=120)[0]
    assert validate_answer(text_of(free), SCHEMA) is not None  # unconstrained: garbage
    reqs = [request(tiny_model, s, response_schema=SCHEMA) for s in SEEDS]
    reqs += [request(tiny_model, 0, response_schema=SCHEMA, temperature=0.0, logprobs=2)]
    results = run(answers(provider, reqs), timeout=180)
    texts = [text_of(events) for events in results]
    for text, events in zip(texts, results, strict=True):
        assert validate_answer(text, SCHEMA) is None, text
        assert events[-1] == Finished("stop")
    assert len(set(texts[: len(SEEDS)])) > 1  # sampled: the seeds differ, all valid
    lens = [t for e in results[-1] if isinstance(e, TextDelta) for t in e.tokens]  # the token lens still works
    assert lens and "".join(t.text for t in lens) == texts[-1] and all(t.logprob <= 0 for t in lens)
    json_mode = run(answers(provider, [request(tiny_model, 1, response_schema=ResponseSchema())]), timeout=60)[0]
    assert isinstance(json.loads(text_of(json_mode)), dict)
    check_fast_path(provider, dtype, run)


@pytest.mark.parametrize("dtype", PATHS)
@pytest.mark.parametrize("style", ["qwen", "llama3"])
def test_required_tool_choice_gives_valid_calls_of_offered_tools(
    provider: LocalProvider, tiny_qwen: Path, tiny_llama3: Path, style: str, dtype: str, run: Callable[..., Any]
) -> None:
    provider.context.settings.local.dtype = dtype
    model = tiny_qwen if style == "qwen" else tiny_llama3
    reqs = [request(model, s, tools=TOOLS, tool_choice="required", parallel_tool_calls=False) for s in SEEDS]
    reqs += [request(model, 9, tools=TOOLS, tool_choice="required", max_tokens=400)]  # several calls allowed
    reqs += [request(model, 0, tools=TOOLS, tool_choice="add", temperature=0.0)]
    results = run(answers(provider, reqs), timeout=240)
    specs = {t.name: t for t in TOOLS}
    for events in results:
        calls = calls_of(events)
        assert calls and events[-1] == Finished("tool_calls"), events
        assert text_of(events).strip() == ""
        for call in calls:
            args = call.parsed_arguments()
            assert call.name in specs and args is not None, call
            assert validate_instance(args, specs[call.name].parameters) is None, call
        assert [c.id for c in calls] == [f"call_{i}" for i in range(len(calls))]
    assert {c.name for c in calls_of(results[-1])} == {"add"}  # a named function is the one called
    check_fast_path(provider, dtype, run)


def test_auto_constrains_a_call_once_it_starts(provider: LocalProvider, tiny_qwen: Path, run: Callable[..., Any]) -> None:
    """With auto the model writes freely; once it writes <tool_call> the call is held to the tools."""
    plan = local_constrain.plan_for(request(tiny_qwen, 0, tools=TOOLS), _tokenizer(tiny_qwen))
    assert plan.syntax is HERMES and plan.grammar is not None and "<tool_call>" in plan.grammar
    prefix = "Let me check.\n<tool_call>\n"
    reqs = [GenerationRequest(r.model, r.messages, r.params, prefix=prefix, tools=TOOLS) for r in
            (request(tiny_qwen, s) for s in SEEDS)]  # fmt: skip
    for events in run(answers(provider, reqs), timeout=180):
        calls = calls_of(events)
        assert calls and calls[0].name in {"get_weather", "add"}, events
        assert validate_instance(calls[0].parsed_arguments(), next(t for t in TOOLS if t.name == calls[0].name).parameters) is None


def test_bad_requests_fail_before_generating(provider: LocalProvider, tiny_qwen: Path, run: Callable[..., Any]) -> None:
    async def go(req: GenerationRequest) -> list[Any]:
        return [e async for e in provider.stream(req)]

    with pytest.raises(InvalidParams, match="'nope'"):
        run(go(request(tiny_qwen, 0, tools=TOOLS, tool_choice="nope")), timeout=60)
    bad = GenerationRequest(ModelRef("local", str(tiny_qwen)), (ChatMessage("user", "x"),),
                            GenerationParams(max_tokens=5), prefix="not json", response_schema=SCHEMA)  # fmt: skip
    with pytest.raises(InvalidParams, match="given start"):
        run(go(bad), timeout=60)
    none = run(go(request(tiny_qwen, 0, tools=TOOLS, tool_choice="none")), timeout=60)  # no tools, no grammar
    assert not calls_of(none) and isinstance(none[-1], Finished)


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow
def test_bundled_smollm2_answers_valid_json_for_every_sampled_seed(local_ctx: Any, run: Callable[..., Any]) -> None:
    """The ``--schema`` case on the shipped defaults (device/dtype auto: the fast path on a CPU)."""
    from app.core.settings import LocalModelSettings

    local_ctx.settings.local = LocalModelSettings(threads=1)
    provider = LocalProvider(local_ctx)
    schema = ResponseSchema({"type": "object", "additionalProperties": False, "required": ["city", "country", "population"],
                             "properties": {"city": {"type": "string", "maxLength": 40},
                                            "country": {"type": "string", "maxLength": 40},
                                            "population": {"type": "integer", "minimum": 0}}})  # fmt: skip
    msgs = (ChatMessage("user", "Give the capital of France as JSON with city, country and population."),)
    reqs = [GenerationRequest(ModelRef("local", "smollm2"), msgs,
                              GenerationParams(temperature=0.9, seed=seed, max_tokens=80), response_schema=schema)
            for seed in range(3)]  # fmt: skip
    try:
        results = run(answers(provider, reqs), timeout=300)
        assert provider.supports_tools("smollm2") is False  # SmolLM2's template has no tools
    finally:
        run(provider.aclose())
    for events in results:
        assert validate_answer(text_of(events), schema) is None, text_of(events)
        assert events[-1] == Finished("stop")
