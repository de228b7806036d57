"""The token ids of an in-process model's prompt: the chat template applied and tokenized in
one call (no second BOS), then the answer's given start. Shared by generation, token counting
and the token lens's scoring; imports nothing of the other local modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.tools import ToolSpec
from app.core.types import ChatMessage


def chat_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as the dicts Hugging Face chat templates expect: an assistant turn's calls as
    ``tool_calls`` (arguments as an object where they parse), a ``tool`` turn with its
    ``tool_call_id`` and the called function's ``name``."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            calls = []
            for c in m.tool_calls:
                names[c.id] = c.name
                args = c.parsed_arguments()
                calls.append({"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments if args is None else args}})  # fmt: skip
            d["tool_calls"] = calls
        if m.role == "tool":
            d["tool_call_id"] = m.tool_call_id or ""
            if m.tool_call_id in names:
                d["name"] = names[m.tool_call_id]
        out.append(d)
    return out


def prompt_ids(tokenizer: Any, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> list[int]:
    """Token ids of the chat prompt (template tokenized in one call: no double BOS), with
    ``tools`` offered through the template's own ``tools``."""
    if getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template(
            chat_dicts(messages), tools=[t.to_openai() for t in tools] or None, tokenize=True,
            add_generation_prompt=True, return_dict=True,
        )
        return list(enc["input_ids"])
    text = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def request_ids(tokenizer: Any, messages: Sequence[ChatMessage], prefix: str = "",
                tools: Sequence[ToolSpec] = ()) -> list[int]:  # fmt: skip
    """The prompt's token ids, then those of the answer's given start (the model continues it)."""
    ids = prompt_ids(tokenizer, messages, tools)
    if prefix:
        ids += list(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    return ids
