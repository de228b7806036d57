"""The tool loop (app/core/tool_loop.py) against real parts: the loopback OpenAI-compatible
server (split arguments, two parallel calls, tool_call_ids checked by the server), the mock's
``mock:tools``, a real stdio MCP server, the usage ledger and the history."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core.answer_store import AnswerStore
from app.core.engine import Engine
from app.core.exchange import context_messages
from app.core.history import HistoryStore
from app.core.history_export import to_json, to_markdown
from app.core.mcp_config import McpServerConfig
from app.core.pricing import PriceTable
from app.core.provider import ProviderRegistry
from app.core.runs import RunScheduler
from app.core.tool_events import ToolCallsMade, ToolLoopFinished, ToolResultReady, ToolStepStarted
from app.core.tool_loop import CallRecord, ToolLoop
from app.core.tool_resolvers import DENIED, ResolverChain
from app.core.tools import ResponseSchema, ToolCall, ToolResult, ToolSpec
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.core.usage import UsageLedger
from app.tools.mcp_client import McpServers
from tests.support.openai_server import OpenAIServer, provider_context
from tests.support.openai_tool_calls import answer_tool_results, tool_calls, tool_results

SERVER = str(Path(__file__).resolve().parents[1] / "support" / "mcp_servers.py")
WEATHER = ToolSpec("get_weather", "The weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                  "required": ["city"]})  # fmt: skip
TIME = ToolSpec("get_time", "The time", {"type": "object", "properties": {"tz": {"type": "string"}}})
ADD = ToolSpec("add", "Add", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                              "required": ["a", "b"]})  # fmt: skip


def _scheduler(tmp_path: Path, endpoints: list[Any] = ()) -> tuple[RunScheduler, UsageLedger]:  # type: ignore[assignment]
    ledger = UsageLedger(tmp_path / "usage.sqlite3")
    registry = ProviderRegistry(provider_context(list(endpoints), home=tmp_path))
    return RunScheduler(Engine(registry, PriceTable.load(), ledger)), ledger


def _request(model: str, tools: tuple[ToolSpec, ...], endpoint: str | None = None, **kw: Any) -> GenerationRequest:
    return GenerationRequest(ModelRef.parse(model), (ChatMessage("user", "Weather and time in Paris?"),),
                             GenerationParams(temperature=0, max_tokens=64, seed=3), endpoint, tools=tools, **kw)  # fmt: skip


async def _closing(scheduler: RunScheduler, coro: Any) -> Any:
    try:
        return await coro
    finally:
        await scheduler.aclose()
        await scheduler.engine.registry.aclose()


def test_stub_results_go_back_with_their_call_ids(run: Any, openai_server: OpenAIServer, tmp_path: Path) -> None:
    openai_server.enqueue(
        tool_calls(("call_a", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']), ("call_b", "get_time", '{"tz": "UTC"}'),
                   prompt_tokens=20, completion_tokens=9),
        answer_tool_results(prompt_tokens=40, completion_tokens=6),
    )  # fmt: skip
    scheduler, ledger = _scheduler(tmp_path, [openai_server.endpoint("Loop")])
    events: list[Any] = []
    loop = ToolLoop(scheduler, ResolverChain.standard({"get_weather": '{"temp": 21}', "get_time": "12:00"}),
                    on_event=events.append)  # fmt: skip
    result = run(_closing(scheduler, loop.run(_request("openai:gpt-4o-mini", (WEATHER, TIME), "Loop"))))

    assert result.finish_reason == "stop" and len(result.steps) == 2
    assert result.text == 'Results: call_a={"temp": 21}; call_b=12:00'
    second = openai_server.chat_requests[-1].json
    assert tool_results(second["messages"]) == [("call_a", '{"temp": 21}'), ("call_b", "12:00")]
    calls = second["messages"][1]["tool_calls"]
    assert [(c["id"], c["function"]["arguments"]) for c in calls] == [("call_a", '{"city": "Paris"}'),
                                                                       ("call_b", '{"tz": "UTC"}')]  # fmt: skip
    assert (result.prompt_tokens, result.completion_tokens) == (60, 15)
    rows = ledger.recent()
    assert len(rows) == 2 and {r.run_id for r in rows} == {loop.loop_id}
    assert [r.finish_reason for r in sorted(rows, key=lambda r: r.started_at)] == ["tool_calls", "stop"]
    kinds = [type(e) for e in events if isinstance(e, ToolStepStarted | ToolCallsMade | ToolResultReady
                                                   | ToolLoopFinished)]  # fmt: skip
    assert kinds == [ToolStepStarted, ToolCallsMade, ToolResultReady, ToolResultReady, ToolStepStarted,
                     ToolLoopFinished]  # fmt: skip
    data = result.to_json()
    assert data["steps"] == 2 and data["usage"]["prompt_tokens"] == 60
    assert data["tool_calls"][0] | {"elapsed_s": None} == {
        "id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}, "result": '{"temp": 21}',
        "error": None, "step": 1, "source": "stub", "server": None, "elapsed_s": None}  # fmt: skip


def test_max_tool_steps_stops_and_says_so(run: Any, tmp_path: Path) -> None:
    scheduler, ledger = _scheduler(tmp_path)
    loop = ToolLoop(scheduler, ResolverChain.standard({"get_weather": "sunny"}), max_steps=3)
    result = run(_closing(scheduler, loop.run(_request("mock:tools?steps=10", (WEATHER,)))))
    assert result.finish_reason == "max_tool_steps" and len(result.steps) == 3
    assert result.note is not None and "max_tool_steps = 3" in result.note
    assert len(ledger.recent()) == 3
    assert [c.result is None for c in result.calls] == [False, False, True]


def test_a_call_nobody_answers_ends_with_tool_calls(run: Any, tmp_path: Path) -> None:
    scheduler, ledger = _scheduler(tmp_path)
    loop = ToolLoop(scheduler, ResolverChain.standard({}))
    result = run(_closing(scheduler, loop.run(_request("mock:tools", (WEATHER,)))))
    assert result.finish_reason == "tool_calls" and len(result.steps) == 1
    assert [(c.call.name, c.call.arguments) for c in result.pending()] == [("get_weather", '{"city": "example"}')]
    assert "get_weather" in (result.note or "")
    assert result.to_json()["tool_calls"][0]["result"] is None


def test_arguments_that_are_not_json_get_an_error_result(run: Any, tmp_path: Path) -> None:
    scheduler, _ = _scheduler(tmp_path)
    loop = ToolLoop(scheduler, ResolverChain.standard({}))
    result = run(_closing(scheduler, loop.run(_request("mock:tools?args={bad", (WEATHER,)))))
    assert result.finish_reason == "stop"
    record = result.calls[0]
    assert record.result is not None and record.result.is_error
    assert record.result.content.startswith("arguments are not valid JSON")
    assert result.to_json()["tool_calls"][0]["arguments"] == "{bad"
    assert result.text.startswith("Results: get_weather=arguments are not valid JSON")
    # a stub answers even then
    scheduler, _ = _scheduler(tmp_path / "b")
    stubbed = ToolLoop(scheduler, ResolverChain.standard({"get_weather": "rain"}))
    assert run(_closing(scheduler, stubbed.run(_request("mock:tools?args={bad", (WEATHER,))))).text == \
        "Results: get_weather=rain"


def test_review_edits_results_before_they_go_back(run: Any, tmp_path: Path) -> None:
    scheduler, _ = _scheduler(tmp_path)

    async def review(step: int, records: list[CallRecord]) -> list[CallRecord]:
        return [r.with_result(ToolResult(r.call.id, r.call.name, f"edited in step {step}")) for r in records]

    loop = ToolLoop(scheduler, ResolverChain.standard({}), review=review)
    result = run(_closing(scheduler, loop.run(_request("mock:tools", (WEATHER,)))))
    assert result.text == "Results: get_weather=edited in step 1"


def test_schema_verdict(run: Any, tmp_path: Path) -> None:
    schema = ResponseSchema({"type": "object", "required": ["temp"]})
    scheduler, _ = _scheduler(tmp_path)
    loop = ToolLoop(scheduler)
    result = run(_closing(scheduler, loop.run(GenerationRequest(
        ModelRef.parse('mock:fixed?text={"temp": 3}'), (ChatMessage("user", "x"),), response_schema=schema))))  # fmt: skip
    assert result.valid is True and result.to_json()["valid"] is True
    scheduler, _ = _scheduler(tmp_path / "b")
    bad = run(_closing(scheduler, ToolLoop(scheduler).run(GenerationRequest(
        ModelRef.parse('mock:fixed?text={"t": 3}'), (ChatMessage("user", "x"),), response_schema=schema))))  # fmt: skip
    assert bad.valid is False and "'temp' is a required property" in (bad.invalid_reason or "")


async def _deny(call: ToolCall, server: str) -> str:
    """An approval that always says no (the user's choice, never a failure)."""
    return "deny"


def _mcp(name: str = "local") -> McpServerConfig:
    return McpServerConfig(name=name, command=sys.executable, args=[SERVER, "stdio"])


def test_mcp_tool_called_with_the_models_arguments(run: Any, tmp_path: Path) -> None:
    scheduler, _ = _scheduler(tmp_path)
    asked: list[tuple[str, str]] = []

    async def approve(call: ToolCall, server: str) -> Any:
        asked.append((call.name, server))
        return "always"

    async def go() -> Any:
        async with McpServers([_mcp()]) as servers:
            specs = servers.tools()
            assert "add" in {s.name for s in specs}
            loop = ToolLoop(scheduler, ResolverChain.standard({}, servers, approve))
            first = await loop.run(_request('mock:tools?call=add&args={"a": 2, "b": 3}&steps=2', specs))
            return first, servers.needs_approval("local")

    result, needs = run(_closing(scheduler, go()), timeout=60)
    assert result.text == "Results: add=5"
    assert asked == [("add", "local")] and needs is False  # "always": asked once, then trusted
    assert [(c.server, c.result.source if c.result else None) for c in result.calls] == [("local", "mcp")] * 2


def test_mcp_denied_and_crashing_give_error_results(run: Any, tmp_path: Path) -> None:
    scheduler, _ = _scheduler(tmp_path)

    async def go() -> Any:
        async with McpServers([_mcp()]) as servers:
            specs = servers.tools()
            denied = await ToolLoop(scheduler, ResolverChain.standard({}, servers, _deny)).run(
                _request("mock:tools?call=add&args={}", specs))
            crashed = await ToolLoop(scheduler, ResolverChain.standard({}, servers)).run(
                _request("mock:tools?call=crash", specs))
            return denied, crashed

    denied, crashed = run(_closing(scheduler, go()), timeout=60)
    assert denied.text == f"Results: add={DENIED}" and denied.calls[0].result.is_error
    assert crashed.finish_reason == "stop" and crashed.calls[0].result.is_error
    assert "Traceback" not in crashed.text and crashed.text.startswith("Results: crash=")


def test_a_failing_server_stops_the_answer_when_the_setting_says_so(run: Any, tmp_path: Path) -> None:
    """settings.stop_on_tool_error: a crashed (or erroring) MCP call ends the answer there,
    said in the note; a denial is the user's choice and never counts as a failure."""
    scheduler, _ = _scheduler(tmp_path)

    async def go() -> Any:
        async with McpServers([_mcp()]) as servers:
            specs = servers.tools()
            denied = await ToolLoop(scheduler, ResolverChain.standard({}, servers, _deny),
                                    stop_on_tool_error=True).run(_request("mock:tools?call=add&args={}", specs))  # fmt: skip
            stopped = await ToolLoop(scheduler, ResolverChain.standard({}, servers), stop_on_tool_error=True).run(
                _request("mock:tools?call=crash", specs))  # the server dies here
            return stopped, denied

    stopped, denied = run(_closing(scheduler, go()), timeout=60)
    assert stopped.finish_reason == "tool_error" and len(stopped.steps) == 1
    assert "'crash' failed on its MCP server" in (stopped.note or "") and stopped.calls[0].result.is_error
    assert denied.finish_reason == "stop" and denied.text == f"Results: add={DENIED}"


def _store(tmp_path: Path) -> tuple[HistoryStore, AnswerStore]:
    history = HistoryStore(tmp_path / "history.sqlite3")
    return history, AnswerStore(history, save_every_s=0)


def test_calls_and_results_are_messages_and_a_branch_reruns(run: Any, tmp_path: Path) -> None:
    scheduler, ledger = _scheduler(tmp_path)
    history, answers = _store(tmp_path)
    conv = history.create_conversation("t", model="mock:tools?parallel=2")
    request = _request("mock:tools?parallel=2", (WEATHER, TIME))
    user = history.add_message(conv.id, "user", request.messages[0].content)
    first = answers.start(conv.id, user.id, request, "")
    stubs = {"get_weather": '{"temp": 21}', "get_time": "noon"}
    loop = ToolLoop(scheduler, ResolverChain.standard(stubs), store=answers, answer=first)
    result = run(loop.run(request))
    assert result.text == 'Results: get_weather={"temp": 21}; get_time=noon'

    path = history.path_to(conv.id)
    assert [m.role for m in path] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [c["name"] for c in path[1].meta["tool_calls"]] == ["get_weather", "get_time"]
    assert path[2].meta | {"elapsed_s": 0} == {
        "call_id": "call_1_0", "name": "get_weather", "arguments": '{"city": "example"}', "source": "stub",
        "is_error": False, "elapsed_s": 0, "server": None, "step": 1, "loop_id": loop.loop_id}  # fmt: skip
    assert path[-1].status == "complete" and path[-1].meta["loop"]["steps"] == 2
    # a reopened conversation sends the calls and results back as they were
    assert context_messages(path, "") == [
        request.messages[0],
        ChatMessage("assistant", "", tool_calls=(ToolCall("call_1_0", "get_weather", '{"city": "example"}', 0),
                                                 ToolCall("call_1_1", "get_time", "{}", 1))),
        ChatMessage("tool", '{"temp": 21}', tool_call_id="call_1_0"), ChatMessage("tool", "noon", tool_call_id="call_1_1"),
        ChatMessage("assistant", result.text),
    ]  # fmt: skip
    exported = to_json(history.require(conv.id), history.tree(conv.id))
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant", "tool", "tool", "assistant"]
    markdown = to_markdown(history.require(conv.id), history.tree(conv.id))
    assert '→ get_weather({"city": "example"})' in markdown and "← get_time: noon" in markdown

    # edit the first result: a new branch, the second result copied, the loop continues after it
    leaf = answers.branch_tool_result(conv.id, path[2].id, '{"temp": -5}')
    branch = history.path_to(conv.id, leaf.id)
    assert [m.role for m in branch] == ["user", "assistant", "tool", "tool"] and branch[2].id != path[2].id
    assert history.tree(conv.id).position(branch[2].id) == (2, 2)
    again = answers.start(conv.id, leaf.id, request, "", remember=False)
    rerun = ToolLoop(scheduler, ResolverChain.standard(stubs), store=answers, answer=again)
    second = run(_closing(scheduler, rerun.continue_from(request, branch, "")))
    assert second.text == 'Results: get_weather={"temp": -5}; get_time=noon' and len(second.steps) == 1
    assert history.path_to(conv.id)[-1].content == second.text
    assert len(ledger.recent()) == 3


def test_cancel_mid_loop_stops_the_step_and_keeps_the_record(run: Any, tmp_path: Path) -> None:
    scheduler, ledger = _scheduler(tmp_path)
    history, answers = _store(tmp_path)
    conv = history.create_conversation("t")
    request = GenerationRequest(ModelRef.parse("mock:tools?rate=20"), (ChatMessage("user", "go"),),
                                GenerationParams(max_tokens=200), tools=(WEATHER,))  # fmt: skip
    user = history.add_message(conv.id, "user", "go")
    answer = answers.start(conv.id, user.id, request, "")
    second_started = asyncio.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, ToolStepStarted) and event.step == 2:
            second_started.set()

    loop = ToolLoop(scheduler, ResolverChain.standard({"get_weather": " ".join(["word"] * 100)}),
                    on_event=on_event, store=answers, answer=answer)  # fmt: skip

    async def go() -> None:
        task = asyncio.ensure_future(loop.run(request))
        await asyncio.wait_for(second_started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(scheduler.aclose(), 10)

    run(go())
    rows = sorted(ledger.recent(), key=lambda r: r.started_at)
    assert [r.finish_reason for r in rows] == ["tool_calls", "cancelled"]
    assert history.path_to(conv.id)[-1].status == "cancelled"


def test_a_history_from_before_tools_opens_and_sends_unchanged(tmp_path: Path) -> None:
    from tests.support.history_v1 import write_v1_history

    path = tmp_path / "history.sqlite3"
    convs = write_v1_history(path)
    history = HistoryStore(path)
    try:
        for conv in convs[:2]:
            stored = history.path_to(conv.id)
            expected = [ChatMessage(m.role, m.content) for m in conv.messages if m.content]
            assert context_messages(stored, "") == expected
            assert "→" not in to_markdown(history.require(conv.id), history.tree(conv.id))
    finally:
        history.close()
