"""The data-safety cases of issue 12, replayed as written, with the real ``python -m app``
in subprocesses: a locked ledger or history is kept and waited for, a damaged ledger costs
no answer, ``kill -9`` mid-stream leaves a row, a key inside a base URL lands in no file."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from app.core.history import HistoryStore
from app.core.paths import AppPaths
from app.core.types import GenerationRecord
from app.core.usage import INTERRUPTED, RUNNING, UsageLedger
from tests.core.test_sqlite_db import corrupt_middle
from tests.support.openai_server import OpenAIServer, text, tokens
from tests.support.sqlite_lock import LockHolder

ROOT = Path(__file__).resolve().parents[2]


def app(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app ARGS`` to the end."""
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})  # fmt: skip


def start_app(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-u", "-m", "app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip


def read_until(stream: IO[str], needle: str, timeout: float = 60) -> str:
    """Read ``stream`` until ``needle`` has arrived (or fail after ``timeout``)."""
    seen = ""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while needle not in seen:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            raise AssertionError(f"{needle!r} did not arrive within {timeout} s; got {seen!r}")
        chunk = os.read(fd, 4096).decode()
        if not chunk:
            raise AssertionError(f"the stream ended before {needle!r}; got {seen!r}")
        seen += chunk
    return seen


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "the condition") -> Any:
    """Poll ``condition`` (a cheap read) until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def rec(**changes: Any) -> GenerationRecord:
    base: dict[str, Any] = dict(started_at=time.time(), provider="openai", model="gpt-4o-mini",
                                endpoint="OpenAI", adapter=None, prompt_tokens=100, completion_tokens=50,
                                cached_prompt_tokens=0, estimated=False, cost_usd="0.000045", ttft_s=0.2,
                                duration_s=1.0, tokens_per_s=40.0, finish_reason="stop")  # fmt: skip
    return GenerationRecord(**{**base, **changes})


def ledger_of(n: int) -> Path:
    path = AppPaths.default().ensure().usage_db
    led = UsageLedger(path)
    for i in range(n):
        led.record(rec(started_at=1_000_000.0 + i))
    led.close()
    return path


def rows(path: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM generations ORDER BY id").fetchall()
    finally:
        db.close()


def asides(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".corrupt-" in p.name]


# -- 1. a locked database is busy, not damaged -----------------------------------------------


def test_ask_waits_for_a_locked_ledger_then_writes_its_row() -> None:
    path = ledger_of(1001)
    holder = LockHolder(path).start()  # another process in a write transaction
    try:
        proc = start_app("ask", "-m", "mock:echo", "locked but fine")
        assert proc.stdout is not None
        assert read_until(proc.stdout, "locked but fine") == "locked but fine"  # the answer is not held up
    finally:
        holder.release()  # while ask is waiting to write its row
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == ""
    found = rows(path)
    assert len(found) == 1002 and found[-1]["model"] == "echo"
    assert asides(path.parent) == []


def test_ask_reports_busy_when_the_ledger_stays_locked_and_keeps_it(tmp_path: Path) -> None:
    path = ledger_of(1001)
    with LockHolder(path):
        done = app("ask", "-m", "mock:echo", "still answered", env={"LLM_PLAYGROUND_DB_BUSY_TIMEOUT": "0.3"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "still answered\n"
    [line] = done.stderr.splitlines()
    assert line.startswith("warning: busy: another instance holds the usage database")
    assert "1 request(s)" in line and "Traceback" not in done.stderr
    assert len(rows(path)) == 1001  # kept, not restarted at 1
    assert asides(path.parent) == []
    usage = app("usage", "--json")
    assert usage.returncode == 0 and json.loads(usage.stdout)["total"]["requests"] == 1001


def test_a_locked_history_of_300_conversations_is_never_moved_aside() -> None:
    path = AppPaths.default().ensure().history_db
    store = HistoryStore(path)
    for i in range(300):
        store.create_conversation(f"chat {i}")
    store.close()
    with LockHolder(path):
        done = app("ask", "-m", "mock:echo", "hello")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert asides(path.parent) == []
    store = HistoryStore(path)
    try:
        assert len(store.list_conversations()) == 300
    finally:
        store.close()


# -- 2. damaged pages cost no answer ---------------------------------------------------------


def test_a_damaged_ledger_costs_no_answer_and_usage_still_answers() -> None:
    path = ledger_of(1001)
    damaged = corrupt_middle(path)
    done = app("ask", "-m", "mock:echo", "my answer")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "my answer\n"
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()  # one clear warning
    assert line.startswith("warning: The usage database") and "was damaged" in line
    [aside] = [p for p in path.parent.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert str(aside) in line and aside.read_bytes() == damaged
    usage = app("usage", "--json")
    assert usage.returncode == 0 and usage.stderr == "", usage.stderr
    total = json.loads(usage.stdout)["total"]
    saved = int(line.split("with the ")[1].split(" rows")[0]) if "with the " in line else 0
    assert total["requests"] == saved + 1  # what could be read, plus this answer


# -- 3. kill -9 mid-stream leaves a row ------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_mid_stream_leaves_an_interrupted_row_with_what_arrived() -> None:
    path = AppPaths.default().ensure().usage_db
    with OpenAIServer(send_usage=True) as server:
        server.enqueue(tokens(10, hold_after=5))  # five tokens, then the server stalls
        proc = start_app("ask", "-m", "test-model", "--base-url", server.base_url, "count to ten")
        try:
            assert proc.stdout is not None
            read_until(proc.stdout, "tok4")

            def running_with_five() -> bool:
                found = rows(path) if path.exists() else []
                return bool(found) and found[-1]["completion_tokens"] == 5

            wait_for(running_with_five, what="the ledger row showing the 5 tokens received")
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == -signal.SIGKILL
    [left] = rows(path)
    assert left["finish_reason"] == RUNNING  # as the killed process left it
    usage = app("usage", "--json")  # the next start
    assert usage.returncode == 0, usage.stderr
    [row] = rows(path)
    assert row["finish_reason"] == INTERRUPTED and "interrupted" in row["error"]
    assert row["completion_tokens"] == 5 and row["prompt_tokens"] > 0 and row["estimated"] == 1
    assert row["endpoint"] == server.base_url and row["model"] == "test-model"
    total = json.loads(usage.stdout)["total"]
    assert (total["requests"], total["completion_tokens"]) == (1, 5)


# -- 4. a key inside a base URL lands in no file ---------------------------------------------


def test_a_key_inside_the_base_url_is_stored_nowhere(app_home: Path) -> None:
    password = "sk-urlpassword-" + "A1b2" * 6
    query_key = "querykey-" + "Z9y8" * 6
    with OpenAIServer() as server:
        server.enqueue(text("fine"))
        host = server.base_url.removeprefix("http://")
        with_userinfo = app("ask", "-m", "test-model", "--base-url", f"http://user:{password}@{host}", "hi")
        with_query = app("ask", "-m", "test-model", "--base-url", f"{server.base_url}?api_key={query_key}", "hi")
    assert with_userinfo.returncode == 0, with_userinfo.stderr
    assert with_userinfo.stdout == "fine\n"
    for done in (with_userinfo, with_query):
        assert password not in done.stdout + done.stderr and query_key not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    export = app_home / "data" / "usage-export.csv"
    assert app("usage", "--export-csv", str(export)).returncode == 0
    assert server.base_url in export.read_text()
    files = [p for p in app_home.rglob("*") if p.is_file()]
    assert export in files and any(p.name == "usage.sqlite3" for p in files)
    for f in files:
        data = f.read_bytes()
        assert password.encode() not in data and query_key.encode() not in data, f
