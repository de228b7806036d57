"""The token ids of an in-process model's prompt: the chat template applied and tokenized in
one call (no second BOS), then the answer's given start. Shared by generation, token counting
and the token lens's scoring; imports nothing of the other local modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.types import ChatMessage


def chat_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Messages as the dicts chat templates expect."""
    return [{"role": m.role, "content": m.content} for m in messages]


def prompt_ids(tokenizer: Any, messages: Sequence[ChatMessage]) -> list[int]:
    """Token ids of the chat prompt (template tokenized in one call: no double BOS)."""
    if getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template(
            chat_dicts(messages), tokenize=True, add_generation_prompt=True, return_dict=True
        )
        return list(enc["input_ids"])
    text = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def request_ids(tokenizer: Any, messages: Sequence[ChatMessage], prefix: str = "") -> list[int]:
    """The prompt's token ids, then those of the answer's given start (the model continues it)."""
    ids = prompt_ids(tokenizer, messages)
    if prefix:
        ids += list(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    return ids
