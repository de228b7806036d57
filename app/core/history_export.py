"""Exports of a conversation tree, and the message shape of ``python -m app history show``.

- JSON (:func:`to_json`) holds the whole tree: ids, parent ids, the active leaf and path, and
  for each message its model, endpoint, adapter + sha256, parameters, seed, system prompt and
  figures (as values and as a sentence).
- Markdown (:func:`to_markdown`) holds the active branch and names the other branches.

Tool calls are messages like the others: an answer's calls are in its meta (``tool_calls``),
each result is a ``tool`` message (meta: ``call_id``, ``name``, ``source``, ``is_error``,
``elapsed_s``, ``server``); the Markdown shows them as ``→ name(arguments)`` and
``← name: result``.

Every exported string goes through :func:`app.core.errors.redact`: never a key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from app.core.errors import redact
from app.core.figures import MessageFigures

if TYPE_CHECKING:
    from app.core.history_tree import ConversationTree
    from app.core.history_types import Conversation, StoredMessage

FORMAT = "llm-playground.conversation"
FORMAT_VERSION = 2
SNIPPET = 60


def redacted(value: Any) -> Any:
    """``value`` with every string redacted (dicts and lists walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


def conversation_json(conv: Conversation) -> dict[str, Any]:
    """The conversation's header and state (the draft is not exported: it was never sent)."""
    return {
        "id": conv.id, "title": conv.title, "created_at": conv.created_at, "updated_at": conv.updated_at,
        "model": conv.model, "endpoint": conv.endpoint, "adapters": conv.adapters,
        "system_prompt": conv.system_prompt, "params": conv.params, "active_leaf_id": conv.active_leaf_id,
        "forked_from": conv.meta.get("forked_from"),
    }  # fmt: skip


def message_json(m: StoredMessage, tree: ConversationTree | None = None) -> dict[str, Any]:
    """One message for the JSON export: every stored field, the seed, the figures (values and
    sentence) and, with ``tree``, its place among its siblings."""
    figures = MessageFigures.from_meta(m.meta) if m.role == "assistant" else MessageFigures()
    data: dict[str, Any] = {
        "id": m.id, "parent_id": m.parent_id, "role": m.role, "content": m.content, "status": m.status,
        "error": m.error, "created_at": m.created_at, "model": m.model, "endpoint": m.endpoint,
        "adapter": m.adapter, "adapter_sha256": m.adapter_sha256, "adapters": m.meta.get("adapters"),
        "params": m.params, "seed": m.seed, "system_prompt": m.system_prompt,
        "figures": figures.to_meta(), "figures_text": figures.sentence(), "meta": m.meta,
    }  # fmt: skip
    if tree is not None:
        data["sibling"] = list(tree.position(m.id))
    return data


def cli_message(m: StoredMessage) -> dict[str, Any]:
    """One message as ``history show`` prints it (usage and cost as ``ask --json`` does; an
    answer's ``tool_calls`` and a tool result's ``tool_call_id``, ``name`` and ``is_error``
    when it has them)."""
    figures = MessageFigures.from_meta(m.meta)
    has_usage = m.role == "assistant" and (figures.prompt_tokens is not None or figures.completion_tokens is not None)
    cost = figures.cost
    tools: dict[str, Any] = {}
    if m.role == "assistant" and m.meta.get("tool_calls"):
        tools["tool_calls"] = m.meta["tool_calls"]
    elif m.role == "tool":
        tools = {"tool_call_id": m.meta.get("call_id"), "name": m.meta.get("name"),
                 "is_error": bool(m.meta.get("is_error"))}  # fmt: skip
    return cast(dict[str, Any], redacted(tools | {
        "id": m.id, "parent_id": m.parent_id, "role": m.role, "content": m.content, "status": m.status,
        "error": m.error, "model": m.model, "endpoint": m.endpoint, "adapter": m.adapter,
        "adapter_sha256": m.adapter_sha256, "params": m.params,
        "usage": {"prompt_tokens": figures.prompt_tokens or 0, "completion_tokens": figures.completion_tokens or 0,
                  "estimated": figures.estimated} if has_usage else None,
        "cost_usd": None if cost is None else float(cost), "ttft_s": figures.ttft_s,
        "tokens_per_s": figures.tokens_per_s, "created_at": m.created_at,
    }))  # fmt: skip


def to_json(conv: Conversation, tree: ConversationTree) -> dict[str, Any]:
    """The whole tree as a JSON-ready dict (keys redacted)."""
    data = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "conversation": {**conversation_json(conv), "active_leaf_id": tree.active_leaf_id},
        "active_path": [m.id for m in tree.path()],
        "messages": [message_json(m, tree) for m in tree.messages()],
    }
    return cast(dict[str, Any], redacted(data))


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "\u2026"


def _role(role: str) -> str:
    return {"user": "You", "assistant": "Assistant", "tool": "Tool result"}.get(role, role.capitalize())


def to_markdown(conv: Conversation, tree: ConversationTree) -> str:
    """The active branch as Markdown, each answer with its model, settings and figures line;
    then a list naming the other branches (where they start and how they end)."""
    data = to_json(conv, tree)
    head = data["conversation"]
    by_id = {m["id"]: m for m in data["messages"]}
    lines = [f"# {head['title']}", ""]
    lines.append(f"- Created: {time.strftime('%Y-%m-%d %H:%M', time.localtime(head['created_at']))}")
    if head["model"]:
        lines.append(f"- Model: `{head['model']}`" + (f" at `{head['endpoint']}`" if head["endpoint"] else ""))
    if head["params"]:
        lines.append(f"- Parameters: `{json.dumps(head['params'], sort_keys=True)}`")
    forked = head.get("forked_from")
    if isinstance(forked, dict):
        lines.append(f"- Forked from conversation `{forked.get('conversation_id')}` at message {forked.get('message_id')}")
    leaves = [m for m in tree.leaves() if m.id not in set(data["active_path"])]
    if leaves:
        lines.append(f"- Branches: {len(leaves) + 1} (this is the active one; the others are named under Other branches)")
    lines.append("")
    if head["system_prompt"]:
        lines += ["## System prompt", "", head["system_prompt"], ""]
    for mid in data["active_path"]:
        m = by_id[mid]
        k, n = m["sibling"]
        which = f" ({'answer' if m['role'] == 'assistant' else 'version'} {k} of {n})" if n > 1 else ""
        lines += [f"## {m['role'].capitalize()}{which}", ""]
        reasoning = (m["meta"] or {}).get("reasoning")
        if reasoning and isinstance(reasoning, str):  # a thinking model's reasoning, folded
            lines += ["<details><summary>Thinking</summary>", "", reasoning.strip(), "", "</details>", ""]
        lines += _body(m)
        details = _details(m, head["system_prompt"])
        if details:
            lines += [f"> {d}  " for d in details] + [""]
    if leaves:
        lines += ["## Other branches", ""]
        for i, leaf in enumerate(leaves, start=2):
            start = tree.branch_point(leaf.id)
            if start is None:
                continue
            k, n = tree.position(start)
            parent = tree.parent_of(start)
            after = f"after message {parent}" if parent is not None else "at the start"
            count = len(tree.path(leaf.id)) - len(tree.path(start)) + 1
            first = by_id[start]
            lines.append(
                f"- Branch {i}: from message {start} ({_role(first['role'])} \u201c{_snippet(first['content'])}\u201d, "
                f"{k} of {n} {after}), {count} message{'s' if count != 1 else ''}, ends with message {leaf.id} "
                f"({_role(leaf.role)} \u201c{_snippet(by_id[leaf.id]['content'])}\u201d)"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _body(m: Mapping[str, Any]) -> list[str]:
    """A message's text; an answer's tool calls (``→ name(arguments)``) after it, and a tool
    result as ``← name: content`` (``(error)`` when the call failed) with where it came from."""
    meta = m["meta"] or {}
    if m["role"] == "tool":
        mark = " (error)" if meta.get("is_error") else ""
        source = meta.get("server") or meta.get("source")
        where = f" ({source}, {meta['elapsed_s']:.2f} s)" if source and isinstance(meta.get("elapsed_s"), float) \
            else (f" ({source})" if source else "")
        return [f"← {meta.get('name', 'tool')}{mark}: {m['content']}", "", f"> call `{meta.get('call_id')}`{where}", ""]
    out = [m["content"], ""] if m["content"] or not meta.get("tool_calls") else []
    calls = meta.get("tool_calls")
    if isinstance(calls, list) and calls:
        out += [f"→ {c.get('name')}({c.get('arguments')})  " for c in calls if isinstance(c, dict)] + [""]
    return out


def _details(m: Mapping[str, Any], conversation_prompt: str) -> list[str]:
    out: list[str] = []
    if m["model"]:
        out.append(f"model: `{m['model']}`" + (f" at `{m['endpoint']}`" if m["endpoint"] else ""))
    if m["adapter"]:
        out.append(f"adapter: `{m['adapter']}`" + (f" (sha256 `{m['adapter_sha256']}`)" if m["adapter_sha256"] else ""))
    if m["params"]:
        out.append(f"parameters: `{json.dumps(m['params'], sort_keys=True)}`")
    if m["role"] == "assistant" and m["system_prompt"] is not None and m["system_prompt"] != conversation_prompt:
        out.append(f"system prompt: \u201c{_snippet(m['system_prompt'])}\u201d" if m["system_prompt"] else "system prompt: none")
    if m["figures_text"]:
        out.append(f"figures: {m['figures_text']}")
    if m["status"] != "complete":
        out.append(f"status: {m['status']}" + (f" ({m['error']})" if m["error"] else ""))
    return out
