"""The tool loop's part of the chat session (:mod:`app.ui.session_tools`) without the window:
a real ChatSession, backend (mock provider), history and transcript, with a fake
:class:`~app.ui.session_tools.ToolSource` standing in for the Tools panel's controller.
(The window end to end, panel included, is in test_tools_window.py.)"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.core.errors import ToolSchemaError
from app.core.services import Services
from app.core.tool_setup import SETUP_KEY
from app.core.tools import ResponseSchema, ToolSpec
from app.core.types import GenerationParams, GenerationRequest, ModelRef
from app.ui.backend_manager import BackendManager
from app.ui.session import ChatSession
from app.ui.session_tools import ToolRunConfig
from app.ui.widgets.transcript import TranscriptView
from tests.conftest import expect_signal

P = GenerationParams(temperature=0.0)
WEATHER = ToolSpec("get_weather", "The weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                  "required": ["city"]})  # fmt: skip


@dataclass
class FakeSource:
    """The Tools panel's controller as the session sees it: a fixed config (or an error) and
    the user's answers to approval questions."""

    config: ToolRunConfig = field(default_factory=ToolRunConfig)
    error: ToolSchemaError | None = None
    approvals: dict[str, str] = field(default_factory=dict)

    def prepare(self) -> ToolRunConfig:
        """The config, or the error."""
        if self.error is not None:
            raise self.error
        return self.config

    def approval_of(self, call_id: str) -> str | None:
        """What the user answered about ``call_id``."""
        return self.approvals.get(call_id)


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def session(qloop: Any, qapp: Any, services: Services, source: FakeSource) -> Any:
    backend = BackendManager(services, model_id="mock:tools")
    transcript = TranscriptView()
    made = ChatSession(backend, transcript)
    made.tool_source = source
    yield made
    qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 10))
    transcript.deleteLater()


def _run(qloop: Any, coro: Any, timeout: float = 30) -> Any:
    return qloop.run_until_complete(asyncio.wait_for(coro, timeout))


async def _looped(session: ChatSession, start: Any, timeout: float = 15) -> Any:
    """Start an answer; the tool loop's result once it ended."""
    done = expect_signal(session.loop_done)
    assert start() is not None
    (_gen, result), = await done.wait(timeout)
    return result


def _requests(session: ChatSession) -> list[GenerationRequest]:
    return session.backend.services.registry.get("mock").requests  # type: ignore[attr-defined,no-any-return]


def _roles(session: ChatSession) -> list[str]:
    assert session.conversation_id is not None
    return [m.role for m in session.backend.services.history.messages(session.conversation_id)]


def test_a_config_applies_its_tools_choice_and_schema_to_a_request() -> None:
    request = GenerationRequest(model=ModelRef("mock", "tools"), messages=())
    assert not ToolRunConfig().active and ToolRunConfig().apply(request) is request
    schema = ResponseSchema({"type": "object"})
    shaped = ToolRunConfig(schema=schema, tool_choice="required").apply(request)
    assert ToolRunConfig(schema=schema).active and shaped.response_schema == schema
    assert shaped.tools == () and shaped.tool_choice is None  # no functions: no choice to send
    offered = ToolRunConfig((WEATHER,), tool_choice="get_weather").apply(request)
    assert offered.tools == (WEATHER,) and offered.tool_choice == "get_weather" and offered.response_schema is None


def test_without_tools_an_answer_is_one_step_and_shows_no_calls(session: ChatSession, qloop: Any) -> None:
    session.tool_source = None

    async def scenario() -> None:
        result = await _looped(session, lambda: session.send("Weather?", P, ""))
        assert result.finish_reason == "stop" and len(result.steps) == 1
        assert _requests(session)[-1].tools == () and session.transcript.tool_cards() == []
        assert _roles(session) == ["user", "assistant"]

    _run(qloop, scenario())


def test_a_stubbed_call_shows_its_card_and_the_tools_stay_with_the_conversation(
    session: ChatSession, source: FakeSource, qloop: Any
) -> None:
    setup = {"functions": [{"spec": "get_weather", "stub": "sunny"}]}
    source.config = ToolRunConfig((WEATHER,), {"get_weather": '{"temp": 21}'}, setup=setup)
    source.approvals = {"call_1_0": "allowed once"}

    async def scenario() -> None:
        result = await _looped(session, lambda: session.send("Weather in Paris?", P, ""))
        assert result.finish_reason == "stop" and len(result.steps) == 2
        assert [t.name for t in _requests(session)[0].tools] == ["get_weather"]
        (card,) = session.transcript.tool_cards()
        assert card.call.name == "get_weather" and card.result_text == '{"temp": 21}' and not card.is_error
        assert card.info.text().startswith("result · stub · allowed once")  # the source's approval
        assert card.message_id is not None  # bound to its stored tool message
        assert session.transcript.cards()[-1].text == 'Results: get_weather={"temp": 21}'
        assert _roles(session) == ["user", "assistant", "tool", "assistant"]
        cid = session.conversation_id
        assert cid is not None
        conv = session.backend.services.history.get_conversation(cid)
        assert conv is not None and conv.params[SETUP_KEY] == setup  # brought back on reopen
        session.open(None)
        assert session.transcript.tool_cards() == []
        session.open(cid)  # from the stored messages
        (again,) = session.transcript.tool_cards()
        assert again.result_text == '{"temp": 21}' and again.message_id == card.message_id
        assert not session.backend.is_busy()

    _run(qloop, scenario())


def test_a_bad_config_stores_the_question_and_says_why_on_it(session: ChatSession, source: FakeSource,
                                                             qloop: Any) -> None:  # fmt: skip
    source.error = ToolSchemaError("tool 'f': $.type: 'objekt' is not valid.", hint="Fix the schema.")
    assert session.send("keep me", P, "") is None
    assert _roles(session) == ["user"] and not session.backend.is_busy()
    (card,) = session.transcript.cards()
    assert card.text == "keep me" and "tool 'f'" in card.note_label.text()
    source.error = None  # fixed: the same question is answered
    result = _run(qloop, _looped(session, lambda: session.regenerate(P, "")))
    assert result.finish_reason == "stop" and _roles(session) == ["user", "assistant"]


def test_an_edited_result_reruns_the_turn_as_a_new_branch(session: ChatSession, source: FakeSource,
                                                          qloop: Any) -> None:  # fmt: skip
    assert session.rerun_tool_result(1, "x", P, "") is None  # no conversation yet
    source.config = ToolRunConfig((WEATHER,), {"get_weather": "sunny"})

    async def scenario() -> None:
        await _looped(session, lambda: session.send("Weather?", P, ""))
        (card,) = session.transcript.tool_cards()
        first = card.message_id
        assert first is not None
        result = await _looped(session, lambda: session.rerun_tool_result(first, "snow", P, ""))
        assert result.text == "Results: get_weather=snow"
        (card,) = session.transcript.tool_cards()
        assert card.result_text == "snow" and card.message_id != first and "edited" in card.info.text()
        assert card.branch.text() == "\u2039 2/2 \u203a"
        tools = [m for m in session.backend.services.history.messages(session.conversation_id or "")
                 if m.role == "tool"]  # fmt: skip
        assert [m.content for m in tools] == ["sunny", "snow"] and tools[0].parent_id == tools[1].parent_id

    _run(qloop, scenario())


def test_calls_left_unanswered_say_why_live_and_when_reopened(session: ChatSession, source: FakeSource,
                                                              qloop: Any) -> None:  # fmt: skip
    session.backend.set_model("mock:tools?steps=5")

    async def scenario() -> None:
        source.config = ToolRunConfig((WEATHER,), {"get_weather": "sunny"}, max_steps=2)
        result = await _looped(session, lambda: session.send("Loop", P, ""))
        assert result.finish_reason == "max_tool_steps"
        assert session.transcript.tool_cards()[-1].info.text() == "not run: the step limit was reached"
        assert "max_tool_steps = 2" in session.transcript.cards()[-1].note_label.text()
        source.config = ToolRunConfig((WEATHER,))  # no stub, no server
        result = await _looped(session, lambda: session.send("Again", P, ""))
        assert result.finish_reason == "tool_calls"
        assert session.transcript.tool_cards()[-1].info.text() == "no result: no stub or MCP server answers this call"
        cid = session.conversation_id
        session.open(None)
        session.open(cid)
        assert session.transcript.tool_cards()[-1].info.text() == "no result: the run stopped at this call"

    _run(qloop, scenario())
