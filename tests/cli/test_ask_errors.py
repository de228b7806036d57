"""``ask`` failures: bytes that are not UTF-8, a connection dropped mid-stream, and the
``--json`` line of a failed request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.cli.test_ask import JSON_KEYS, ledger_rows
from tests.support.openai_server import OpenAIServer, auth_error, text

ROOT = Path(__file__).resolve().parents[2]
BAD = b"caf\xe9 \xff au lait"  # Latin-1, not UTF-8


def _app(args: list[str], *, stdin: bytes | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, input=stdin,
                          env={**os.environ, **env}, capture_output=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize("locale_env", [{}, {"PYTHONIOENCODING": "utf-8:strict"}],
                         ids=["C.UTF-8", "strict-stdin"])  # fmt: skip
@pytest.mark.parametrize("command", [["ask", "-m", "mock:echo", "-"], ["count", "-m", "mock:echo", "-"]])
def test_invalid_utf8_on_stdin_is_a_clear_error(command: list[str], locale_env: dict[str, str]) -> None:
    run = _app(command, stdin=BAD, **locale_env)
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert run.stdout == b""
    assert "Standard input is not valid UTF-8 text (byte 0xe9 at byte offset 3)" in err
    assert "iconv" in err and "Traceback" not in err and "Regenerate" not in err


def test_invalid_utf8_in_a_prompt_argument_is_a_clear_error(openai_server: OpenAIServer) -> None:
    prompt = BAD.decode("utf-8", "surrogateescape")  # what Python makes of such argv bytes
    run = _app(["ask", "--base-url", openai_server.base_url, "-m", "test-model", prompt])
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert "The prompt is not valid UTF-8 text (byte 0xe9 at character 4)" in err
    assert "failed unexpectedly" not in err and "Regenerate" not in err and "Traceback" not in err
    assert openai_server.chat_requests == []  # nothing was sent


def test_invalid_utf8_in_an_option_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    stop = "\udce9"
    assert main(["ask", "-m", "mock:echo", "--stop", stop, "hello"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--stop is not valid UTF-8 text (byte 0xe9 at character 1)" in err


@pytest.mark.parametrize("argv", [["ask", "-m", "mock:echo", "--json", "--stop", "\udce9", "hello"],
                                  ["ask", "-m", "mock:echo", "--json", "h\udce9llo"],
                                  ["count", "-m", "mock:echo", "--json", "h\udce9llo"]])  # fmt: skip
def test_invalid_utf8_in_an_argument_still_ends_json_with_its_line(argv: list[str],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(argv) == 2
    out, err = capsys.readouterr()
    data = json.loads(out.splitlines()[-1])
    assert "is not valid UTF-8 text (byte 0xe9" in data["error"] and "not valid UTF-8" in err
    if argv[0] == "ask":
        assert set(data) == JSON_KEYS | {"error"} and data["finish_reason"] == "error" and data["usage"] is None


def test_valid_utf8_on_stdin_still_works() -> None:
    run = _app(["ask", "-m", "mock:echo", "-"], stdin="Grüße aus München".encode())
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode() == "Grüße aus München\n"


def test_keys_set_with_invalid_utf8_on_stdin() -> None:
    run = _app(["keys", "set", "openai"], stdin=b"sk-\xff\xfe")
    err = run.stderr.decode()
    assert run.returncode == 2, err
    assert "not valid UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize("fault", ["reset_after", "disconnect_after"])
def test_a_connection_dropped_mid_stream_says_so(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    openai_server.enqueue(text("one", " two", " three", " four", **{fault: 2}))
    code = main(["ask", "--base-url", openai_server.base_url, "-m", "test-model", "hi"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == "one two\n"
    assert "was dropped" in err and "Could not connect" not in err
    if fault == "reset_after":
        assert "Connection reset by peer" in err  # a real TCP RST reached the client
    assert "partial" in err


def test_a_server_that_is_not_there_could_not_connect(capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAIServer() as gone:
        url = gone.base_url
    assert main(["ask", "--base-url", url, "-m", "test-model", "hi"]) == 1
    err = capsys.readouterr().err
    assert "Could not connect" in err and "dropped" not in err


def test_json_line_of_a_request_cut_mid_stream(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_server.enqueue(text("one", " two", " three", reset_after=2))
    code = main(["ask", "--base-url", openai_server.base_url, "-m", "test-model", "--json", "hi"])
    out, err = capsys.readouterr()
    assert code == 1, err  # the exit code is that of the failure, JSON or not
    lines = out.splitlines()
    assert lines[0] == "one two"
    data = json.loads(lines[-1])
    assert set(data) == JSON_KEYS | {"error"}
    assert data["text"] == "one two" and data["finish_reason"] == "error"
    assert data["model"] == "openai:test-model"
    assert "was dropped" in data["error"]
    assert data["ttft_s"] is not None
    [row] = ledger_rows()  # issue 18: the same usage in --json as in the ledger (estimated from the partial text)
    assert data["usage"] == {"prompt_tokens": row["prompt_tokens"], "completion_tokens": row["completion_tokens"],
                             "cached_tokens": 0, "estimated": True} and row["completion_tokens"] > 0  # fmt: skip


def test_json_line_of_a_refused_request_and_of_bad_input(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_server.enqueue(auth_error())
    assert main(["ask", "--base-url", openai_server.base_url, "-m", "test-model", "--json", "hi"]) == 1
    data = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert data["text"] == "" and data["finish_reason"] == "error" and "refused" in data["error"]
    assert main(["ask", "-m", "mock:echo", "--json", "   "]) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert set(data) == JSON_KEYS | {"error"} and "empty" in data["error"]
    assert data["model"] == "mock:echo" and "error:" in err


def test_successful_json_line_has_no_error_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "--json", "fine"]) == 0
    data = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(data) == JSON_KEYS
