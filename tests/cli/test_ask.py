"""``python -m app ask``: the real CLI in-process (capsys) and as a subprocess."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.core.paths import AppPaths
from tests.support.processes import default_sigint

JSON_KEYS = {"model", "text", "usage", "cost_usd", "ttft_s", "tokens_per_s", "finish_reason", "reasoning_chars"}


def ledger_rows() -> list[sqlite3.Row]:
    """Every row of every table in the usage ledger that looks like a generation record."""
    db = AppPaths.default().usage_db
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        rows: list[sqlite3.Row] = []
        for table in tables:
            cols = [r[1] for r in con.execute(f"pragma table_info({table})")]
            if "completion_tokens" in cols:
                rows.extend(con.execute(f"select * from {table}"))
        return rows
    finally:
        con.close()


def test_ask_streams_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "-m", "mock:echo", "hello there world"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "hello there world\n"
    assert err == ""
    rows = ledger_rows()
    assert len(rows) == 1
    assert rows[0]["provider"] == "mock" and rows[0]["completion_tokens"] == 3


def test_ask_flushes_each_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every delta is written and flushed before the next one arrives."""

    class Recorder(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.flushed: list[str] = []

        def flush(self) -> None:
            self.flushed.append(self.getvalue())

    out = Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["ask", "-m", "mock:fixed?text=one two three", "x"]) == 0
    assert out.getvalue() == "one two three\n"
    assert "one" in out.flushed and "one two" in out.flushed and "one two three" in out.flushed


def test_ask_json_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "-m", "mock:lorem?n=12", "--seed", "3", "--json", "go"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    data = json.loads(lines[-1])
    assert set(data) == JSON_KEYS
    assert data["model"] == "mock:lorem?n=12"
    assert data["text"] == lines[0]
    assert len(data["text"].split()) == 12
    assert data["usage"] == {"prompt_tokens": 4, "completion_tokens": 12, "cached_tokens": 0, "estimated": False}
    assert data["finish_reason"] == "stop"
    assert data["cost_usd"] == 0.0  # the mock is free: zero, not unknown


def test_ask_reads_prompt_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("piped prompt text"))
    assert main(["ask", "-m", "mock:echo", "-"]) == 0
    assert capsys.readouterr().out == "piped prompt text\n"


def test_ask_params_reach_the_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["ask", "-m", "mock:echo", "--max-tokens", "2", "--system", "be brief", "--json", "a b c d"]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out.splitlines()[-1])
    assert data["text"] == "a b"
    assert data["finish_reason"] == "length"
    assert data["usage"]["prompt_tokens"] == (2 + 3) + (4 + 3)  # system + user, 3 overhead each


def test_ask_stop_sequence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "--stop", "STOP", "one two STOP three"]) == 0
    assert capsys.readouterr().out == "one two \n"


def test_bad_temperature_exits_2_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "-m", "mock:echo", "--temperature", "5", "hi"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "temperature must be between 0 and 2" in err
    assert "Traceback" not in err
    assert ledger_rows() == []


def test_unparseable_number_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "--max-tokens", "lots", "hi"]) == 2
    assert "--max-tokens" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model", "needle", "code"),
    [
        ("nonsense", "is not a model id", 2),
        ("acme:gpt", "Unknown provider 'acme'", 2),
        ("mock:nope", "There is no mock model 'nope'", 2),  # issue 18: a model that is not there is bad input
        ("local:/nonexistent/model-folder", "No model at '/nonexistent/model-folder'", 2),
    ],
)
def test_unknown_model_is_a_clear_message(
    capsys: pytest.CaptureFixture[str], model: str, needle: str, code: int
) -> None:
    assert main(["ask", "-m", model, "hi"]) == code
    out, err = capsys.readouterr()
    assert needle in err
    assert out == ""
    assert "Traceback" not in err


def test_failure_mid_stream_keeps_partial_text(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "-m", "mock:lorem?n=20&fail=mid&fail_after=5", "go"])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(out.split()) == 5  # the five tokens sent before the cut stay on stdout
    assert "Mock stream cut mid-way" in err
    assert "partial" in err
    rows = ledger_rows()
    assert len(rows) == 1 and rows[0]["finish_reason"] == "error"


def test_failure_before_first_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo?fail=before&error=auth", "hi"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "Mock failure before the first token." in err and "keys set" in err


def test_endpoint_with_a_non_openai_model_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "--base-url", "http://127.0.0.1:9/v1", "hi"]) == 2
    assert "only apply to OpenAI-compatible models" in capsys.readouterr().err


def test_subprocess_ask_streams_without_qt_or_torch(tmp_path: Path) -> None:
    """The real entry point; the CLI never imports PySide6 or torch for a mock answer."""
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['app', 'ask', '-m', 'mock:echo', 'hello from a subprocess']\n"
        "try:\n"
        "    runpy.run_module('app', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    heavy = sorted(m for m in ('PySide6', 'torch', 'transformers', 'openai') if m in sys.modules)\n"
        "    sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
        "    raise\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from a subprocess\n"
    assert "HEAVY=\n" in proc.stderr


def test_subprocess_json_and_error_exit_codes() -> None:
    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run(
        [sys.executable, "-m", "app", "ask", "-m", "mock:echo", "--json", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert ok.returncode == 0, ok.stderr
    assert set(json.loads(ok.stdout.splitlines()[-1])) == JSON_KEYS
    bad = subprocess.run(
        [sys.executable, "-m", "app", "ask", "-m", "mock:echo", "--top-p", "0", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert bad.returncode == 2
    assert "top_p must be greater than 0" in bad.stderr and "Traceback" not in bad.stderr


def interrupt_ask(*args: str, again: bool = False, first: str = "tok0") -> tuple[int, str, str]:
    """Run ``python -m app ask ARGS`` (a model that streams ``first`` first, e.g. ``tok0 tok1
    ...``), press Ctrl+C once streaming has started (``again``: again and again until the app
    exits); return its exit code, stdout and stderr."""
    import signal
    import time

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-u", "-m", "app", "ask", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=root, preexec_fn=default_sigint)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.read(len(first)) == first  # blocks until streaming has started
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while again and proc.poll() is None and time.monotonic() < deadline:
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, first + out, err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child differs on Windows")
def test_ctrl_c_exits_130_and_records_the_cancel() -> None:
    code, _, err = interrupt_ask("-m", "mock:tokens?n=100000&rate=20", "go")
    assert code == 130, err
    assert "Cancelled." in err and "Traceback" not in err
    rows = ledger_rows()
    assert len(rows) == 1 and rows[0]["finish_reason"] == "cancelled"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child differs on Windows")
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_ctrl_c_pressed_again_while_stopping_still_exits_130_with_a_cancelled_row(json_flag: list[str]) -> None:
    """Issue 18: a second Ctrl+C during the clean-up of a stopped local model load raised
    KeyboardInterrupt in the middle of it ("Task exception was never retrieved", the ledger
    row left ``running``). ``stop_s`` makes the mock's clean-up take a second; Ctrl+C is
    pressed again and again until the app exits."""
    code, out, err = interrupt_ask("-m", "mock:tokens?n=100000&rate=20&stop_s=1", *json_flag, "go", again=True)
    assert code == 130, err
    assert "Traceback" not in err and "never retrieved" not in err and "Cancelled." in err
    rows = ledger_rows()
    assert len(rows) == 1 and rows[0]["finish_reason"] == "cancelled"
    if json_flag:  # --json still ends with its one line
        data = json.loads(out.splitlines()[-1])
        assert data["finish_reason"] == "cancelled" and data["text"].startswith("tok0")


def test_default_model_from_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from app.core.settings import Settings, SettingsStore

    SettingsStore(AppPaths.default().ensure().settings_file).save(
        Settings(default_model="mock:fixed?text=default")
    )
    assert main(["ask", "anything"]) == 0
    assert capsys.readouterr().out == "default\n"


@pytest.mark.parametrize(
    ("spec", "path", "scale"),
    [
        ("/a/b", "/a/b", 1.0),
        ("/a/b:0.5", "/a/b", 0.5),
        ("C:\\adapters\\x", "C:\\adapters\\x", 1.0),
        ("C:\\adapters\\x:2", "C:\\adapters\\x", 2.0),
    ],
)
def test_lora_spec_parsing(spec: str, path: str, scale: float) -> None:
    from app.cli.ask import parse_lora

    parsed = parse_lora(spec)
    assert (parsed.path, parsed.scale) == (path, scale)


def test_default_temperature_is_greedy_for_the_bundled_model_only() -> None:
    """SmolLM2-135M answers simple questions reliably only greedily; others keep 0.7."""
    from app.cli import build_parser
    from app.cli.ask import build_request

    parser = build_parser()
    for model, expected in (("local:smollm2", 0.0), ("mock:echo", 0.7), ("openai:gpt-4o", 0.7)):
        args = parser.parse_args(["ask", "-m", model, "hi"])
        assert build_request(args, model, "hi").params.temperature == expected
    args = parser.parse_args(["ask", "-m", "local:smollm2", "--temperature", "0.5", "hi"])
    assert build_request(args, "local:smollm2", "hi").params.temperature == 0.5


class ClosedPipe(io.StringIO):
    """A stdout whose reader goes away after ``keep`` writes (like ``... | head``)."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def write(self, text: str) -> int:
        if self.keep <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.keep -= 1
        return super().write(text)


def test_closed_stdout_stops_the_generation_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ask ... | head``: no traceback, no error text, exit 141, the stop is in the ledger."""
    pipe = ClosedPipe(keep=3)
    monkeypatch.setattr(sys, "stdout", pipe)
    code = main(["ask", "-m", "mock:tokens?n=100000", "go"])
    err = capsys.readouterr().err
    assert code == 141
    assert err == ""
    rows = ledger_rows()
    assert len(rows) == 1 and rows[0]["finish_reason"] == "error"
    assert rows[0]["completion_tokens"] < 100  # stopped, not generated to the end
    assert "stdout was closed" in rows[0]["error"]


@pytest.mark.parametrize(
    "args",
    [["ask", "-m", "mock:tokens?n=100000", "go"], ["usage", "--by", "day"], ["models"]],
)
def test_subprocess_closed_pipe_has_no_traceback(args: list[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the first line
    try:
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141, err


def test_reasoning_goes_to_stderr_and_the_answer_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "-m", "mock:fixed?text=The answer is 4.&think=3", "--json", "2+2?"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "The answer is 4." and len(lines) == 2
    data = json.loads(lines[1])
    assert data["text"] == "The answer is 4." and data["reasoning_chars"] == len("alpha beta gamma")
    assert err == "thinking: alpha beta gamma\n"  # not a terminal: no colour codes


def test_reasoning_is_dimmed_on_a_terminal() -> None:
    from app.cli.ask import StreamPrinter
    from app.core.run_events import RunReasoning, RunText

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Tty()
    printer = StreamPrinter(out, err)
    for event in (RunReasoning("r", "hmm"), RunReasoning("r", " ok"), RunText("r", "Four.")):
        printer(event)
    assert out.getvalue() == "Four."
    assert err.getvalue() == "\x1b[2mthinking: hmm\x1b[0m\x1b[2m ok\x1b[0m\n"


def test_thinking_until_the_token_limit_explains_the_empty_answer(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "-m", "mock:fixed?text=never&think=50", "--max-tokens", "5", "--json", "go"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(out.splitlines()) == 1 and json.loads(out)["finish_reason"] == "length"
    assert err.startswith("thinking: alpha") and "gave no answer" in err and "--max-tokens" in err
