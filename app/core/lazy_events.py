"""The run and tool-loop event modules, imported on first use and kept from then on.

The start-up does not load :mod:`app.core.run_events` or :mod:`app.core.tool_events` (they
come with the first send). A handler called once per streamed token must not import them in
its body either: PySide6 hooks ``__import__``, so each ``from ... import`` there costs
~5-8 µs, ~0.4 s of GUI-thread time per 80k-token answer and handler. These accessors import
once and then cost a cached call.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType


@cache
def run_events() -> ModuleType:
    """:mod:`app.core.run_events` (imported on the first call)."""
    import app.core.run_events as module

    return module


@cache
def tool_events() -> ModuleType:
    """:mod:`app.core.tool_events` (imported on the first call)."""
    import app.core.tool_events as module

    return module
