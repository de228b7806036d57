"""``ask`` against a loopback server that answers 429 with Retry-After: a wait beyond the
retry settings fails at once and says how long; a shorter one counts down on stderr."""

from __future__ import annotations

import io

import pytest

from app.cli import main
from app.cli.ask import StreamPrinter
from app.core.errors import RateLimited
from app.core.retry import RetryWait
from app.core.run_events import RunRetrying
from tests.cli.test_ask import ledger_rows
from tests.support.openai_server import OpenAIServer, rate_limited, text


def test_retry_after_3600_fails_at_once_saying_how_long(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_server.enqueue(rate_limited(retry_after="3600"), text("too late"))
    code = main(["ask", "-m", "gpt-4o-mini", "--base-url", openai_server.base_url, "hi"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert f"error: {openai_server.base_url} asked to wait 1 h 0 min before retrying" in err
    assert "retry settings allow" in err and "Traceback" not in err
    assert len(openai_server.chat_requests) == 1  # not retried
    [row] = ledger_rows()
    assert row["finish_reason"] == "error" and "1 h 0 min" in row["error"]


def test_a_short_retry_after_counts_down_on_stderr(
    openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_server.enqueue(rate_limited(retry_after="1"), text("after", " the wait"))
    code = main(["ask", "-m", "gpt-4o-mini", "--base-url", openai_server.base_url, "hi"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "after the wait\n"
    assert err == f"{openai_server.base_url}: rate limited; retrying in 1 s (attempt 2 of 3)...\n"
    assert len(openai_server.chat_requests) == 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_countdown_ticks_in_place_on_a_terminal() -> None:
    err = Terminal()
    printer = StreamPrinter(io.StringIO(), err)
    exc = RateLimited("slow", retry_after=3.0)
    for left in (3.0, 2.0, 1.0, 0.0):
        notice = RetryWait(1, 3, left, 3.0, exc, "OpenAI", 3.0)
        printer(RunRetrying("r", 1, 3.0, notice.message(), left))
    printer.end_progress()
    shown = err.getvalue()
    assert shown.count("\r") == 4 and shown.endswith("\r\x1b[K")  # three ticks in place, then erased
    assert [part.split(";")[1].strip().removesuffix("\x1b[K") for part in shown.split("\r") if ";" in part] == [
        "retrying in 3 s (attempt 2 of 3)...",
        "retrying in 2 s (attempt 2 of 3)...",
        "retrying in 1 s (attempt 2 of 3)...",
    ]
