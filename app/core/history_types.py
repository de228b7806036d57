"""The history's records as Python objects: a conversation, a stored message, and the same
built from a pending write (:mod:`app.core.history_journal`) before it is in the database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from app.core.history_journal import Record
from app.core.types import Role
from app.core.urls import clean_url

MessageStatus = Literal["complete", "streaming", "error", "cancelled"]
STATUSES: tuple[str, ...] = ("complete", "streaming", "error", "cancelled")


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation's header and the state to restore when it is reopened (its messages
    come from :meth:`HistoryStore.tree` / :meth:`HistoryStore.messages`). ``adapters`` are
    ``{"path", "scale", "name", "sha256"}`` objects; ``meta`` may hold ``forked_from``."""

    id: str
    title: str
    created_at: float
    updated_at: float
    model: str | None
    system_prompt: str
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: str | None = None
    adapters: list[dict[str, Any]] = field(default_factory=list)
    active_leaf_id: int | None = None
    draft: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    message_count: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored message. ``parent_id`` is the message it follows (None: a root);
    ``system_prompt`` is the one in force for an answer; ``meta`` holds the figures (usage,
    cost, ttft, tokens/s), the adapters, the reasoning and room for more (e.g. logprobs)."""

    id: int
    conversation_id: str
    role: Role
    content: str
    created_at: float
    model: str | None
    endpoint: str | None
    adapter: str | None
    adapter_sha256: str | None
    params: dict[str, Any]
    status: MessageStatus
    error: str | None
    meta: dict[str, Any]
    parent_id: int | None = None
    system_prompt: str | None = None

    @property
    def seed(self) -> int | None:
        """The exact seed the answer was made with (None: not recorded)."""
        seed = self.params.get("seed")
        return seed if isinstance(seed, int) else None


def loads_json(text: str | None, default: Any = None) -> Any:
    empty = {} if default is None else default
    try:
        value = json.loads(text or "null")
    except ValueError:
        return empty
    return value if isinstance(value, type(empty)) else empty


def conversation_from_row(row: sqlite3.Row) -> Conversation:
    keys = row.keys()
    return Conversation(
        id=row["id"], title=row["title"], created_at=row["created_at"], updated_at=row["updated_at"],
        model=row["model"], system_prompt=row["system_prompt"], params=loads_json(row["params"]),
        endpoint=row["endpoint"], adapters=[a for a in loads_json(row["adapters"], []) if isinstance(a, dict)],
        active_leaf_id=row["active_leaf_id"], draft=row["draft"] or "", meta=loads_json(row["meta"]),
        message_count=int(row["message_count"]) if "message_count" in keys else 0,
    )  # fmt: skip


def message_from_row(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"],
        created_at=row["created_at"], model=row["model"], endpoint=row["endpoint"], adapter=row["adapter"],
        adapter_sha256=row["adapter_sha256"], params=loads_json(row["params"]),
        status=cast(MessageStatus, row["status"]), error=row["error"], meta=loads_json(row["meta"]),
        parent_id=row["parent_id"], system_prompt=row["system_prompt"],
    )  # fmt: skip



def check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")


def pending_conversation(rec: Record) -> Conversation:
    return Conversation(rec["cid"], rec["title"], rec["created_at"], rec["created_at"], rec["model"],
                        rec["system_prompt"], dict(rec["params"]), rec["endpoint"], list(rec["adapters"]), None, "",
                        dict(rec["meta"]))  # fmt: skip


def with_record(conv: Conversation, rec: Record) -> Conversation:
    """``conv`` as a pending record of it leaves it."""
    op = rec["op"]
    if op == "state":
        fields = {k: rec[k] for k in ("model", "system_prompt", "params", "endpoint", "adapters") if k in rec}
        return replace(conv, updated_at=rec["at"], **fields)
    if op == "leaf":
        return replace(conv, active_leaf_id=rec["leaf"])
    if op == "draft":
        return replace(conv, draft=rec["text"])
    if op == "add":
        leaf = rec["ref"] if rec.get("activate", True) else conv.active_leaf_id
        return replace(conv, message_count=conv.message_count + 1, updated_at=rec["created_at"], active_leaf_id=leaf)
    return conv


def pending_message(rec: Record) -> StoredMessage:
    return StoredMessage(rec["ref"], rec["cid"], rec["role"], rec["content"], rec["created_at"], rec["model"],
                         rec["endpoint"], rec["adapter"], rec["adapter_sha256"], dict(rec["params"]), rec["status"],
                         rec["error"], dict(rec["meta"]), rec["parent_id"], rec["system_prompt"])  # fmt: skip



def conversation_record(conversation_id: str, title: str, now: float, *, model: str | None, system_prompt: str,
                         params: Mapping[str, Any] | None, endpoint: str | None,
                         adapters: Sequence[Mapping[str, Any]], meta: Mapping[str, Any] | None) -> Record:
    return {"op": "conv", "cid": conversation_id, "title": title, "created_at": now, "model": model,
            "system_prompt": system_prompt, "params": dict(params or {}),
            "endpoint": clean_url(endpoint),  # a base URL may carry a key: never stored
            "adapters": [dict(a) for a in adapters], "meta": dict(meta or {})}  # fmt: skip
