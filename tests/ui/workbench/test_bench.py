"""The Workbench's declared interface (:class:`~app.ui.workbench.bench.Bench`) against the real
window: every part and operation the mixins reach through it is there, of the declared kind,
and takes the declared parameters (mypy checks the types in window.py; this checks the
objects a running window has)."""

from __future__ import annotations

import inspect
from typing import Any

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QWidget

from app.ui.workbench.bench import Bench

MEMBERS = {name: value for name, value in vars(Bench).items()
           if not name.startswith("__") and (inspect.isfunction(value) or isinstance(value, property))}
STATE = set(Bench.__annotations__)


def test_the_interface_declares_the_parts_and_operations_the_mixins_use() -> None:
    assert {"services", "store", "runner", "model", "table", "tabs", "review_panel", "blind_action"} <= STATE
    assert {"load_config", "set_config", "rerun_selected", "current_review", "confirm", "budget"} <= set(MEMBERS)


def test_the_window_has_every_declared_part(bench: Any) -> None:
    for name in STATE:
        assert hasattr(bench, name), f"Bench declares {name}, the window has no such attribute"
    assert isinstance(bench.table, QWidget) and isinstance(bench.review_panel, QWidget)
    assert bench.only_failures_action.isCheckable() and bench.store is not None and bench.runner is not None


def test_the_window_has_every_declared_operation_with_its_parameters(bench: Any) -> None:
    for name, declared in MEMBERS.items():
        if isinstance(declared, property):
            value = getattr(bench, name)
            if name in ("run_finished", "confirming"):
                assert isinstance(value, SignalInstance), name
            continue
        actual = getattr(type(bench), name, None)
        assert callable(actual), f"Bench declares {name}(), the window has none"
        wanted = list(inspect.signature(declared).parameters)
        if name in ("window", "setWindowTitle"):  # Qt's own: no Python signature to compare
            continue
        have = list(inspect.signature(actual).parameters)
        assert have[: len(wanted)] == wanted, f"{name}{tuple(have)} does not take the declared {tuple(wanted)}"
        assert inspect.iscoroutinefunction(actual) == inspect.iscoroutinefunction(declared), name
