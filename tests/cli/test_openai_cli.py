"""``ask`` and ``models`` against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from tests.cli.test_ask import JSON_KEYS, ledger_rows
from tests.support.openai_server import OpenAIServer, auth_error, text


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=("gpt-4o-mini", "llama3.2:1b")) as srv:
        yield srv


def test_ask_base_url_streams_and_records(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(text("Hello", " from", " loopback", prompt_tokens=11, completion_tokens=3))
    argv = [
        "ask",
        "-m",
        "openai:gpt-4o-mini",
        "--base-url",
        server.base_url,
        "--temperature",
        "0.2",
    ]
    code = main([*argv, "--seed", "7", "--system", "terse", "--json", "Say hello"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Hello from loopback"
    data = json.loads(lines[-1])
    assert set(data) == JSON_KEYS
    assert data["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "cached_tokens": 0, "estimated": False}
    assert data["cost_usd"] == 0.0  # a loopback server is free, whatever the model name
    body = server.chat_requests[-1].json
    assert body["model"] == "gpt-4o-mini" and body["seed"] == 7 and body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "Say hello"},
    ]
    rows = ledger_rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row["provider"], row["model"], row["endpoint"]) == (
        "openai",
        "gpt-4o-mini",
        server.base_url,
    )
    assert (row["prompt_tokens"], row["completion_tokens"], row["finish_reason"]) == (11, 3, "stop")


def test_ask_base_url_takes_a_bare_server_model_name(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(text("ok"))
    assert main(["ask", "-m", "llama3.2:1b", "--base-url", server.base_url, "hi"]) == 0
    assert capsys.readouterr().out == "ok\n"
    assert server.chat_requests[-1].json["model"] == "llama3.2:1b"


def test_server_errors_are_clear(server: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.enqueue(auth_error())
    assert main(["ask", "-m", "openai:gpt-4o-mini", "--base-url", server.base_url, "hi"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "keys set" in err and "Traceback" not in err


def test_disconnect_mid_stream_keeps_partial_text(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(text("one", " two", " three", " four", disconnect_after=2))
    assert main(["ask", "-m", "openai:gpt-4o-mini", "--base-url", server.base_url, "hi"]) == 1
    out, err = capsys.readouterr()
    assert out == "one two\n"
    assert "error:" in err and "partial" in err
    assert ledger_rows()[0]["finish_reason"] == "error"


def test_models_base_url(server: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--base-url", server.base_url]) == 0
    out = capsys.readouterr().out
    assert "openai:gpt-4o-mini" in out and "openai:llama3.2:1b" in out and "ready" in out
    assert main(["models", "--base-url", server.base_url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sorted(m["id"] for m in data["models"]) == ["openai:gpt-4o-mini", "openai:llama3.2:1b"]
    assert data["errors"] == {}


def test_models_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAIServer() as srv:
        url = srv.base_url
    assert main(["models", "--base-url", url]) == 1  # the server is gone now
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_models_without_options_lists_every_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "mock:echo" in out and "ready" in out
    assert "openai:gpt-4o-mini" in out and "needs key" in out  # no key in this test's keyring/env
    assert "local:smollm2" in out
    assert "OpenAI: needs a key - python -m app keys set openai" in out


def test_subprocess_ask_against_the_server(server: OpenAIServer) -> None:
    server.enqueue(text("from", " a", " subprocess"))
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "ask",
            "-m",
            "openai:gpt-4o-mini",
            "--base-url",
            server.base_url,
            "hi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from a subprocess\n"
    assert len(ledger_rows()) == 1
