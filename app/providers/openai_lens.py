"""What the token lens needs from OpenAI-compatible servers: per-token log-probabilities
(``logprobs: true, top_logprobs: K``, streamed in ``choices[0].logprobs.content``) and the
continuation of a given answer start (assistant prefill)."""

from __future__ import annotations

from typing import Any

from app.core.errors import BadRequest
from app.core.events import TokenChoice, TokenLogprob
from app.core.settings import EndpointConfig
from app.core.types import GenerationRequest

PREFILL_KINDS = frozenset({"llamacpp", "ollama", "lmstudio", "custom"})
"""Servers that continue a last assistant message (prefill); vLLM needs its own flags."""


def add_logprobs(body: dict[str, Any], request: GenerationRequest) -> None:
    """Ask for log-probabilities when the request wants them."""
    k = request.params.logprobs
    if k is not None:
        body["logprobs"] = True
        if k:
            body["top_logprobs"] = k


def drop_logprobs(body: dict[str, Any]) -> bool:
    """Remove the logprobs request from ``body``; True when there was one."""
    had = body.pop("logprobs", None) is not None
    body.pop("top_logprobs", None)
    return had


def add_continuation(body: dict[str, Any], request: GenerationRequest, ep: EndpointConfig) -> None:
    """Make the server continue ``request.prefix``: the prefix as the last (assistant) message,
    plus vLLM's ``continue_final_message``. OpenAI's own API cannot: a clear error says so."""
    if not request.prefix:
        return
    if ep.kind == "openai":
        raise BadRequest(
            f"{ep.name} cannot continue a given start of an answer (OpenAI's API has no assistant prefill).",
            hint="Regenerate the answer instead, or use a local model or a llama.cpp / vLLM server.",
        )
    body["messages"] = [*body["messages"], {"role": "assistant", "content": request.prefix}]
    if ep.kind == "vllm":
        extra = dict(body.get("extra_body") or {})
        extra.update(continue_final_message=True, add_generation_prompt=False)
        body["extra_body"] = extra


def chunk_tokens(choice: Any) -> tuple[TokenLogprob, ...]:
    """The tokens of one streamed choice, as sent (alternatives from most to least likely)."""
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return ()
    out: list[TokenLogprob] = []
    for item in content:
        top = sorted((TokenChoice(t.token, float(t.logprob)) for t in (item.top_logprobs or ())),
                     key=lambda c: c.logprob, reverse=True)
        out.append(TokenLogprob(item.token, float(item.logprob), tuple(top)))
    return tuple(out)


def is_logprobs_refusal(exc: BadRequest) -> bool:
    """True when a 400 says the server does not do logprobs."""
    return "logprob" in exc.message.lower()
