"""A rendered prompt as chat messages, and which prompts a provider runs
(promptfoo's ``providers[].prompts``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from app.core.types import ChatMessage


class Labelled(Protocol):
    """A prompt: its template and label."""

    @property
    def template(self) -> str:
        """The template text."""
        ...

    @property
    def label(self) -> str:
        """The label ("" for none)."""
        ...


def chat_messages(text: str) -> list[ChatMessage]:
    """A rendered prompt as chat messages: a JSON list of ``{role, content}`` is those
    messages (promptfoo's chat prompts), any other text one user message."""
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, list) and data and all(
            isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
            for m in data
        ):
            return [ChatMessage(m["role"], m["content"]) for m in data]
    return [ChatMessage("user", text)]


def prompt_allowed(prompt: Labelled, refs: Sequence[str]) -> bool:
    """True when ``refs`` (a provider's ``prompts``) is empty or names ``prompt``, as promptfoo
    matches them: the label (or text) itself, ``group:*`` for labels starting ``group:``, and
    ``group`` for ``group`` or labels starting ``group:``."""
    if not refs:
        return True
    names = [n for n in (prompt.label, prompt.template) if n]
    for ref in refs:
        if ref.endswith("*") and any(n.startswith(ref[:-1]) for n in names):
            return True
        if any(n == ref or n.startswith(ref + ":") for n in names):
            return True
    return False
