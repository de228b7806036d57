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


def test_a_long_text_is_matched_in_a_child_process_with_the_same_answer(run: Callable[..., Any]) -> None:
    from app.core.grid import sandbox

    long_text = "x" * (sandbox.IN_PROCESS_REGEX_CHARS + 10) + " Paris 75001"
    children: list[dict[str, Any]] = []
    real_child = sandbox._child

    async def counting_child(job: dict[str, Any], limits: Limits) -> str:
        children.append(job)
        return await real_child(job, limits)

    sandbox._child = counting_child  # type: ignore[assignment]  # counts; the real child still runs
    try:
        assert run(sandbox.run_regex(r"(?<city>[A-Z]\w+) \d{5}$", long_text)) == "Paris 75001"
        assert run(sandbox.run_regex(r"^y", long_text)) is None
        assert run(sandbox.run_regex(r"Par", "short Paris")) == "Par"  # in this process
    finally:
        sandbox._child = real_child  # type: ignore[assignment]
    assert len(children) == 2  # the two long texts only: V8 at its heap limit can abort its host process
    assert sandbox.regex_problem("a" * (sandbox.IN_PROCESS_REGEX_CHARS + 1)) == "the pattern is longer than 100,000 characters"
