"""Between the Workbench and the chat: "Send to chat" opens a cell as a conversation (with the
variant's model, endpoint, adapters and parameters, through the main window's backend and
session), and "Copy as code" for an answer in the chat rebuilds that answer's request."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtGui import QGuiApplication

from app.core.errors import AppError
from app.core.grid.cells import Cell
from app.core.history import Conversation
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef

if TYPE_CHECKING:
    from app.core.grid.model import Variant
    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.workbench.host import WorkbenchHost

log = logging.getLogger(__name__)


def save_as_conversation(services: Services, cell: Cell, variant: Variant, title: str) -> Conversation:
    """Store ``cell`` as a conversation: its messages, then its answer with the figures."""
    req = cell.request
    if req is None:
        raise AppError("This cell was never sent, so there is nothing to open.", hint="Fix the cell's problem and run it.")
    history = services.history
    system = next((m.content for m in req.messages if m.role == "system"), "")
    conv = history.create_conversation(title[:60] or "From the Workbench", model=str(req.model),
                                       system_prompt=system, params=req.params.to_dict())  # fmt: skip
    for m in req.messages:
        if m.role != "system":
            history.add_message(conv.id, m.role, m.content)
    if cell.text or cell.status == "done":
        meta: dict[str, object] = {"model": str(req.model), "endpoint": req.endpoint, "params": req.params.to_dict()}
        if cell.usage is not None:
            meta.update(prompt_tokens=cell.usage.prompt_tokens, completion_tokens=cell.usage.completion_tokens,
                        estimated=cell.usage.estimated)  # fmt: skip
        if cell.cost_usd is not None:
            meta["cost_usd"] = str(cell.cost_usd)
        meta.update({k: v for k, v in (("ttft_s", cell.ttft_s), ("tokens_per_s", cell.tokens_per_s),
                                       ("duration_s", cell.latency_s)) if v is not None})  # fmt: skip
        adapter = ",".join(a.label for a in req.adapters) or None
        history.add_message(conv.id, "assistant", cell.text, model=str(req.model), endpoint=req.endpoint,
                            adapter=adapter, params=req.params.to_dict(), meta=meta,
                            status="complete" if cell.status == "done" else "cancelled")  # fmt: skip
    return conv


async def apply_adapters(backend: BackendManager, adapters: tuple[AdapterSpec, ...]) -> None:
    """Make exactly ``adapters`` (with their scales) active on the main window's model."""
    selection = backend.selection
    wanted: dict[str, float] = {}
    for spec in adapters:
        from pathlib import Path

        folder = str(Path(spec.path).expanduser().resolve())
        info = next((a for a in selection.adapters() if a.path in (spec.path, folder)), None)
        if info is None:
            info = await selection.load_adapter(spec.path)
        if info is not None:
            wanted[info.name] = spec.scale
    for info in selection.adapters():
        if info.name in wanted:
            selection.set_adapter(info.name, enabled=True, scale=wanted[info.name])
        elif info.active:
            selection.set_adapter(info.name, enabled=False)


def send_to_chat(host: WorkbenchHost, cell: Cell, variant: Variant, title: str) -> str:
    """Open ``cell`` in the main window as a conversation with the variant's model, endpoint,
    adapters and parameters; returns the conversation id."""
    conv = save_as_conversation(host.services, cell, variant, title)
    req = cell.request
    assert req is not None
    host.backend.set_model(str(req.model), endpoint=req.endpoint)
    host.open_conversation(conv.id)  # the editor takes the conversation's system prompt and parameters
    host.refresh_sidebar(conv.id)
    if req.adapters:
        from app.ui.widgets.common import spawn

        spawn(apply_adapters(host.backend, req.adapters), lambda msg: host.show_status(msg, error=True))
    host.show_status(f"Opened the Workbench cell as a conversation with {req.model}.")
    host.bring_to_front()
    return conv.id


def message_request(services: Services, backend: BackendManager, conversation_id: str | None,
                    message_id: int) -> GenerationRequest:  # fmt: skip
    """The request that produced the stored answer ``message_id`` of ``conversation_id``: the
    conversation's system prompt and the messages before it, its model, endpoint, parameters
    and adapters (an adapter's path comes from the adapters loaded now, by name)."""
    history = services.history
    conv = history.get_conversation(conversation_id) if conversation_id else None
    found = None
    if conv is not None:
        msgs = history.messages(conv.id)
        index = next((i for i, m in enumerate(msgs) if m.id == message_id and m.role == "assistant"), None)
        if index is not None:
            found = (conv, msgs[:index], msgs[index])
    if found is None:
        raise AppError("That answer is not in the history any more.", hint="Open the conversation again.")
    conv, before, answer = found
    messages = [ChatMessage("system", conv.system_prompt)] if conv.system_prompt.strip() else []
    messages += [ChatMessage(m.role, m.content) for m in before if m.role in ("user", "assistant") and m.content]
    model = answer.model or conv.model or backend.current_model()
    params = GenerationParams.from_dict(answer.params or conv.params or {})
    adapters: list[AdapterSpec] = []
    loaded = {a.name: a for a in backend.adapters()}
    for part in (answer.adapter or "").split(","):
        if not part.strip():
            continue
        name, _, scale = part.rpartition(":")
        info = loaded.get(name)
        adapters.append(AdapterSpec(info.path if info else name, float(scale or 1), name, info.sha256 if info else None))
    ref = ModelRef.parse(model)
    return GenerationRequest(ref, tuple(messages), params, answer.endpoint if ref.caps.endpoints else None,
                             tuple(adapters) if ref.takes_adapters else ())  # fmt: skip


def code_for_message(services: Services, backend: BackendManager, conversation_id: str | None, message_id: int,
                     language: str) -> str:  # fmt: skip
    """The program that sends the request of the stored answer ``message_id``."""
    from app.providers.code_targets import code_for

    request = message_request(services, backend, conversation_id, message_id)
    if request.model.in_process and language == "python":
        language = "transformers"
    return code_for(services, request, language)


def copy_message_code(host: WorkbenchHost, conversation_id: str | None, message_id: int, language: str) -> str | None:
    """The chat's "Copy as code" for the answer ``message_id`` of ``conversation_id``: put the
    program on the clipboard (None, and a status message, when there is none for that model)."""
    try:
        code = code_for_message(host.services, host.backend, conversation_id, message_id, language)
    except AppError as exc:
        host.show_status(exc.user_message(), error=True)
        return None
    QGuiApplication.clipboard().setText(code)
    host.show_status("Copied the request as code (the key is read from an environment variable).")
    return code
