"""LoRA panel through the real BackendManager and local provider on a tiny model (CPU, offline)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.core.services import Services
from app.ui.backend_manager import BackendManager
from app.ui.widgets import lora_panel as lora_mod
from app.ui.widgets.lora_panel import LoraPanel
from tests.conftest import wait_signal
from tests.providers.local_fixtures import build_adapter, build_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model, an adapter that fits it, and one made for a wider model."""
    root = tmp_path_factory.mktemp("lora-ui")
    model = build_tiny_llama(root / "tiny-llama")
    wide = build_tiny_llama(root / "tiny-llama-wide", hidden=48, seed=3)
    return {
        "model": model,
        "wide_model": wide,
        "adapter": build_adapter(model, root / "style-a", r=4, seed=1),
        "wide": build_adapter(wide, root / "wide-adapter", r=4, seed=3),
    }


def _local_panel(qtbot: Any, services: Services, tiny: dict[str, Path]) -> tuple[BackendManager, LoraPanel]:
    """The panel over a real BackendManager on the tiny local model."""
    backend = BackendManager(services, model_id=f"local:{tiny['model']}")
    panel = LoraPanel(backend)
    qtbot.addWidget(panel)
    return backend, panel


def _close(qloop: Any, backend: BackendManager, services: Services) -> None:
    async def close() -> None:
        await backend.aclose()
        await services.aclose()

    qloop.run_until_complete(asyncio.wait_for(close(), 20))


def test_load_scale_toggle_and_unload_on_a_tiny_local_model(
    qtbot: Any, qloop: Any, services: Services, tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = BackendManager(services, model_id="mock:echo")
    panel = LoraPanel(backend)
    qtbot.addWidget(panel)
    assert not panel.is_usable() and "mock" in panel.explanation_text()
    try:
        async def load_model() -> None:
            loaded = asyncio.ensure_future(wait_signal(backend.model_loaded, 60))
            backend.set_model(f"local:{tiny['model']}")
            await loaded

        qloop.run_until_complete(asyncio.wait_for(load_model(), 90))
        assert panel.is_usable() and panel.explanation_text() == ""
        assert not panel._compare.isEnabled()  # nothing to compare yet

        picked = str(tiny["adapter"] / "adapter_config.json")
        monkeypatch.setattr(lora_mod, "choose_adapter_path", lambda parent: picked)

        async def load_adapter() -> tuple[Any, ...]:
            changed = asyncio.ensure_future(wait_signal(backend.adapters_changed, 60))
            qtbot.mouseClick(panel._load, Qt.MouseButton.LeftButton)
            return await changed

        qloop.run_until_complete(asyncio.wait_for(load_adapter(), 90))
        assert panel.adapter_names() == ["style_a"]
        row = panel.row("style_a")
        assert row.checkbox.isChecked() and row.slider.value() == 100
        assert "Rank 4" in row.toolTip() and "q_proj" in row.toolTip()
        assert panel._compare.isEnabled()
        assert [a.name for a in backend.active_adapters()] == ["style_a"]

        row.slider.setValue(50)  # keyboard/wheel path: applied at once
        assert backend.active_adapters()[0].scale == pytest.approx(0.5)
        assert row.value.text() == "50%"
        row.checkbox.setChecked(False)
        assert backend.active_adapters() == ()
        assert not row.slider.isEnabled() and not panel._compare.isEnabled()
        row.checkbox.setChecked(True)

        with qtbot.waitSignal(panel.compare_requested, timeout=1000):
            panel._compare.click()

        async def unload() -> None:
            changed = asyncio.ensure_future(wait_signal(backend.adapters_changed, 30))
            row.unload.click()
            await changed

        qloop.run_until_complete(asyncio.wait_for(unload(), 40))
        assert panel.adapter_names() == [] and backend.adapters() == []
    finally:
        _close(qloop, backend, services)


def test_switching_to_another_local_model_drops_the_adapters(
    qtbot: Any, qloop: Any, services: Services, tiny: dict[str, Path]
) -> None:
    """An adapter belongs to its base model: another local model must not run with it."""
    backend, panel = _local_panel(qtbot, services, tiny)
    messages: list[str] = []
    backend.error_occurred.connect(messages.append)
    try:
        async def scenario() -> None:
            changed = asyncio.ensure_future(wait_signal(backend.adapters_changed, 60))
            assert panel.load_path(str(tiny["adapter"]))
            await changed
            assert panel.adapter_names() == ["style_a"]
            loaded = asyncio.ensure_future(wait_signal(backend.model_loaded, 60))
            backend.set_model(f"local:{tiny['wide_model']}")
            await loaded

        qloop.run_until_complete(asyncio.wait_for(scenario(), 90))
        assert backend.adapters() == [] and backend.active_adapters() == ()
        assert panel.adapter_names() == []
        assert any("style_a" in m and "previous model" in m for m in messages)
    finally:
        _close(qloop, backend, services)


def test_bad_adapters_are_explained_in_plain_words(
    qtbot: Any, qloop: Any, services: Services, tiny: dict[str, Path], tmp_path: Path
) -> None:
    backend, panel = _local_panel(qtbot, services, tiny)
    try:
        # an adapter trained for a wider model: the backend validates and refuses
        async def wide() -> tuple[Any, ...]:
            failed = asyncio.ensure_future(wait_signal(backend.adapter_failed, 60))
            assert panel.load_path(str(tiny["wide"]))
            return await failed

        (message,) = qloop.run_until_complete(asyncio.wait_for(wide(), 90))
        assert "does not fit this model" in message
        assert "does not fit this model" in panel.error_text()
        assert panel.adapter_names() == []

        # a folder without adapter_config.json is refused before anything loads
        (tmp_path / "notes").mkdir()
        assert not panel.load_path(str(tmp_path / "notes"))
        assert "has no adapter_config.json" in panel.error_text()
        assert not panel.load_path(str(tmp_path / "missing"))
        assert "Nothing found" in panel.error_text()

        # dropping a folder loads it (drag and drop path)
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(tiny["adapter"]))])
        event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)

        async def drop() -> None:
            changed = asyncio.ensure_future(wait_signal(backend.adapters_changed, 60))
            panel.dropEvent(event)
            await changed

        qloop.run_until_complete(asyncio.wait_for(drop(), 90))
        assert panel.adapter_names() == ["style_a"]
        assert panel.error_text() == ""
    finally:
        _close(qloop, backend, services)


def test_disabled_with_an_explanation_for_a_remote_model(qtbot: Any, qloop: Any, services: Services) -> None:
    backend = BackendManager(services, model_id="openai:gpt-4o-mini")
    panel = LoraPanel(backend)
    qtbot.addWidget(panel)
    assert not panel.is_usable()
    assert "runs on a server" in panel.explanation_text()
    assert not panel._load.isEnabled() and not panel._compare.isEnabled()
    assert not panel.load_path("/anything")
    backend.set_model("mock:echo")
    assert "no weights to adapt" in panel.explanation_text()
    _close(qloop, backend, services)


def test_a_later_success_clears_the_red_error(
    qtbot: Any, qloop: Any, services: Services, tiny: dict[str, Path]
) -> None:
    """Two adapters dropped at once: the one that does not fit fails, the other loads after it."""
    backend, panel = _local_panel(qtbot, services, tiny)
    try:
        async def scenario() -> None:
            # read the error as the failure is told (after the panel's own slot): the other
            # adapter may load before this coroutine resumes, and it clears the error
            shown: list[str] = []
            backend.adapter_failed.connect(lambda _m: shown.append(panel.error_text()))
            failed = asyncio.ensure_future(wait_signal(backend.adapter_failed, 60))
            changed = asyncio.ensure_future(wait_signal(backend.adapters_changed, 60))
            assert panel.load_path(str(tiny["wide"]))
            assert panel.load_path(str(tiny["adapter"]))
            await failed
            assert shown and "does not fit this model" in shown[0]
            await changed

        qloop.run_until_complete(asyncio.wait_for(scenario(), 90))
        assert panel.adapter_names() == ["style_a"]
        assert panel.error_text() == ""
    finally:
        _close(qloop, backend, services)


def test_an_adapter_error_goes_at_the_next_action(
    qtbot: Any, qloop: Any, services: Services, tiny: dict[str, Path]
) -> None:
    """A wrong-shape adapter's error stayed in the dock after the user had moved on."""
    from app.core.types import ChatMessage, GenerationParams

    backend, panel = _local_panel(qtbot, services, tiny)

    async def fail_wide() -> None:
        failed = asyncio.ensure_future(wait_signal(backend.adapter_failed, 60))
        assert panel.load_path(str(tiny["wide"]))
        await failed
        assert "does not fit this model" in panel.error_text()

    try:
        async def scenario() -> None:
            changed = asyncio.ensure_future(wait_signal(backend.adapters_changed, 60))
            assert panel.load_path(str(tiny["adapter"]))
            await changed
            await fail_wide()
            panel.row("style_a").checkbox.setChecked(False)  # the next action in the dock
            assert panel.error_text() == ""
            await fail_wide()
            started = asyncio.ensure_future(wait_signal(backend.busy_changed, 30))
            backend.generate(backend.request([ChatMessage("user", "hi")], GenerationParams(max_tokens=2)))  # an answer starts
            await started
            assert panel.error_text() == ""

        qloop.run_until_complete(asyncio.wait_for(scenario(), 150))
    finally:
        _close(qloop, backend, services)
