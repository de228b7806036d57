"""What the token lens needs from in-process models: scoring given tokens under the loaded
model (with or without adapters) in one forward pass - e.g. an adapter's answer under the base
model, to show which tokens the adapter changed. Runs on the model worker thread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.types import ChatMessage
from app.providers.local_generation import prompt_ids


def score_tokens(model: Any, tokenizer: Any, messages: Sequence[ChatMessage], prefix: str,
                 token_ids: Sequence[int]) -> list[float]:
    """The log-probability of each of ``token_ids`` as the continuation of the chat prompt
    (and ``prefix``, the answer's given start), in one forward pass."""
    import torch

    if not token_ids:
        return []
    prompt = prompt_ids(tokenizer, messages)
    if prefix:
        prompt += list(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    device = next(model.parameters()).device
    ids = torch.tensor([prompt + list(token_ids)], device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    chosen = torch.tensor(list(token_ids), device=logits.device).unsqueeze(1)
    return [float(x) for x in torch.log_softmax(logits, dim=-1).gather(1, chosen).squeeze(1).tolist()]
