"""The main window and its models: a send while the chosen model loads waits for it and says
so, load progress with a percentage in the picker and the status bar, every endpoint in the
picker with its state, a typed id, the retry countdown and the before-sending count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from app.core.events import Progress
from app.core.provider import ProviderContext
from app.core.run_events import RunRetrying
from app.core.secrets import SecretStore
from app.core.services import Services
from app.core.settings import EndpointConfig
from app.core.types import ModelInfo
from app.ui.backend_manager import BackendManager
from app.ui.main_window import MainWindow
from app.ui.widgets.find_bar import FindBar
from tests.conftest import expect_signal
from tests.support.fakes import FakeLocal
from tests.support.openai_server import OpenAIServer, rate_limited, text


class GatedLoadLocal(FakeLocal):
    """A ``local`` provider whose loads report 45 % and then wait for :attr:`load_gate`."""

    instances: list[GatedLoadLocal] = []

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.load_gate = asyncio.Event()
        GatedLoadLocal.instances.append(self)

    async def load(self, model: str, on_progress: Callable[[Progress], None] | None = None) -> ModelInfo:
        if on_progress:
            on_progress(Progress("converting", 0.45, "SmolLM2-135M-Instruct.Q4_1.gguf"))
        await self.load_gate.wait()
        return await super().load(model, on_progress)

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        async for event in super().stream(request):
            yield event


@pytest.fixture
def window(qloop: Any, qapp: Any, services: Services) -> Iterator[MainWindow]:
    backend = BackendManager(services, model_id="mock:echo")
    win = MainWindow(services, backend=backend)
    win.show()
    yield win
    win.close()
    qloop.run_until_complete(backend.aclose())


def _run(qloop: Any, coro: Any, timeout: float = 20) -> Any:
    return qloop.run_until_complete(asyncio.wait_for(coro, timeout))


def test_a_send_while_the_chosen_model_loads_waits_for_it_and_says_so(window: MainWindow, qloop: Any) -> None:
    GatedLoadLocal.instances.clear()
    window.services.registry.register("local", GatedLoadLocal)

    async def scenario() -> None:
        window.picker.type_model("local:smollm2")  # picked: current at once, loading in a task
        await asyncio.sleep(0)
        fake = GatedLoadLocal.instances[-1]
        assert window.picker.state_label.text() == "loading 45%"
        assert window.progress.isVisibleTo(window) and window.progress.value() == 450
        done = expect_signal(window.session.answer_done)
        window.editor.set_message("hello")
        assert window.chat.send() is not None  # within a second of picking it
        assert window.status_label.text().startswith("Waiting for local:smollm2 to load (45%)")
        await asyncio.sleep(0.05)
        assert fake.runs == []  # nothing went to any model yet
        fake.load_gate.set()
        (_gen, status), = await done.wait(10)
        assert status == "complete"
        answer = window.services.history.messages(window.session.conversation_id or "")[-1]
        assert (answer.model, answer.content) == ("local:smollm2", "smollm2 says hi")  # never the previous model
        assert window.picker.state_label.text() == "ready"
        assert not window.progress.isVisibleTo(window)

    _run(qloop, scenario())


def test_an_unreachable_endpoint_is_listed_with_its_state(window: MainWindow, qloop: Any) -> None:
    settings = window.services.settings
    settings.endpoints.append(EndpointConfig(name="My server", base_url="http://127.0.0.1:9/v1"))

    async def scenario() -> None:
        listed = expect_signal(window.backend.models_listed)
        window.backend.refresh_models()
        await listed.wait(20)

    _run(qloop, scenario(), 30)
    rows = [r.strip() for r in window.picker.row_texts()]
    assert "Endpoint: My server" in rows
    assert rows[rows.index("Endpoint: My server") + 1] == "⚠ unreachable: connection refused"
    assert window.picker.endpoint_state("OpenAI") == "needs key"  # the others keep their own state


def test_switched_off_local_servers_that_answer_are_found(window: MainWindow, qloop: Any) -> None:
    with OpenAIServer(models=["llama3.2:1b"]) as server:
        settings = window.services.settings
        settings.endpoints.append(EndpointConfig(name="Ollama here", base_url=server.base_url, kind="ollama",
                                                 enabled=False))  # fmt: skip
        window.services.probe_local_servers = True  # as the app sets it at start

        async def scenario() -> None:
            listed = expect_signal(window.backend.models_listed)
            window.backend.refresh_models()
            await listed.wait(20)

        _run(qloop, scenario(), 30)
    assert window.picker.endpoint_state("Ollama here") == "found running"
    assert "openai:llama3.2:1b" in window.picker.model_ids()


def test_the_status_bar_counts_down_a_retry(window: MainWindow, qloop: Any) -> None:
    from app.core.settings import RetryPolicy

    with OpenAIServer() as server:
        server.enqueue(rate_limited(retry_after="3"), text("ok"))
        window.services.settings.endpoints.append(server.endpoint())
        window.services.settings.retry = RetryPolicy(max_attempts=2, base_delay_s=0.1, jitter=0.0)
        provider = window.services.registry.get("openai")

        async def no_wait(_seconds: float) -> None:
            await asyncio.sleep(0)

        provider.retry_sleep = no_wait  # type: ignore[attr-defined]
        shown: list[str] = []
        window.backend.run_event.connect(lambda e: shown.append(window.status_label.text())
                                        if isinstance(e, RunRetrying) else None)

        async def scenario() -> None:
            window.backend.set_model("openai:test-model", endpoint="Loopback")
            done = expect_signal(window.session.answer_done)
            window.editor.set_message("hi")
            window.chat.send()
            (_gen, status), = await done.wait(15)
            assert status == "complete"

        _run(qloop, scenario())
    assert [s.split("retrying in ")[1].split(" ")[0] for s in shown] == ["3", "2", "1", "0"]
    assert all("rate limited" in s for s in shown)


def test_the_before_sending_count_of_the_bundled_model_includes_its_template(window: MainWindow, qloop: Any) -> None:
    """The window once said ~11 where SmolLM2 used 37 (its template adds a system prompt)."""
    from app.providers.bundled import bundled_status

    if not bundled_status()[0]:
        pytest.skip("the bundled model is not installed (lite flavour)")

    async def scenario() -> str:
        counted = expect_signal(window.editor.count_updated)
        window.backend.set_model("local:smollm2")  # not loaded: counted from the GGUF's own template
        window.backend.stop()
        window.editor.set_message("What is the capital of France?")
        return str((await counted.wait(20))[-1][0])

    label = _run(qloop, scenario(), 30)
    tokens = int(label.split()[0].lstrip("~").replace(",", ""))
    assert abs(tokens - 37) <= 3.7, label


def test_ctrl_f_finds_in_the_conversation(window: MainWindow, qloop: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    async def scenario() -> None:
        for message in ("the quick brown fox", "a lazy dog", "another fox here"):
            done = expect_signal(window.session.answer_done)
            window.editor.set_message(message)
            window.chat.send()
            await done.wait(10)

    _run(qloop, scenario())
    assert window.findChild(FindBar) is None  # made at the first Ctrl+F, not at start
    QTest.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    bar = window.find_bar
    assert bar.isVisible() and bar.edit.hasFocus() and window.findChild(FindBar) is bar
    assert window.transcript.geometry().bottom() < bar.geometry().top() < window.editor.geometry().top()
    QTest.keyClicks(bar.edit, "FOX")
    assert bar.match_count() == 4  # the echo model repeats each message: two cards per fox
    assert bar.count_label.text() == "1 of 4"
    first = bar.current()
    assert first is not None and first.card.body.toPlainText()[first.start:first.end].lower() == "fox"
    QTest.keyClick(bar.edit, Qt.Key.Key_Return)
    assert bar.count_label.text() == "2 of 4"
    QTest.keyClick(bar.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert bar.current() == first
    QTest.keyClick(bar.edit, Qt.Key.Key_Escape)
    assert not bar.isVisible() and window.editor.message_edit.hasFocus()
    assert window.backend.current_model() == "mock:echo"  # Esc in the bar closed it, nothing else


def test_a_model_load_is_shown_apart_from_the_first_token(window: MainWindow, qloop: Any) -> None:
    window.services.registry.register("local", FakeLocal)
    window.backend.selection.choose("local:tiny")  # current, not loaded: the answer's run loads it

    async def scenario() -> None:
        done = expect_signal(window.session.answer_done)
        window.editor.set_message("hi")
        window.chat.send()
        await done.wait(10)

    _run(qloop, scenario())
    figures = window.transcript.cards()[-1].figures.text()
    assert "loaded in" in figures and "first token" in figures
    assert figures.index("loaded in") < figures.index("first token")
    dash = window.dashboard
    assert dash is not None and "loaded in" in dash.status_text()


def test_the_next_start_reopens_on_the_model_used_last_without_the_keyring(qloop: Any, services: Services) -> None:
    from tests.core.test_services import CountingKeyring

    services.settings.endpoints.append(EndpointConfig(name="box", base_url="http://127.0.0.1:9/v1"))
    first = MainWindow(services)  # the window picks the model to start on
    first.backend.set_model("openai:llama3", endpoint="box")
    first.close()  # saves the settings
    qloop.run_until_complete(first.backend.aclose())
    ring = CountingKeyring()
    again = Services.create(secrets=SecretStore(backend=ring, environ={}))
    second = MainWindow(again)
    try:
        assert (second.backend.current_model(), second.backend.current_endpoint()) == ("openai:llama3", "box")
        assert second.picker.current_model() == "openai:llama3"
        assert ring.reads == 0
    finally:
        second.close()
        qloop.run_until_complete(asyncio.wait_for(again.aclose(), 30))
