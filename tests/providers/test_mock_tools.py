"""``mock:tools`` (app/providers/mock_tools.py): deterministic calls of the offered tools,
streamed in pieces, then an answer quoting the results."""

from __future__ import annotations

from typing import Any

from app.core.events import Finished, ToolCallDelta
from app.core.tools import ToolCall, ToolSpec
from app.core.types import ChatMessage, GenerationRequest, ModelRef
from app.providers.mock import MockProvider
from app.providers.mock_tools import example_arguments

SPEC = ToolSpec("book", "", {"type": "object", "required": ["city", "nights", "kind", "when"],
                             "properties": {"city": {"type": "string"}, "nights": {"type": "integer"},
                                            "kind": {"enum": ["hotel", "flat"]}, "when": {"default": "today"}}})  # fmt: skip


def test_arguments_from_the_schema() -> None:
    assert example_arguments(SPEC.parameters) == {"city": "example", "nights": 1, "kind": "hotel", "when": "today"}


def _events(run: Any, request: GenerationRequest) -> list[Any]:
    async def go() -> list[Any]:
        return [e async for e in MockProvider().stream(request)]

    return list(run(go()))


def test_calls_then_quotes_results(run: Any) -> None:
    first = GenerationRequest(ModelRef.parse("mock:tools"), (ChatMessage("user", "x"),), tools=(SPEC,))
    events = _events(run, first)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) == 2 and deltas[0].id == "call_1_0" and deltas[0].name == "book"
    assert "".join(d.arguments for d in deltas) == '{"city": "example", "nights": 1, "kind": "hotel", "when": "today"}'
    assert events[-1] == Finished("tool_calls")
    call = ToolCall("call_1_0", "book", "{}")
    later = GenerationRequest(first.model, (*first.messages, ChatMessage("assistant", "", tool_calls=(call,)),
                                            ChatMessage("tool", "booked", tool_call_id="call_1_0")), tools=(SPEC,))  # fmt: skip
    text = "".join(e.text for e in _events(run, later) if hasattr(e, "text"))
    assert text == "Results: book=booked"
