"""A small stand-in for the BackendManager, for the dashboard/history/keys/LoRA widget tests.

It has the contract's signals and methods. Generations run through the *real* Engine (mock
provider, real ledger) so the figures the widgets show come from real records; adapters are
kept in a list and only validated for existence (the LoRA panel tests that need real
adapters use the real BackendManager).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.engine import LiveStats
from app.core.errors import AppError, StreamInterrupted
from app.core.events import StreamEvent, TextDelta
from app.core.services import Services
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef


class FakeAdapter:
    """What the LoRA panel reads from an AdapterInfo."""

    def __init__(self, name: str, path: str, scale: float = 1.0, active: bool = True) -> None:
        self.name = name
        self.path = path
        self.sha256 = "ab" * 32
        self.rank = 8
        self.alpha = 16
        self.target_modules = ["q_proj", "v_proj"]
        self.base_model_hint = "tiny-llama"
        self.warnings: list[str] = []
        self.scale = scale
        self.active = active


class FakeBackend(QObject):
    """The BackendManager's signals and methods, with a real Engine underneath."""

    generation_started = Signal(str, object)
    token_received = Signal(str, str)
    stats_updated = Signal(str, object)
    generation_finished = Signal(str, object)
    generation_failed = Signal(str, str, str)
    generation_cancelled = Signal(str, str)
    busy_changed = Signal(bool)
    model_changed = Signal(str)
    model_loading = Signal(str, str, float)
    model_loaded = Signal(str)
    model_load_failed = Signal(str, str)
    models_listed = Signal(object)
    adapters_changed = Signal(object)
    adapter_failed = Signal(str)
    ledger_changed = Signal()
    error_occurred = Signal(str)

    def __init__(self, services: Services, model: str = "mock:echo", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self._model = model
        self._ids = itertools.count(1)
        self._task: asyncio.Task[Any] | None = None
        self._adapters: list[FakeAdapter] = []
        self.calls: list[tuple[str, Any]] = []

    # models
    def current_model(self) -> str:
        return self._model

    def is_remote(self, model_id: str | None = None) -> bool:
        return ModelRef.parse(model_id or self._model).provider == "openai"

    def set_model(self, model_id: str) -> None:
        self._model = model_id
        self.model_changed.emit(model_id)

    def refresh_models(self) -> None:
        self.calls.append(("refresh_models", None))

    # generation
    def is_busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def generate(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        *,
        conversation_id: str | None = None,
        endpoint: str | None = None,
        model_id: str | None = None,
        adapters: tuple[AdapterSpec, ...] | None = None,
    ) -> str:
        gen_id = f"g{next(self._ids)}"
        request = GenerationRequest(
            ModelRef.parse(model_id or self._model),
            tuple(messages),
            params,
            endpoint,
            self.active_adapters() if adapters is None else adapters,
        )
        self._task = asyncio.ensure_future(self._run(gen_id, request, conversation_id))
        return gen_id

    async def _run(self, gen_id: str, request: GenerationRequest, conversation_id: str | None) -> None:
        info = {
            "model": str(request.model),
            "endpoint": request.endpoint,
            "adapters": [{"name": a.name, "path": a.path, "scale": a.scale, "sha256": ""} for a in request.adapters],
            "conversation_id": conversation_id,
            "message_id": None,
        }
        self.busy_changed.emit(True)
        self.generation_started.emit(gen_id, info)
        parts: list[str] = []

        def on_event(event: StreamEvent, stats: LiveStats) -> None:
            if isinstance(event, TextDelta) and event.text:
                parts.append(event.text)
                self.token_received.emit(gen_id, event.text)
                self.stats_updated.emit(
                    gen_id,
                    {
                        "tokens": stats.chunks,
                        "tokens_per_s": stats.tokens_per_s(),
                        "ttft_s": stats.ttft_s,
                        "cost_usd": Decimal(0),
                        "elapsed_s": time.perf_counter() - stats.started,
                    },
                )

        try:
            result = await self.services.engine.run(request, on_event, conversation_id=conversation_id)
        except asyncio.CancelledError:
            self.generation_cancelled.emit(gen_id, "".join(parts))
            self.ledger_changed.emit()
            self.busy_changed.emit(False)
            raise
        except StreamInterrupted as exc:
            self.generation_failed.emit(gen_id, exc.user_message(), exc.partial_text)
        except AppError as exc:
            self.generation_failed.emit(gen_id, exc.user_message(), "".join(parts))
        else:
            self.generation_finished.emit(gen_id, result)
        self.ledger_changed.emit()
        self.busy_changed.emit(False)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def compare(self, messages: list[ChatMessage], params: GenerationParams) -> tuple[str, str]:
        base_id = f"g{next(self._ids)}"
        lora_id = f"g{next(self._ids)}"
        model = ModelRef.parse(self._model)

        async def both() -> None:
            await self._run(base_id, GenerationRequest(model, tuple(messages), params, None, ()), None)
            await self._run(lora_id, GenerationRequest(model, tuple(messages), params, None, self.active_adapters()), None)

        self._task = asyncio.ensure_future(both())
        return base_id, lora_id

    # adapters
    def load_adapter(self, path: str) -> None:
        self.calls.append(("load_adapter", path))
        folder = Path(path).parent if path.endswith(".json") else Path(path)
        if not (folder / "adapter_config.json").is_file():
            self.adapter_failed.emit(f"There is no adapter_config.json in {folder}.")
            return
        self._adapters.append(FakeAdapter(folder.name, str(folder)))
        self.adapters_changed.emit(self.adapters())

    def unload_adapter(self, name: str) -> None:
        self._adapters = [a for a in self._adapters if a.name != name]
        self.adapters_changed.emit(self.adapters())

    def set_adapter_enabled(self, name: str, enabled: bool) -> None:
        for a in self._adapters:
            if a.name == name:
                a.active = enabled
        self.adapters_changed.emit(self.adapters())

    def set_adapter_scale(self, name: str, scale: float) -> None:
        for a in self._adapters:
            if a.name == name:
                a.scale = scale
        self.adapters_changed.emit(self.adapters())

    def adapters(self) -> list[Any]:
        return list(self._adapters)

    def active_adapters(self) -> tuple[AdapterSpec, ...]:
        return tuple(AdapterSpec(a.path, a.scale, a.name) for a in self._adapters if a.active)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
