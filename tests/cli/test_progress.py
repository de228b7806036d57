"""CLI feedback on stderr: a load progress bar with ETA and a speed line on a terminal (seen
through a real pty), nothing of it on a pipe; the stream printer stays linear."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.ask import StreamPrinter
from app.cli.progress import TerminalFeedback, format_duration
from app.core.events import Progress
from app.core.run_events import LiveFigures, RunText

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_progress_bar_percentage_and_eta_on_a_terminal() -> None:
    err, clock = Terminal(), FakeClock()
    feedback = TerminalFeedback(err, clock=clock)
    feedback.progress(Progress("converting", 0.0, "272 tensors"))
    clock.now += 2.0
    feedback.progress(Progress("converting", 0.25, "68/272 tensors", eta_s=6.0))
    screen = err.getvalue()
    assert "\r" in screen and "25%" in screen and "ETA 6.0 s" in screen and "68/272 tensors" in screen
    assert "█" in screen
    clock.now += 0.01  # within the redraw interval: not drawn again
    feedback.progress(Progress("converting", 0.26, "71/272 tensors"))
    assert "71/272" not in err.getvalue()
    clock.now += 6.0
    feedback.progress(Progress("ready", 1.0, "SmolLM2"))
    assert "100%" in err.getvalue()
    feedback.clear()
    assert err.getvalue().endswith("\r\x1b[K")  # the bar is erased, not left behind


def test_unknown_fraction_shows_the_elapsed_time() -> None:
    err, clock = Terminal(), FakeClock()
    feedback = TerminalFeedback(err, clock=clock)
    feedback.progress(Progress("loading", None, "model"))
    clock.now += 3.0
    feedback.progress(Progress("loading", None, "model"))
    assert "loading  3.0 s" in err.getvalue() and "%" not in err.getvalue()


def test_nothing_but_phase_lines_when_stderr_is_not_a_terminal() -> None:
    err, clock = io.StringIO(), FakeClock()
    feedback = TerminalFeedback(err, clock=clock)
    for i in range(50):
        clock.now += 1.0
        feedback.progress(Progress("converting", i / 50, f"{i}/50"))
    feedback.progress(Progress("ready", 1.0, "model"))
    assert err.getvalue() == "converting: 0/50\nready: model\n"
    feedback.streaming(LiveFigures(tokens=10, tokens_per_s=90.0))
    assert err.getvalue() == "converting: 0/50\nready: model\n"


def test_eta_and_durations() -> None:
    assert format_duration(0.214) == "0.21 s" and format_duration(19.7) == "20 s"
    assert format_duration(200) == "3 min 20 s" and format_duration(3725) == "1 h 02 min"


def test_the_printer_keeps_no_growing_string() -> None:
    """The quadratic regression (``printed += text``): the printer must keep the deltas as a
    list and never hold a string that grows with the answer."""
    out, err = io.StringIO(), io.StringIO()
    printer = StreamPrinter(out, err)
    deltas = [f" tok{i}" for i in range(5000)]
    for d in deltas:
        printer(RunText("r", d))
    longest = max(map(len, deltas))
    grown = {k: len(v) for k, v in vars(printer).items() if isinstance(v, str) and len(v) > longest}
    assert grown == {}, f"a growing string: {grown}"
    assert printer.printed == "".join(deltas) == out.getvalue()
    assert printer.printed_chars == len(out.getvalue())
    printer.end_text()
    assert out.getvalue().endswith("tok4999\n") and err.getvalue() == ""


def _run(argv: list[str], *, pty: bool, home: Path) -> tuple[int, str, str]:
    """Run ``python -m app ARGV``; stderr on a pseudo-terminal when ``pty`` (stdout a pipe)."""
    env = {**os.environ, "LLM_PLAYGROUND_HOME": str(home), "COLUMNS": "120"}
    if not pty:
        run = subprocess.run([sys.executable, "-m", "app", *argv], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        return run.returncode, run.stdout, run.stderr
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "app", *argv], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)  # fmt: skip
    finally:
        os.close(slave)
    screen = b""
    while True:  # until the child closes the terminal (EIO on Linux)
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        screen += data
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=120), out, screen.decode("utf-8", "replace")


def test_ask_speed_line_on_a_terminal_and_none_on_a_pipe(app_home: Path) -> None:
    argv = ["ask", "-m", "mock:tokens?n=40&rate=2000", "hi"]
    code, out, screen = _run(argv, pty=True, home=app_home)
    assert code == 0, screen
    assert out.split() == [f"tok{i}" for i in range(40)]  # stdout: only the answer
    assert "tok/s" in screen and "first token" in screen and "40 tokens" in screen
    code, out, err = _run(argv, pty=False, home=app_home)
    assert code == 0 and out.split() == [f"tok{i}" for i in range(40)]
    assert err == ""  # nothing of it without a terminal


def test_model_load_bar_on_a_terminal_and_phase_lines_on_a_pipe(
    app_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.providers.local_fixtures import build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("feedback") / "tiny-llama")
    argv = ["ask", "-m", f"local:{model}", "--temperature", "0", "--max-tokens", "4", "hi"]
    code, _out, screen = _run(argv, pty=True, home=app_home)
    assert code == 0, screen
    assert "\r" in screen and "100%" in screen and "[" in screen  # the bar, then erased
    assert "loaded in" in screen and "tok/s" in screen
    code, _out, err = _run(argv, pty=False, home=app_home)
    assert code == 0, err
    assert "loading: " in err and "\r" not in err and "%" not in err and "tok/s" not in err
    assert "\x1b[" not in err
