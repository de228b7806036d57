"""Get code for a request, with what only the app layer knows: the OpenAI provider's own
request body, where an in-process model's weights are (the bundled model's file) and the
local device/dtype settings. Used by ``ask --show-code``, the Workbench and the chat's
"Copy as code"."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.codegen import LocalTarget, http_target, program
from app.core.types import GenerationRequest

if TYPE_CHECKING:
    from app.core.services import Services


def local_target(services: Services, request: GenerationRequest) -> LocalTarget:
    """Where and how the in-process model of ``request`` is loaded (raises AppError when the
    model cannot be found)."""
    from app.providers.local_loading import resolve_source

    source = resolve_source(request.model.provider, request.model.name)
    location, gguf = source.location, None
    if source.kind == "gguf":
        path = Path(source.location)
        location, gguf = str(path.parent), path.name
    local = services.settings.local
    return LocalTarget(location, gguf, local.dtype, local.device, f"{request.model}")


def code_for(services: Services, request: GenerationRequest, language: str,
             stubs: Mapping[str, str] | None = None) -> str:  # fmt: skip
    """The standalone program (python, curl or transformers) that sends ``request`` (with
    tools: python runs the tool loop, answering calls with ``stubs``)."""
    if request.model.in_process:
        return program(language, request, local=local_target(services, request))
    if request.model.caps.endpoints:
        return program(language, request, http=http_target(services, request), stubs=stubs,
                       max_steps=services.settings.max_tool_steps)
    return program(language, request)
