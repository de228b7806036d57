"""``ask`` with tools and structured output (app/cli/ask_tools.py): the loopback OpenAI server
(split arguments, two parallel calls, tool_call_ids checked), ``mock:tools``, a real stdio MCP
server, the ledger and the history."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.core.history import HistoryStore
from app.core.paths import AppPaths
from tests.cli.test_ask import interrupt_ask, ledger_rows
from tests.support.openai_server import OpenAIServer, text
from tests.support.openai_tool_calls import answer_tool_results, tool_calls, tool_results

ROOT = Path(__file__).resolve().parents[2]
MCP = f'{sys.executable} {ROOT / "tests" / "support" / "mcp_servers.py"} stdio'
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]  # fmt: skip


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(TOOLS), encoding="utf-8")
    return path


def _ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_stub_results_go_back_and_the_ledger_has_a_row_per_step(
        capsys: pytest.CaptureFixture[str], openai_server: OpenAIServer, tools_file: Path) -> None:  # fmt: skip
    openai_server.enqueue(
        tool_calls(("call_a", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']), ("call_b", "get_time", "{}"),
                   prompt_tokens=20, completion_tokens=9),
        answer_tool_results(prompt_tokens=40, completion_tokens=6),
    )  # fmt: skip
    code, out, err = _ask(capsys, "-m", "openai:gpt-4o-mini", "--base-url", openai_server.base_url,
                          "--tools", str(tools_file), "--tool-result", 'get_weather={"temp": 21}',
                          "--tool-result", "get_time=noon", "--json", "Weather and time in Paris?")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == 'Results: call_a={"temp": 21}; call_b=noon'
    assert '→ get_weather({"city": "Paris"})' in err and '← {"temp": 21}' in err and "→ get_time({})" in err
    data = json.loads(lines[-1])
    assert data["steps"] == 2 and data["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 60, "completion_tokens": 15, "estimated": False}
    assert [(c["id"], c["name"], c["arguments"], c["result"], c["error"], c["step"]) for c in data["tool_calls"]] == [
        ("call_a", "get_weather", {"city": "Paris"}, '{"temp": 21}', None, 1), ("call_b", "get_time", {}, "noon", None, 1)]
    first, second = (r.json for r in openai_server.chat_requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "get_time"]
    assert tool_results(second["messages"]) == [("call_a", '{"temp": 21}'), ("call_b", "noon")]
    rows = ledger_rows()
    assert len(rows) == 2 and len({r["run_id"] for r in rows}) == 1 and rows[0]["run_id"]


def test_no_stub_and_no_server_ends_with_tool_calls_and_prints_them(
        capsys: pytest.CaptureFixture[str], tools_file: Path) -> None:  # fmt: skip
    code, out, err = _ask(capsys, "-m", "mock:tools", "--tools", str(tools_file), "Weather?")
    assert code == 0, err
    assert out == 'get_weather({"city": "example"})\n'
    assert "no stub result or MCP server answers" in err
    code, out, _ = _ask(capsys, "-m", "mock:tools", "--tools", str(tools_file), "--json", "Weather?")
    data = json.loads(out.splitlines()[-1])
    assert data["finish_reason"] == "tool_calls" and data["steps"] == 1
    assert data["tool_calls"][0]["result"] is None and data["tool_calls"][0]["arguments"] == {"city": "example"}


def test_max_tool_steps_is_said(capsys: pytest.CaptureFixture[str], tools_file: Path) -> None:
    code, out, err = _ask(capsys, "-m", "mock:tools?steps=50", "--tools", str(tools_file), "--tool-result",
                          "get_weather=1", "--max-tool-steps", "3", "--json", "Weather?")  # fmt: skip
    assert code == 0, err
    data = json.loads(out.splitlines()[-1])
    assert data["finish_reason"] == "max_tool_steps" and data["steps"] == 3
    assert "max_tool_steps = 3" in data["note"] and "note: Stopped after 3 steps" in err
    assert len(ledger_rows()) == 3


def test_mcp_tool_is_listed_called_and_its_result_sent_back(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _ask(capsys, "-m", 'mock:tools?call=add&args={"a": 2, "b": 40}', "--mcp", MCP, "--yes",
                          "--json", "Add")  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0] == "Results: add=42"
    assert '→ add({"a": 2, "b": 40})' in err and "← 42" in err and "[cli1]" in err
    call = json.loads(out.splitlines()[-1])["tool_calls"][0]
    assert (call["result"], call["source"], call["server"]) == ("42", "mcp", "cli1")


def test_a_crashing_mcp_server_gives_an_error_result(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _ask(capsys, "-m", "mock:tools?call=crash", "--mcp", MCP, "--yes", "--json", "Crash")
    assert code == 0, err
    assert "Traceback" not in err and "← error: " in err
    call = json.loads(out.splitlines()[-1])["tool_calls"][0]
    assert call["result"] is None and call["error"]


def test_approval_without_a_terminal_stops_with_exit_1(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = _ask(capsys, "-m", 'mock:tools?call=add&args={"a": 1, "b": 1}', "--mcp", MCP, "Add")
    assert code == 1
    assert "needs approval" in err and "--yes" in err and "Traceback" not in err


def test_schema_sends_response_format_and_json_says_valid(
        capsys: pytest.CaptureFixture[str], openai_server: OpenAIServer, tmp_path: Path) -> None:  # fmt: skip
    schema = {"type": "object", "properties": {"temp": {"type": "integer"}}, "required": ["temp"],
              "additionalProperties": False}  # fmt: skip
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    openai_server.enqueue(text('{"temp": 21}'), text('{"temp": "warm"}'))
    base = ["-m", "openai:m", "--base-url", openai_server.base_url, "--schema", str(path), "--json", "Weather?"]
    code, out, err = _ask(capsys, *base)
    assert code == 0, err
    assert openai_server.chat_requests[-1].json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    data = json.loads(out.splitlines()[-1])
    assert data["valid"] is True and data["invalid_reason"] is None
    code, out, _ = _ask(capsys, *base)
    data = json.loads(out.splitlines()[-1])
    assert data["valid"] is False and data["invalid_reason"].startswith("$.temp: 'warm' is not of type 'integer'")
    code, out, _ = _ask(capsys, "-m", "mock:fixed?text={}", "--json-mode", "--json", "x")
    assert json.loads(out.splitlines()[-1])["valid"] is True


def test_bad_tools_and_schema_files_exit_2_naming_the_place(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:  # fmt: skip
    bad = tmp_path / "bad.yaml"
    bad.write_text("- type: function\n  function:\n    name: get_weather\n    parameters: {type: objekt}\n",
                   encoding="utf-8")  # fmt: skip
    code, out, err = _ask(capsys, "-m", "mock:tools", "--tools", str(bad), "x")
    assert code == 2 and out == ""
    assert "bad.yaml: tool 'get_weather': parameters: $.type" in err
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "required": "temp"}', encoding="utf-8")
    code, _, err = _ask(capsys, "-m", "mock:echo", "--schema", str(schema), "x")
    assert code == 2 and "s.json: schema: $.required" in err
    code, _, err = _ask(capsys, "-m", "mock:echo", "--tool-result", "no name", "x")
    assert code == 2 and "NAME=RESULT" in err
    assert ledger_rows() == []  # nothing was sent


def test_the_exchange_is_stored_exported_and_a_reopened_conversation_continues(
        capsys: pytest.CaptureFixture[str], openai_server: OpenAIServer, tools_file: Path) -> None:  # fmt: skip
    openai_server.enqueue(tool_calls(("call_a", "get_weather", '{"city": "Oslo"}')), answer_tool_results(),
                          text("It was cold."))  # fmt: skip
    code, out, err = _ask(capsys, "-m", "openai:m", "--base-url", openai_server.base_url, "--tools", str(tools_file),
                          "--tool-result", "get_weather=-3", "--conversation", "new", "--json", "Weather?")  # fmt: skip
    assert code == 0, err
    data = json.loads(out.splitlines()[-1])
    history = HistoryStore(AppPaths.default().history_db)
    try:
        path = history.path_to(data["conversation_id"])
        assert [m.role for m in path] == ["user", "assistant", "tool", "assistant"]
        assert path[1].meta["tool_calls"][0]["id"] == "call_a" and path[2].meta["call_id"] == "call_a"
        assert path[3].content == "Results: call_a=-3" and data["message_id"] == path[3].id
    finally:
        history.close()
    assert main(["history", "export", data["conversation_id"], "--format", "md"]) == 0
    markdown = capsys.readouterr().out
    assert '→ get_weather({"city": "Oslo"})' in markdown and "← get_weather: -3" in markdown
    assert main(["history", "show", data["conversation_id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["messages"]
    assert shown[2]["tool_call_id"] == "call_a" and shown[1]["tool_calls"][0]["name"] == "get_weather"
    code = main(["ask", "--base-url", openai_server.base_url, "-m", "openai:m", "--conversation",
                 data["conversation_id"], "And yesterday?"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    sent = openai_server.chat_requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["tool_calls"][0]["id"] == "call_a" and sent[2] == {"role": "tool", "tool_call_id": "call_a",
                                                                      "content": "-3"}


def test_ctrl_c_mid_loop_exits_130_and_records_the_cancel(tools_file: Path) -> None:
    stub = "get_weather=" + " ".join(["word"] * 2000)
    code, _, err = interrupt_ask("-m", "mock:tools?rate=30", "--tools", str(tools_file), "--tool-result", stub, "go",
                                 first="Results:")  # step 2 streams when Ctrl+C comes
    assert code == 130, err
    assert "Traceback" not in err
    rows: list[Any] = sorted(ledger_rows(), key=lambda r: r["started_at"])
    assert [r["finish_reason"] for r in rows] == ["tool_calls", "cancelled"]
    assert len({r["run_id"] for r in rows}) == 1


class Terminal(io.StringIO):
    """Typed answers on a terminal."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_call_asks(run: Any) -> None:
    from app.cli.ask_tools import Approver
    from app.core.tools import ToolCall

    err = io.StringIO()
    approver = Approver(False, err, Terminal("y\na\n\n"))
    call = ToolCall("c1", "add", '{"a": 1}')
    assert [run(approver(call, "calc")) for _ in range(3)] == ["once", "always", "deny"]
    assert "Allow add({\"a\": 1}) on MCP server 'calc'? [y/N/a=always for this server]" in err.getvalue()
    assert run(Approver(True, err, io.StringIO(""))(call, "calc")) == "once"


def test_tool_choice_names_a_function(capsys: pytest.CaptureFixture[str], tools_file: Path) -> None:
    code, _, err = _ask(capsys, "-m", "mock:tools", "--tools", str(tools_file), "--tool-choice", "nope", "x")
    assert code == 2 and "'nope' names no function" in err and ledger_rows() == []
    code, out, err = _ask(capsys, "-m", "mock:tools", "--tools", str(tools_file), "--tool-choice", "get_time",
                          "--tool-result", "get_time=noon", "x")  # fmt: skip
    assert code == 0 and out == "Results: get_time=noon\n" and "→ get_time({})" in err
