"""Fakes that keep the state of the real thing (no mocks): an in-process provider that holds one
loaded model as the model worker does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from app.core.errors import AdapterError, ModelLoadError
from app.core.events import Finished, Progress, StreamEvent, TextDelta, UsageReport
from app.core.provider import ProviderContext
from app.core.types import (
    AdapterInfo,
    ChatMessage,
    GenerationRequest,
    ModelInfo,
    ModelRef,
    TokenCount,
)


class FakeLocal:
    """A ``local`` provider stand-in with one loaded model: loading reports progress and fails
    for the model named ``broken``; a request for another model loads it first (Progress
    events); every answer is ``"<model> says hi"``. ``gate`` (an asyncio.Event) holds answers
    until it is set."""

    id = "local"

    def __init__(self, context: ProviderContext) -> None:
        self.loaded: str | None = None
        self.loads: list[str] = []
        self.runs: list[tuple[str, tuple[str, ...]]] = []
        self.gate: asyncio.Event | None = None

    async def load(self, model: str, on_progress: Callable[[Progress], None] | None = None) -> ModelInfo:
        self.loads.append(model)
        if on_progress:
            on_progress(Progress("reading weights", 0.5))
        await asyncio.sleep(0)
        if model == "broken":
            raise ModelLoadError("The weights file is damaged.", hint="Download it again.")
        self.loaded = model
        return self.model_info(model)

    async def loaded_model(self) -> str | None:
        return self.loaded

    async def unload(self) -> None:
        self.loaded = None

    async def load_adapter(self, path: str, name: str | None = None) -> AdapterInfo:
        raise AdapterError("This fake takes no adapters.")

    async def unload_adapter(self, name: str) -> None:
        return None

    async def list_adapters(self) -> list[AdapterInfo]:
        return []

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def score(self, request: GenerationRequest, token_ids: Sequence[int]) -> list[float]:
        """-0.5 per token under the base model, -0.1 with adapters (a fixed, known effect)."""
        return [-0.1 if request.adapters else -0.5 for _ in token_ids]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        model = request.model.name
        if self.loaded != model:
            events: list[Progress] = []
            await self.load(model, events.append)
            for event in events:
                yield event
            yield Progress("loaded", 1.0)
        self.runs.append((model, tuple(a.path for a in request.adapters)))
        if self.gate is not None:
            await self.gate.wait()
        yield TextDelta(f"{model} says hi")
        yield UsageReport(2, 3)
        yield Finished("stop")

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        return TokenCount(2, True, "fake")

    def model_info(self, model: str, **_: Any) -> ModelInfo:
        return ModelInfo(ModelRef("local", model), model, is_local=True, supports_adapters=True)

    async def aclose(self) -> None:
        return None
