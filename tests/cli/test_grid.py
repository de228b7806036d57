"""``python -m app grid`` against the real loopback server and the mock provider."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.core.grid.store import RunStore, store_path
from app.core.paths import AppPaths
from app.core.settings import PriceOverride, Settings, SettingsStore
from tests.cli.test_ask import ledger_rows
from tests.support.openai_server import OpenAIServer, text
from tests.support.processes import default_sigint

ROOT = Path(__file__).resolve().parents[2]
CELL_KEYS = {"test", "vars", "provider", "label", "text", "usage", "cost_usd", "ttft_s", "latency_s", "tokens_per_s",
             "pass", "asserts", "error"}
SUMMARY_KEYS = {"cells", "passed", "failed", "errors", "cost_usd", "wall_s"}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=("gpt-4o-mini", "test-model")) as srv:
        yield srv


def write(tmp_path: Path, body: str, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def grid_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, Any], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, json.loads(out.splitlines()[-1]), err


def remote_grid(server: OpenAIServer) -> str:
    return f"""\
description: Loopback and mock
prompts: ["Capital of {{{{country}}}}?"]
providers:
  - id: openai:gpt-4o-mini
    config: {{base_url: "{server.base_url}"}}
  - id: openai:chat:test-model
    label: tuned
    config: {{apiBaseUrl: "{server.base_url}", temperature: 0.25, top_p: 0.5, max_tokens: 33, seed: 11,
              stop: ["END"], system: Answer in one word.}}
  - mock:echo
tests:
  - vars: {{country: France}}
    assert: [{{type: icontains, value: paris}}]
  - description: Italy
    vars: {{country: Italy}}
    assert: [{{type: not-contains, value: London}}]
"""


def test_every_cell_has_its_fields_and_assertions_decide_the_exit_code(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.default = text("Paris", " it", " is.")
    code, data, err = grid_json(capsys, ["grid", str(write(tmp_path, remote_grid(server))), "--json"])
    assert code == 1, err  # mock:echo says "Capital of France?": no 'paris' there
    assert "Traceback" not in err and "FAIL" in err  # the table goes to stderr with --json
    cells, summary = data["cells"], data["summary"]
    assert len(cells) == 6 and all(CELL_KEYS <= set(c) for c in cells)
    assert SUMMARY_KEYS <= set(summary) and (summary["cells"], summary["passed"], summary["failed"]) == (6, 5, 1)
    assert summary["errors"] == 0 and summary["wall_s"] > 0
    tuned = [c for c in cells if c["label"] == "tuned"]
    assert [c["provider"] for c in tuned] == ["openai:test-model"] * 2
    assert tuned[0]["text"] == "Paris it is." and tuned[0]["usage"]["estimated"] is False and tuned[0]["pass"] is True
    failing = next(c for c in cells if c["pass"] is False)
    assert failing["provider"] == "mock:echo" and failing["asserts"][0]["pass"] is False
    assert failing["asserts"][0]["reason"] == "the answer does not contain 'paris' (ignoring case)"
    bodies = [r.json for r in server.chat_requests]
    own = [b for b in bodies if b["model"] == "test-model"]
    assert len(own) == 2 and all((b["temperature"], b["top_p"], b["max_tokens"], b["seed"], b["stop"]) ==
                                 (0.25, 0.5, 33, 11, ["END"]) for b in own)
    assert own[0]["messages"][0] == {"role": "system", "content": "Answer in one word."}
    plain = [b for b in bodies if b["model"] == "gpt-4o-mini"]
    assert len(plain) == 2 and all("seed" not in b and b["temperature"] == 0.7 for b in plain)
    assert len(ledger_rows()) == 6  # every cell is in the usage ledger
    store = RunStore(store_path(AppPaths.default().data_dir))  # and the run in the Workbench's past runs
    (run,) = store.list_runs()
    assert run.id == summary["run_id"] and run.origin == "cli" and run.status == "complete"
    store.close()


def test_all_passing_exits_0_and_a_failing_cell_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = write(tmp_path, "prompts: ['say {{w}}']\nproviders: [mock:echo]\ntests:\n  - vars: {w: hi}\n"
                         "    assert: [{type: contains, value: hi}, {type: latency, threshold: 60000}]\n")
    assert main(["grid", str(ok)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "1 cells: 1 passed, 0 failed, 0 errors" in out
    broken = write(tmp_path, "prompts: [hi]\nproviders: ['mock:echo?fail=before', mock:echo]\n", "err.yaml")
    code, data, err = grid_json(capsys, ["grid", str(broken), "--json"])
    assert code == 1 and data["summary"]["errors"] == 1 and data["summary"]["passed"] == 1
    failed = next(c for c in data["cells"] if c["error"])
    assert "Mock failure" in failed["error"] and failed["pass"] is False and "ERROR" in err


def test_remote_cells_are_sent_at_the_same_time(server: OpenAIServer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Four remote cells: each answer is held back by the server until all four requests
    arrived, so the grid only ends if the requests overlap."""
    server.default = text("x", " y", hold_after=1)
    body = (f"prompts: ['n {{{{i}}}}']\nproviders:\n  - id: openai:gpt-4o-mini\n    config: {{base_url: '{server.base_url}'}}\n"
            "tests:\n" + "".join(f"  - vars: {{i: {i}}}\n" for i in range(4)))
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(main(["grid", str(write(tmp_path, body))])))
    worker.start()
    deadline = time.monotonic() + 20
    while len(server.chat_requests) < 4 and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.01)
    arrived = len(server.chat_requests)
    server.release()
    worker.join(30)
    assert arrived == 4, "the remote cells were not sent concurrently"
    assert result == [0]
    assert "4 cells: 4 passed" in capsys.readouterr().out


def test_a_priced_model_adds_up_in_the_summary(server: OpenAIServer, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    paths = AppPaths.default().ensure()
    SettingsStore(paths.settings_file).save(Settings(price_overrides={
        "openai:test-model": PriceOverride(input="1.50", output="4.00")}))
    server.default = text("a", " b", prompt_tokens=10, completion_tokens=5)
    body = (f"prompts: ['{{{{q}}}}']\nproviders:\n  - id: openai:test-model\n    config: {{base_url: '{server.base_url}'}}\n"
            "  - mock:echo\ntests:\n  - vars: {q: one}\n  - vars: {q: two}\n  - vars: {q: three}\n")
    code, data, _ = grid_json(capsys, ["grid", str(write(tmp_path, body)), "--json"])
    assert code == 0
    priced = [c["cost_usd"] for c in data["cells"] if c["provider"] == "openai:test-model"]
    assert priced == [pytest.approx(0.000035)] * 3  # (10 x 1.50 + 5 x 4.00) / 1M
    assert data["summary"]["cost_usd"] == pytest.approx(0.000105)


def _run_cli(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT, **kw)


@pytest.mark.parametrize(
    ("body", "args", "expected"),
    [
        ("prompts: [hi]\nproviders:\n  - id: mock:echo\n    config: {seed: -1}\n", [],
         "grid.yaml, line 4: providers[0].config.seed: seed must be a whole number"),
        ("prompts: ['{% if %}x']\nproviders: [mock:echo]\ntests:\n  - vars: {y: 1}\n", [],
         "is not a valid template (line 1: Expected an expression"),
        ("prompts: [hi]\nproviders: [mock:echo]\nenv: {A: b}\n", [], "grid.yaml, line 3: env: promptfoo's 'env' is not supported"),
        ("prompts: [hi]\nproviders: [mock:echo]\n", ["-o", "out.pdf"], "must end in .json, .csv or .html"),
        ("prompts: [hi]\nproviders: [mock:echo]\n", ["--filter", "nothing-matches"], "No test or provider matches"),
        ("prompts: [hi]\nproviders: [mock:echo]\n", ["--concurrency", "0"], "--concurrency must be from 1 to 64"),
        ("{ not: [valid yaml", [], "not valid YAML"),
    ],
)
def test_a_broken_file_or_option_exits_2_without_a_traceback(tmp_path: Path, body: str, args: list[str],
                                                             expected: str) -> None:
    result = _run_cli(["grid", str(write(tmp_path, body)), *args])
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not ledger_rows()  # nothing was sent


def test_a_billion_laughs_file_exits_2_in_seconds_with_little_memory(tmp_path: Path) -> None:
    """Issue 18: aliases nested 8 deep took RSS from 1 GB to 4.3 GB in 30 s with no output.
    The child runs capped at 400 MB of data (its own cap, whatever else this session ran) and
    within the run's timeout: expanding the aliases would hit the cap and fail differently."""
    from tests.core.grid.test_limits import laughs

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (400 << 20, 400 << 20))

    result = _run_cli(["grid", str(write(tmp_path, laughs(), "laughs.yaml")), "--json"], preexec_fn=cap)
    assert result.returncode == 2, result.stderr
    assert "laughs.yaml: the file expands to more than 200,000 values (the limit" in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grid", str(tmp_path / "nope.yaml")]) == 2
    assert "There is no grid file" in capsys.readouterr().err


def test_ctrl_c_keeps_and_prints_the_finished_cells(server: OpenAIServer, tmp_path: Path) -> None:
    server.enqueue(text("fast answer"), text("slow", " answer", hold_after=1))
    body = (f"prompts: ['{{{{q}}}}']\nproviders:\n  - id: openai:gpt-4o-mini\n    config: {{base_url: '{server.base_url}'}}\n"
            "tests:\n  - vars: {q: one}\n  - vars: {q: two}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "app", "grid", str(write(tmp_path, body)), "--json",
                             "--concurrency", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT, preexec_fn=default_sigint)  # fmt: skip
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # one line per finished cell when stderr is not a terminal
            if line.startswith("[1/2]"):
                break
        deadline = time.monotonic() + 20
        while len(server.chat_requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.release()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Stopped: the finished cells were kept" in err
    data = json.loads(out.splitlines()[-1])
    texts = {c["vars"]["q"]: c for c in data["cells"]}
    assert texts["one"]["text"] == "fast answer" and texts["one"]["pass"] is True
    assert texts["two"]["pass"] is None and texts["two"]["text"] in ("", "slow")
    store = RunStore(store_path(AppPaths.default().data_dir))
    stored = store.load(data["summary"]["run_id"])
    assert stored.cells[(0, 0)]["text"] == "fast answer" and stored.header.status == "stopped"
    store.close()


def test_filter_keeps_matching_tests_or_providers_and_outputs_are_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = ("prompts: ['{{q}}']\nproviders: [mock:echo, {id: 'mock:fixed?text=ok', label: fixed}]\n"
            "tests:\n  - {description: cats, vars: {q: meow}}\n  - {description: dogs, vars: {q: woof}}\n")
    grid = write(tmp_path, body)
    code, data, _ = grid_json(capsys, ["grid", str(grid), "--json", "--filter", "DOGS"])
    assert code == 0 and [(c["description"], c["label"]) for c in data["cells"]] == [("dogs", "mock:echo"), ("dogs", "fixed")]
    _, data, _ = grid_json(capsys, ["grid", str(grid), "--json", "--filter", "fixed"])
    assert [(c["description"], c["label"]) for c in data["cells"]] == [("cats", "fixed"), ("dogs", "fixed")]
    for suffix in (".json", ".csv", ".html"):
        target = tmp_path / f"results{suffix}"
        assert main(["grid", str(grid), "-o", str(target)]) == 0
        assert target.stat().st_size > 100
    capsys.readouterr()
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["summary"]["cells"] == 4
    assert (tmp_path / "results.csv").read_text(encoding="utf-8").count("\n") == 5


def test_the_progress_bar_on_a_terminal() -> None:
    import io

    from app.cli.grid_output import GridProgress
    from app.core.grid.model import GridConfig, Prompt, TestCase, Variant
    from app.core.grid.runner import GridRunner

    class Tty(io.StringIO):
        encoding = "utf-8"

        def isatty(self) -> bool:
            return True

    config = GridConfig(prompts=(Prompt("{{i}}"),), variants=(Variant("mock:echo"),),
                        tests=tuple(TestCase({"i": i}) for i in range(4)))
    runner = GridRunner(None, config)  # type: ignore[arg-type]  (never started)
    now = [0.0]
    err = Tty()
    progress = GridProgress(err, lambda: runner, clock=lambda: now[0])
    for i, cell in enumerate(runner.cells.values()):
        if i == 3:
            break
        cell.status = "done"
        now[0] += 1.0
        progress.on_cell(cell, "status")
    line = err.getvalue().split("\r")[-1]
    assert "3/4 cells" in line and "free" in line and "ETA 1.0 s" in line and "█" in line
    progress.clear()
    assert err.getvalue().endswith("\r\x1b[K")
