"""A settings file nested too deeply (issue 18), replayed with the real ``python -m app``: the
command works on defaults, the file is moved aside, and the warning is printed once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.paths import AppPaths

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("content", ["[" * 100_000, "[" * 5_000 + "]" * 5_000])
def test_a_deeply_nested_settings_file_is_corrupt_like_any_other(content: str) -> None:
    settings = AppPaths.default().ensure().settings_file
    settings.write_text(content, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "app", "ask", "-m", "mock:echo", "hello"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello\n"
    assert "Traceback" not in run.stderr and "RecursionError" not in run.stderr
    assert run.stderr.count("could not be read (nested too deeply)") == 1  # warned once, not twice
    [aside] = [p for p in settings.parent.iterdir() if p.name.startswith("settings.json.corrupt-")]
    assert aside.read_text(encoding="utf-8") == content and not settings.exists()
