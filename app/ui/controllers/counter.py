"""The prompt editor's live estimate of the next request: its tokens (exact where the
provider or server can count them) and what it would cost."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession


class RequestCounter:
    """The editor's counter (:meth:`PromptEditor.set_counter`): called with the system prompt,
    the draft and the answer's token limit, on the editor's counting thread, so it reads the
    models and the conversation and changes nothing. Not a QObject: it has no signals; the
    editor shows what it returns (``PromptEditor.count_updated``)."""

    def __init__(self, services: Services, backend: BackendManager, session: ChatSession) -> None:
        self.services = services
        self.backend = backend
        self.session = session

    def __call__(self, system_prompt: str, draft: str, max_out: int) -> str:
        """Token count and cost estimate of the whole next request, e.g.
        ``"~1,204 tokens  ·  ≈ $0.00120 in + ≤ $0.00400 out"``."""
        from app.core.figures import plural
        from app.core.provider import as_endpoints
        from app.core.types import ChatMessage, ModelRef

        ref = ModelRef.parse(self.backend.current_model())
        msgs = self.session.request_messages(system_prompt)
        if draft.strip():
            msgs.append(ChatMessage("user", draft))
        count = None
        try:
            provider = self.services.registry.get(ref.provider)
            server = as_endpoints(provider) if ref.caps.server_token_count else None
            if server is not None:  # a server that can count with its own tokenizer and template
                count = server.count_request(self.backend.current_endpoint(), ref.name, msgs)
            if count is None:
                count = provider.count_tokens(ref.name, msgs)
        except Exception:  # e.g. a provider that cannot count now: estimate
            from app.core.tokens import count_chat

            count = count_chat(ref.name, msgs)
        text = f"{'' if count.exact else '~'}{plural(count.tokens, 'token')}"
        endpoint, engine = self.backend.current_endpoint(), self.services.engine
        cost_in = engine.estimate_cost(ref, endpoint, count.tokens, 0)
        if cost_in is None:  # unknown price: tokens only
            return text
        cost_out = engine.estimate_cost(ref, endpoint, 0, max_out) if max_out else None
        if not cost_in and not cost_out:
            return text + "  ·  free"
        text += f"  ·  ≈ ${cost_in:.5f} in"
        if cost_out is not None:
            text += f" + ≤ ${cost_out:.5f} out"
        return text
