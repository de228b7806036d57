"""app/ui/wiring.py: slots named ``_on_backend_<signal>`` are connected by name, so a slot whose
name matches no signal would silently never run; these tests catch that (and that the main
window's model controller, wired explicitly, keeps naming its slots for real signals)."""

from __future__ import annotations

import inspect

from PySide6.QtCore import QObject, Signal

from app.ui.backend_manager import BackendManager
from app.ui.controllers.models import ModelController
from app.ui.session import ChatSession
from app.ui.widgets.compare_view import CompareView
from app.ui.widgets.dashboard import DashboardDock
from app.ui.widgets.lora_panel import LoraPanel
from app.ui.wiring import connect_slots


class _Source(QObject):
    ping = Signal(int)
    pong = Signal(str)


class _Target:
    def __init__(self) -> None:
        self.seen: list[object] = []

    def _on_src_ping(self, value: int) -> None:
        self.seen.append(value)


def test_each_signal_reaches_the_slot_of_its_name_only() -> None:
    source, target = _Source(), _Target()
    assert connect_slots(source, target, "_on_src_") == 1
    source.ping.emit(7)
    source.pong.emit("unheard")
    assert target.seen == [7]


def _signals(cls: type) -> set[str]:
    return {n for n in dir(cls) if isinstance(getattr(cls, n, None), Signal)}


def test_every_backend_slot_names_a_backend_signal() -> None:
    signals = _signals(BackendManager)
    for widget in (ModelController, ChatSession, CompareView, DashboardDock, LoraPanel):
        slots = {n.removeprefix("_on_backend_") for n, _ in inspect.getmembers(widget) if n.startswith("_on_backend_")}
        assert slots, widget
        assert slots <= signals, (widget.__name__, sorted(slots - signals))


def test_every_run_slot_names_a_run_event_and_receives_it() -> None:
    from app.core import run_events
    from app.ui.wiring import RunEventSlots, run_slot_name

    kinds = {run_slot_name(k) for k in vars(run_events).values() if isinstance(k, type) and k.__name__.startswith("Run")
             and k.__module__ == run_events.__name__ and k is not run_events.RunInfo}
    for widget in (CompareView, DashboardDock):
        slots = {n for n, _ in inspect.getmembers(widget) if n.startswith("_on_run_")}
        assert slots and slots <= kinds, (widget.__name__, sorted(slots - kinds))

    class Target(RunEventSlots):
        def __init__(self) -> None:
            self.seen: list[object] = []

        def _on_run_text(self, event: run_events.RunText) -> None:
            self.seen.append(event)

    target, text = Target(), run_events.RunText("r1", "hi")
    target._on_backend_run_event(text)
    target._on_backend_run_event(run_events.RunNotice("r1", "ignored: no slot"))
    assert target.seen == [text]
