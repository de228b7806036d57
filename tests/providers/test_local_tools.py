"""Tool calls of in-process models: the syntax read from the chat template, the streaming
parser (split anywhere), the template rendering of calls and results, and the clear error
for a model whose template has no tool support."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import InvalidParams
from app.core.events import Finished, TextDelta, TokenLogprob, ToolCallDelta
from app.core.tools import ToolCall, ToolCallAccumulator, ToolSpec
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers import local_tools
from app.providers.local_prompt import chat_dicts, prompt_ids
from app.providers.local_tools import HERMES, LLAMA3, ToolCallParser, tool_syntax
from app.providers.transformers import LocalProvider
from tests.providers.local_fixtures import CHAT_TEMPLATE, LLAMA3_TOOLS_TEMPLATE, QWEN_TOOLS_TEMPLATE

WEATHER = ToolSpec("get_weather", "The weather", {"type": "object", "properties": {"city": {"type": "string"}}})


def parse(syntax: local_tools.ToolSyntax, pieces: list[str]) -> tuple[str, list[ToolCall], list[Any]]:
    events: list[Any] = []
    parser = ToolCallParser(syntax, events.append)
    for piece in pieces:
        parser.feed(piece)
    parser.finish()
    acc = ToolCallAccumulator()
    for e in events:
        if isinstance(e, ToolCallDelta):
            acc.add(e.index, e.id, e.name, e.arguments)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), list(acc.calls()), events


def splits(text: str) -> list[list[str]]:
    """The text whole, in single characters, and cut at every position in two."""
    return [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]


HERMES_ANSWER = ('Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
                 '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon <b>"}}\n</tool_call>')  # fmt: skip


@pytest.mark.parametrize("pieces", splits(HERMES_ANSWER))
def test_hermes_calls_are_parsed_wherever_the_stream_splits(pieces: list[str]) -> None:
    text, calls, _ = parse(HERMES, pieces)
    assert text == "Let me look.\n"
    assert [(c.id, c.name, json.loads(c.arguments), c.index) for c in calls] == [
        ("call_0", "get_weather", {"city": "Paris"}, 0), ("call_1", "get_weather", {"city": "Lyon <b>"}, 1)]


LLAMA_ANSWER = '{"name": "get_weather", "parameters": {"city": "Paris {x}"}}'


@pytest.mark.parametrize("pieces", splits(LLAMA_ANSWER))
def test_llama3_json_calls_are_parsed_wherever_the_stream_splits(pieces: list[str]) -> None:
    text, calls, _ = parse(LLAMA3, pieces)
    assert text == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris {x}"})]


def test_text_that_only_looks_like_a_call_start_stays_text() -> None:
    for syntax, answer in ((HERMES, "a <tool and <tool_calls> too {"), (LLAMA3, 'x = {"nam": 1} and {"na')):
        for pieces in splits(answer):
            text, calls, _ = parse(syntax, pieces)
            assert (text, calls) == (answer, [])


def test_a_broken_call_is_still_a_call_with_its_raw_text() -> None:
    text, calls, _ = parse(HERMES, ['ok <tool_call>\n{"name": "get_weather", "arguments": {"city": '])
    assert text == "ok "
    assert calls[0].name == "get_weather" and calls[0].parsed_arguments() is None
    assert calls[0].arguments.endswith('"arguments": {"city":')


def test_tokens_stay_with_their_text_and_a_call_keeps_its_own() -> None:
    toks = [TokenLogprob(t, -0.5, (), i) for i, t in enumerate(["Hi", " <", "tool_call>", "\n{\"name\": \"f\", ",
                                                                  "\"arguments\": {}}\n</tool_call>"])]  # fmt: skip
    events: list[Any] = []
    parser = ToolCallParser(HERMES, events.append)
    for token in toks:
        parser.feed(token.text, [token])
    parser.finish()
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(e.text for e in texts) == "Hi "
    for e in texts:  # the tokens sent with a text join to exactly that text
        assert "".join(t.text for t in e.tokens) == e.text
    assert [t.token_id for e in texts for t in e.tokens] == [0, 1]
    assert [e.name for e in events if isinstance(e, ToolCallDelta) and e.name] == ["f"]


def test_the_call_syntax_is_read_from_the_template() -> None:
    assert tool_syntax(QWEN_TOOLS_TEMPLATE) is HERMES
    assert tool_syntax(LLAMA3_TOOLS_TEMPLATE) is LLAMA3
    assert tool_syntax(CHAT_TEMPLATE) is None
    assert tool_syntax("{% for t in tools %}{{ t }}{% endfor %} call it [func(x)]") is None
    with pytest.raises(InvalidParams, match="no tool support"):
        local_tools.require_syntax(CHAT_TEMPLATE)
    with pytest.raises(InvalidParams, match="does not parse"):
        local_tools.require_syntax("{{ tools }} [func(x)]")


def test_calls_and_results_render_through_the_template(tiny_qwen: Path, tiny_llama3: Path) -> None:
    from transformers import AutoTokenizer

    call = ToolCall("call_0", "get_weather", '{"city": "Paris"}')
    messages = [ChatMessage("user", "weather?"), ChatMessage("assistant", "", (call,)),
                ChatMessage("tool", "sunny, 21 C", tool_call_id="call_0")]  # fmt: skip
    dicts = chat_dicts(messages)
    assert dicts[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert dicts[2] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_0", "name": "get_weather"}
    qwen = AutoTokenizer.from_pretrained(tiny_qwen)
    text = qwen.decode(prompt_ids(qwen, messages, (WEATHER,)))
    assert '"name": "get_weather", "description": "The weather"' in text  # the tool offered
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert "<tool_response>\nsunny, 21 C\n</tool_response>" in text
    llama = AutoTokenizer.from_pretrained(tiny_llama3)
    text = llama.decode(prompt_ids(llama, messages, (WEATHER,)))
    assert '{"name": "get_weather", "parameters": {"city": "Paris"}}' in text and "sunny, 21 C" in text


def test_a_model_without_tool_support_says_so_before_generating(
    local_ctx: Any, tiny_model: Path, tiny_qwen: Path, run: Callable[..., Any]
) -> None:
    provider = LocalProvider(local_ctx)
    assert provider.supports_tools(str(tiny_model)) is False
    assert provider.supports_tools(str(tiny_qwen)) is True
    assert provider.model_info(str(tiny_qwen)).to_dict()["supports_tools"] is True
    req = GenerationRequest(ModelRef("local", str(tiny_model)), (ChatMessage("user", "hi"),),
                            GenerationParams(temperature=0.0, max_tokens=5), tools=(WEATHER,))  # fmt: skip

    async def go() -> list[Any]:
        events: list[Any] = []
        with pytest.raises(InvalidParams, match="no tool support") as info:
            async for e in provider.stream(req):
                events.append(e)
        assert "Qwen2.5, Llama 3.1" in (info.value.hint or "")
        return events

    try:
        events = run(go(), timeout=60)
        assert not any(isinstance(e, TextDelta | Finished) for e in events)  # nothing was generated
        assert provider.model_info(str(tiny_model)).supports_tools is False  # the loaded tokenizer says the same
        plain = run(_collect(provider, GenerationRequest(req.model, req.messages, req.params)), timeout=60)
    finally:
        run(provider.aclose())
    assert isinstance(plain[-1], Finished)  # the model survived the refused request


async def _collect(provider: LocalProvider, req: GenerationRequest) -> list[Any]:
    return [e async for e in provider.stream(req)]
