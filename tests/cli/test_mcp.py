"""``mcp`` (app/cli/mcp.py) against the real stdio MCP test server: listing, a prompt filled
in, a resource read, and each bad input with its exit code and a message naming what there is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]
MCP = f'{sys.executable} {ROOT / "tests" / "support" / "mcp_servers.py"} stdio'


def _mcp(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["mcp", *argv, "--mcp", MCP])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_tools_prompts_and_resources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _mcp(capsys, "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("cli1  ready (9 tools, 3 prompts, 3 resources)  (")
    assert "  tool      add - Add two integers." in lines
    assert "  prompt    review(code*, language) - A two-turn prompt: the user's request and the assistant's question." in lines
    assert "  resource  note://hello (text/plain) - A short note." in lines
    assert "  template  topic://{topic}/notes{?lang} - Notes about a topic (a resource template)." in lines
    code, out, _ = _mcp(capsys, "list", "--json")
    (server,) = json.loads(out)["servers"]
    assert code == 0 and server["name"] == "cli1" and len(server["tools"]) == 9
    assert server["prompts"][0] == {"name": "greet", "description": "A greeting prompt.",
                                    "arguments": [{"name": "who", "required": True, "description": ""}]}  # fmt: skip
    assert {r["uri"] for r in server["resources"]} == {"note://hello", "blob://logo", "note://big"}
    assert [t["uri_template"] for t in server["resource_templates"]] == ["topic://{topic}/notes{?lang}"]


def test_a_prompt_and_a_resource_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert _mcp(capsys, "prompt", "cli1", "greet", "who=Ada=Lovelace") == (0, "Say hello to Ada=Lovelace.\n", "")
    code, out, _ = _mcp(capsys, "prompt", "cli1", "review", "code=x", "language=python")
    assert (code, out) == (0, "User: Review this python code: x\n\nAssistant: What should I look for first?\n")
    assert _mcp(capsys, "read", "cli1", "note://hello") == (0, "hello from the resource\n", "")
    assert _mcp(capsys, "read", "cli1", "topic://owls/notes?lang=de") == (0, "notes about owls (de)\n", "")
    code, out, _ = _mcp(capsys, "read", "cli1", "note://big")
    assert code == 0 and out == "x" * 200_000 + "\n"  # the whole text: a pipe has no message size


@pytest.mark.parametrize(("argv", "code", "said"), [
    (("prompt", "nope", "greet"), 2, "No MCP server is called 'nope'. The servers: cli1."),
    (("prompt", "cli1", "nope"), 2, "The MCP server 'cli1' has no prompt 'nope'. Its prompts: greet, review, broken."),
    (("prompt", "cli1", "review"), 2, "The prompt 'review' needs: code. Give them as ARG=VALUE (code*, language)."),
    (("prompt", "cli1", "greet", "whom=x"), 2, "'whom=x' is not ARG=VALUE for an argument of the prompt 'greet'."),
    (("read", "cli1"), 2, "mcp read: wrong arguments (cli1)."),
    (("prompt", "cli1", "broken"), 1, "MCP server 'cli1', prompt 'broken': the server answered an error"),
    (("read", "cli1", "blob://logo"), 1, "resource 'blob://logo': the resource has no text"),
    (("read", "cli1", "note://missing"), 1, "MCP server 'cli1', resource 'note://missing': the server answered an error"),
])  # fmt: skip
def test_bad_input_exits_with_a_message(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: int,
                                        said: str) -> None:  # fmt: skip
    got, out, err = _mcp(capsys, *argv)
    assert (got, out) == (code, "") and err.startswith("error: ") and said in err, err


def test_no_servers_says_where_to_add_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", "list"]) == 2
    assert "There are no MCP servers. Add them to settings.json (mcp_servers)" in capsys.readouterr().err
