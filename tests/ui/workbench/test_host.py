"""app/ui/workbench/host.py: the Workbench needs of its window only what WorkbenchHost
declares; here a small host that is not the main window opens it, receives a cell sent to
the chat and is asked before quitting with an edited grid."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QObject, Signal

from app.core.grid.model import GridConfig, Prompt, TestCase, Variant
from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.workbench import asks_before_quitting, open_workbench


class Host(QObject):
    """A WorkbenchHost that records what the Workbench asked of it."""

    closed = Signal()

    def __init__(self, services: Services, backend: BackendManager) -> None:
        super().__init__()
        self.services = services
        self.backend = backend
        self.dialogs: dict[str, Any] = {}
        self.opened: list[str] = []
        self.refreshed: list[str | None] = []
        self.statuses: list[tuple[str, bool]] = []
        self.raised = 0
        self.closes = 0

    def open_conversation(self, conversation_id: str) -> None:
        self.opened.append(conversation_id)

    def refresh_sidebar(self, select: str | None = None) -> None:
        self.refreshed.append(select)

    def show_status(self, message: str, *, error: bool = False) -> None:
        self.statuses.append((message, error))

    def bring_to_front(self) -> None:
        self.raised += 1

    def close(self) -> bool:
        self.closes += 1
        return True


@pytest.fixture
def host(qloop: Any, services: Services) -> Iterator[Host]:
    backend = BackendManager(services, model_id="mock:echo")
    made = Host(services, backend)
    yield made
    bench = made.dialogs.get("workbench")
    if bench is not None:
        bench.dirty = False
        if bench.save_box is not None:
            bench.save_box.reject()
        bench.close()
        qloop.run_until_complete(asyncio.wait_for(bench.aclose(), 10))
    qloop.run_until_complete(asyncio.wait_for(backend.aclose(), 10))


def test_the_workbench_opens_from_any_host_and_sends_it_a_cell(host: Host, drive: Callable[..., Any]) -> None:
    bench = open_workbench(host)
    assert host.dialogs["workbench"] is bench and open_workbench(host) is bench
    assert [v.model for v in bench.config.variants] == ["mock:echo"]  # the host's model first
    bench.load_config(GridConfig(prompts=(Prompt("About {{pet}}"),), variants=(Variant("mock:fixed?text=purr"),),
                                 tests=(TestCase({"pet": "cats"}),)), None)  # fmt: skip
    drive(asyncio.wait_for(bench.run(), 10))
    bench.select_cell(0, 0)
    cid = bench.send_selected_to_chat()
    assert cid is not None and host.opened == [cid] and host.refreshed == [cid] and host.raised == 1
    assert host.backend.current_model() == "mock:fixed?text=purr"
    assert [m.content for m in host.services.history.messages(cid)] == ["About cats", "purr"]
    assert host.statuses[-1] == ("Opened the Workbench cell as a conversation with mock:fixed?text=purr.", False)
    bench.quit_action.trigger()
    assert host.closes == 1


def test_quitting_the_host_asks_about_an_edited_grid(host: Host) -> None:
    assert not asks_before_quitting(host)  # no Workbench yet
    bench = open_workbench(host)
    assert not asks_before_quitting(host)
    bench.set_config(bench.config.with_(description="edited"))
    assert bench.dirty and asks_before_quitting(host)
    assert bench.save_box is not None and bench.save_box.isVisible()
