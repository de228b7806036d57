"""``python -m app``: dispatch to the CLI, the self-test or the GUI, each imported lazily."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from app import __version__
from app.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def fake_module(name: str, calls: list[list[str]], code: int) -> types.ModuleType:
    mod = types.ModuleType(name)

    def _main(argv: list[str]) -> int:
        calls.append(list(argv))
        return code

    mod.main = _main  # type: ignore[attr-defined]
    return mod


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"llm-playground {__version__}\n"


def test_help_lists_gui_flags_and_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in (
        "--demo",
        "--screenshot PATH",
        "--self-test",
        "ask",
        "models",
        "count",
        "keys",
        "usage",
    ):
        assert word in out


def test_cli_commands_go_to_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "dispatched"]) == 0
    assert capsys.readouterr().out == "dispatched\n"
    assert main(["ask", "--help"]) == 0
    assert "--temperature" in capsys.readouterr().out


def test_self_test_and_gui_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    selftest_calls: list[list[str]] = []
    gui_calls: list[list[str]] = []
    monkeypatch.setitem(sys.modules, "app.selftest", fake_module("app.selftest", selftest_calls, 3))
    monkeypatch.setitem(sys.modules, "app.ui.launch", fake_module("app.ui.launch", gui_calls, 0))
    assert main(["--self-test", "--quick"]) == 3
    assert selftest_calls == [["--self-test", "--quick"]]
    assert main(["--demo"]) == 0
    assert main(["--screenshot", "out.png"]) == 0
    assert main([]) == 0
    assert gui_calls == [["--demo"], ["--screenshot", "out.png"], []]


def test_help_in_a_subprocess_imports_no_qt() -> None:
    probe = (
        "import sys\n"
        "from app.__main__ import main\n"
        "code = main(['--help'])\n"
        "assert code == 0\n"
        "print('QT' if 'PySide6' in sys.modules else 'NOQT')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("NOQT")


def test_unknown_command_is_an_error_not_the_window(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo (``askk``) or a bare prompt exits 2 with a hint instead of opening the window."""
    gui_calls: list[list[str]] = []
    monkeypatch.setitem(sys.modules, "app.ui.launch", fake_module("app.ui.launch", gui_calls, 0))
    assert main(["askk", "hi"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'askk'" in err and "Did you mean 'ask'?" in err
    assert main(["What is the capital of France?"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert gui_calls == []
    assert main(["-platform", "offscreen"]) == 0  # Qt's own options still reach the window
    assert gui_calls == [["-platform", "offscreen"]]


def test_no_display_is_a_clear_error_not_a_qt_abort() -> None:
    """Without DISPLAY/WAYLAND_DISPLAY Qt aborts the process (exit 134); say what to do instead."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no display" in proc.stderr and "xvfb-run" in proc.stderr and "ask" in proc.stderr
    assert "PySide6" not in proc.stderr


def test_display_check_lets_real_sessions_and_other_platforms_through() -> None:
    from app.__main__ import display_problem

    assert display_problem([], {"DISPLAY": ":0"}, "linux") == ""
    assert display_problem([], {"WAYLAND_DISPLAY": "wayland-0"}, "linux") == ""
    assert display_problem([], {"QT_QPA_PLATFORM": "offscreen"}, "linux") == ""
    assert display_problem(["--screenshot", "x.png"], {}, "linux") == ""
    assert display_problem([], {}, "win32") == ""
    assert display_problem([], {}, "linux") != ""
