"""``python -m app`` as a user runs it: window before heavy imports, screenshot with --demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"LLM_PLAYGROUND_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **extra})
    env.pop("OPENAI_API_KEY", None)
    return env


@pytest.mark.parametrize("model", [{"default_model": "local:smollm2"}, {"default_model": "openai:gpt-4o-mini"},
                                   {"last_model": "openai:gpt-4o-mini"}])  # fmt: skip
def test_window_shows_before_heavy_imports(app_home: Path, model: dict[str, str]) -> None:
    """Nor keyring, settings permitting: the model to start on is set, or remembered."""
    (app_home / "config").mkdir(parents=True, exist_ok=True)
    (app_home / "config" / "settings.json").write_text(json.dumps({"version": 1, **model}))
    out = subprocess.run(
        [sys.executable, "-m", "app"], cwd=ROOT, env=_env(app_home, LLM_PLAYGROUND_STARTUP_PROBE="1"),
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert "STARTUP_SHOWN" in lines
    assert lines["HEAVY"] == "-", f"imported before the window showed: {lines['HEAVY']}"


def test_screenshot_with_demo(app_home: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    out = subprocess.run(
        [sys.executable, "-m", "app", "--screenshot", str(shot), "--demo"], cwd=ROOT, env=_env(app_home),
        capture_output=True, text=True, timeout=90,
    )
    assert out.returncode == 0, out.stderr
    from PySide6.QtGui import QImage

    img = QImage(str(shot))
    assert not img.isNull() and img.width() >= 1000 and img.height() >= 700
    # --demo uses its own throwaway home: the user's history stays untouched
    assert not (app_home / "data" / "history.sqlite3").exists()


def test_a_busy_history_at_start_is_a_message_not_a_crash(app_home: Path) -> None:
    from tests.support.sqlite_lock import LockHolder

    (app_home / "data").mkdir(parents=True, exist_ok=True)
    import sqlite3

    sqlite3.connect(app_home / "data" / "history.sqlite3").close()
    with LockHolder(app_home / "data" / "history.sqlite3", exclusive=True):
        out = subprocess.run(
            [sys.executable, "-m", "app"], cwd=ROOT,
            env=_env(app_home, LLM_PLAYGROUND_STARTUP_PROBE="1", LLM_PLAYGROUND_DB_BUSY_TIMEOUT="0.3"),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert out.returncode == 1
    assert "busy: another instance holds the history database" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("argv", "screenshot", "demo"), [
    ([], None, False), (["--demo"], None, True), (["--screenshot", "a.png", "-platform", "offscreen"], "a.png", False),
    (["--screenshot=a.png", "--demo"], "a.png", True), (["--style", "fusion"], None, False)])  # fmt: skip
def test_the_window_options_and_qt_options_pass_through(argv: list[str], screenshot: str | None, demo: bool) -> None:
    from app.ui.launch import parse_args

    args = parse_args(argv)
    assert (args.screenshot, args.demo) == (screenshot, demo)
