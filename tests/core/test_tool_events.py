"""Tests of app/core/tool_events.py: a tool loop's call records and its summed result."""

from __future__ import annotations

from decimal import Decimal

from app.core.tool_events import CallRecord, LoopResult
from app.core.tools import ToolCall, ToolResult
from tests.core.test_generation import result


def test_call_record_json_parses_arguments_and_splits_result_from_error() -> None:
    call = ToolCall("c1", "add", '{"a": 1}')
    pending = CallRecord(1, call, server="calc")
    assert pending.to_json() == {"id": "c1", "name": "add", "arguments": {"a": 1}, "result": None,
                                 "error": None, "step": 1, "source": None, "server": "calc", "elapsed_s": None}
    done = pending.with_result(ToolResult("c1", "add", "2", source="mcp", elapsed_s=0.5))
    assert pending.result is None  # with_result copies
    assert (done.to_json()["result"], done.to_json()["error"], done.to_json()["source"]) == ("2", None, "mcp")
    failed = pending.with_result(ToolResult("c1", "add", "boom", is_error=True))
    assert (failed.to_json()["result"], failed.to_json()["error"]) == (None, "boom")
    assert CallRecord(2, ToolCall("c2", "echo", "raw")).to_json()["arguments"] == "raw"


def test_loop_result_sums_its_steps_and_lists_pending_calls() -> None:
    answered = CallRecord(1, ToolCall("c1", "add", "{}"), ToolResult("c1", "add", "2"))
    waiting = CallRecord(2, ToolCall("c2", "add", "{}"))
    loop = LoopResult("L1", [result("first"), result("last")], [answered, waiting], "tool_calls", note="stopped")
    assert loop.text == "last" and loop.last.text == "last"
    assert (loop.prompt_tokens, loop.completion_tokens, loop.cost_usd) == (20, 8, Decimal("0.004"))
    assert loop.pending() == [waiting] and loop.valid is None
    summary = loop.summary()
    assert summary["steps"] == 2 and summary["cost_usd"] == "0.004" and summary["note"] == "stopped"
    data = loop.to_json()
    assert data["text"] == "last" and data["finish_reason"] == "tool_calls" and data["steps"] == 2
    assert data["usage"] == {"prompt_tokens": 20, "completion_tokens": 8, "estimated": False}
    assert [c["id"] for c in data["tool_calls"]] == ["c1", "c2"] and data["note"] == "stopped"
    assert "valid" not in data


def test_an_unknown_step_price_makes_the_loop_cost_unknown() -> None:
    loop = LoopResult("L2", [result(), result(cost=None)])
    assert loop.cost_usd is None and loop.summary()["cost_usd"] is None and loop.to_json()["cost_usd"] is None


def test_step_events_share_the_loop_and_step_fields_in_order() -> None:
    from app.core.tool_events import ToolCallsMade, ToolResultReady, ToolStepEvent, ToolStepStarted

    call = ToolCall("c1", "add", "{}")
    started, made = ToolStepStarted("loop", 2, "run-2"), ToolCallsMade("loop", 2, (call,))
    ready = ToolResultReady("loop", 2, call, ToolResult("c1", "add", "3"), "calc")
    assert all(isinstance(e, ToolStepEvent) and (e.loop_id, e.step) == ("loop", 2) for e in (started, made, ready))
    assert (started.run_id, made.calls, ready.server) == ("run-2", (call,), "calc")


def test_every_loop_event_names_its_loop_through_the_base() -> None:
    from typing import get_args

    from app.core.tool_events import LoopEvent, ToolEvent, ToolLoopFinished

    assert all(issubclass(kind, ToolEvent) for kind in get_args(LoopEvent))
    finished = ToolLoopFinished("loop", LoopResult("loop", [result()]))  # loop_id first, as before the base
    assert finished.loop_id == "loop" and finished.result.text == finished.result.last.text
