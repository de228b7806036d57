"""Tests of app/core/grid/sandbox.py: scripts run in their own bounds (time, memory, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from app.core.grid.assert_result import Answer
from app.core.grid.sandbox import Limits, ScriptError, run_python


def test_sandbox_limits_are_its_own(run: Callable[..., Any]) -> None:
    from app.core.grid.sandbox import run_js

    t0 = time.monotonic()
    with pytest.raises(ScriptError, match="time limit of 0.5 s"):
        run(run_js("(() => { while (true) {} })()", limits=Limits(0.5, 64)))
    assert time.monotonic() - t0 < 3
    assert run(run_js("typeof fetch + typeof require + typeof process")) == "undefinedundefinedundefined"
    assert Answer("x").value == "x"


def test_python_runs_the_named_function_and_gives_back_json(run: Callable[..., Any]) -> None:
    source = "def check(output, context):\n    return {'pass': output in context['vars'], 'n': len(output)}\n"
    assert run(run_python(source, "check", "a", {"vars": ["a"]})) == {"pass": True, "n": 1}
    t0 = time.monotonic()
    with pytest.raises(ScriptError):
        run(run_python("def f(o, c):\n    while True: pass\n", "f", "", {}, limits=Limits(0.5, 256)))
    assert time.monotonic() - t0 < 10
