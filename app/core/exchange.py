"""One exchange of a stored conversation, the same for the window and the CLI: the seed in
force, the context sent (only the messages on the branch's own path), the answer's row and
what its meta records (model, endpoint, adapters with path/scale/sha256, parameters, seed,
system prompt, figures, reasoning, and the tokens with their probabilities when asked for)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.core.events import TokenLogprob
from app.core.lens import stored_lens
from app.core.tools import ToolCall
from app.core.types import (
    AdapterSpec,
    ChatMessage,
    GenerationParams,
    GenerationRequest,
    adapter_hashes,
    adapter_label,
)

if TYPE_CHECKING:
    from app.core.engine import GenerationResult
    from app.core.history import Conversation, HistoryStore, StoredMessage

SEED_LIMIT = 2**31
"""Seeds the app picks are below this (every provider takes them: OpenAI, torch, the mock)."""
TITLE_CHARS = 48


def choose_seed(params: GenerationParams) -> GenerationParams:
    """``params`` with a seed: the one set, else a fresh random one, so the answer can be
    replayed exactly (send the same request with that seed)."""
    if params.seed is not None:
        return params
    return params.with_(seed=random.SystemRandom().randrange(SEED_LIMIT))  # secrets.randbelow, without hashlib


def title_for(text: str) -> str:
    """A conversation's title from its first message."""
    return " ".join(text.split())[:TITLE_CHARS] or "New conversation"


def adapters_json(adapters: Iterable[AdapterSpec]) -> list[dict[str, Any]]:
    """Adapters as stored with a conversation or an answer: path, scale, name, sha256."""
    return [{"path": a.path, "scale": a.scale, "name": a.name, "sha256": a.sha256} for a in adapters]


def adapters_from_json(data: object) -> tuple[AdapterSpec, ...]:
    """The inverse of :func:`adapters_json` (entries that are not usable are skipped)."""
    out: list[AdapterSpec] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("path"), str) or not item["path"]:
            continue
        try:
            scale = float(item.get("scale", 1.0))
        except (TypeError, ValueError):
            scale = 1.0
        name, sha = item.get("name"), item.get("sha256")
        out.append(AdapterSpec(item["path"], scale, name if isinstance(name, str) else None,
                               sha if isinstance(sha, str) else None))  # fmt: skip
    return tuple(out)


TOOL_CALLS = "tool_calls"
"""Meta key of an assistant message's tool calls (``ToolCall.to_json`` objects)."""


def stored_calls(meta: Mapping[str, Any]) -> tuple[ToolCall, ...]:
    """The tool calls an assistant message's meta holds (none for an answer without calls,
    and for every answer stored before tool calls existed)."""
    calls = meta.get(TOOL_CALLS)
    return tuple(ToolCall.from_json(c) for c in calls if isinstance(c, Mapping)) if isinstance(calls, list) else ()


def context_messages(path: Sequence[StoredMessage], system_prompt: str) -> list[ChatMessage]:
    """What a request for this branch sends: the system prompt, then the path's user and
    assistant messages that have text (a partial answer included), an assistant message's
    tool calls and the ``tool`` messages that answer them, nothing of other branches. A call
    the path holds no result for is left out (a server refuses a call without its result)."""
    msgs = [ChatMessage("system", system_prompt)] if system_prompt.strip() else []
    for i, m in enumerate(path):
        if m.role == "tool":
            continue  # taken with the calls they answer
        calls = stored_calls(m.meta) if m.role == "assistant" else ()
        if calls:
            answers: dict[str, ChatMessage] = {}
            for later in path[i + 1:]:
                call_id = later.meta.get("call_id") if later.role == "tool" else None
                if not isinstance(call_id, str):
                    break
                answers.setdefault(call_id, ChatMessage("tool", later.content, tool_call_id=call_id))
            calls = tuple(c for c in calls if c.id in answers)
            if calls:
                msgs.append(ChatMessage("assistant", m.content, tool_calls=calls))
                msgs += [answers[c.id] for c in calls]
                continue
        if m.role in ("user", "assistant") and m.content:
            msgs.append(ChatMessage(m.role, m.content))
    return msgs


def answer_meta(request: GenerationRequest, system_prompt: str, *, seed_chosen: bool = False) -> dict[str, Any]:
    """What an answer's meta holds from its start (figures and reasoning join at the end).
    ``seed_chosen``: the seed was picked by :func:`choose_seed` (none was set)."""
    meta: dict[str, Any] = {
        "model": str(request.model), "endpoint": request.endpoint, "adapter": adapter_label(request.adapters),
        "adapter_sha256": adapter_hashes(request.adapters), "params": request.params.to_dict(),
        "adapters": adapters_json(request.adapters), "system_prompt": system_prompt,
    }  # fmt: skip
    if seed_chosen:
        meta["seed_chosen"] = True
    if request.prefix:
        meta["prefix"] = request.prefix
    return meta


PREFIX_TOKENS = "prefix_tokens"
"""Meta key of a branched answer's given start as tokens (while it streams; merged into
``tokens`` when it ends)."""


def prefix_start(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stored tokens of a branched answer's given start (``meta[PREFIX_TOKENS]``; none: ``[]``)."""
    start = meta.get(PREFIX_TOKENS)
    return [d for d in start if isinstance(d, dict)] if isinstance(start, list) else []


def lens_meta(base: Mapping[str, Any], tokens: Sequence[TokenLogprob], asked: bool, *,
              with_tokens: bool = True) -> dict[str, Any]:
    """``base`` with the answer's tokens (its given start's, then the generated ones) as
    ``tokens``, only when probabilities were asked for (``asked``): the history stays small
    otherwise (and they are cut at :data:`~app.core.lens.STORED_TOKENS_MAX`). Without
    ``with_tokens``, their figures only (the caller makes the list later)."""
    meta = dict(base)
    start = prefix_start(meta)
    meta.pop(PREFIX_TOKENS, None)
    if asked:
        meta.update(stored_lens(start, tokens, with_tokens=with_tokens))
    return meta


def final_meta(base: Mapping[str, Any], result: GenerationResult, *, with_tokens: bool = True) -> dict[str, Any]:
    """An ended answer's meta: ``base``, its figures, a thinking model's reasoning, its tokens
    with their probabilities (when they were asked for; see :func:`lens_meta`) and the
    provider's notes."""
    meta = {**lens_meta(base, result.tokens, result.request.params.logprobs is not None, with_tokens=with_tokens),
            **result.figures().to_meta()}  # fmt: skip
    if result.reasoning:
        meta["reasoning"] = result.reasoning
        meta["reasoning_tokens"] = result.reasoning_tokens or len(result.reasoning.split())
    if result.notices:
        meta["notes"] = list(result.notices)
    if result.tool_calls:
        meta[TOOL_CALLS] = [c.to_json() for c in result.tool_calls]
    return meta


def start_answer(history: HistoryStore, conversation_id: str, parent_id: int | None, request: GenerationRequest,
                 system_prompt: str, *, seed_chosen: bool = False) -> StoredMessage:
    """Store the answer's row (``streaming``, under ``parent_id``, the active leaf from now)."""
    return history.add_message(
        conversation_id, "assistant", "", parent_id=parent_id, model=str(request.model),
        endpoint=request.endpoint, adapter=adapter_label(request.adapters),
        adapter_sha256=adapter_hashes(request.adapters), params=request.params.to_dict(), status="streaming",
        meta=answer_meta(request, system_prompt, seed_chosen=seed_chosen), system_prompt=system_prompt,
    )  # fmt: skip


def history_note(history: HistoryStore) -> str:
    """What the usage ledger's row of an answer says when saving it waited for the history
    (another program held it): saved once it was free, or still pending in the journal."""
    if not history.pending:
        return "history busy: the answer was saved to the history once the other program released it"
    return (f"history busy: saving the answer is pending; it is kept in {history.journal.path.name} and written "
            "into the history once it is free (at the latest at the next start)")


def remember_state(history: HistoryStore, conversation_id: str, request: GenerationRequest, system_prompt: str,
                   params: GenerationParams) -> None:
    """The conversation's state for a reopen: the model, endpoint and adapters of its last
    request, its system prompt and the parameters as the user set them (``params``: a seed
    left empty stays empty, each answer records the one it got)."""
    history.update_conversation(conversation_id, model=str(request.model), endpoint=request.endpoint,
                                adapters=adapters_json(request.adapters), system_prompt=system_prompt,
                                params=params.to_dict())  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConversationState:
    """What to bring back when a conversation is reopened or a branch is shown: the model, its
    endpoint, the adapters (None: not known, leave them as they are), the parameters for the
    editor (a seed the app picked shows as empty) and the system prompt (None: not known)."""

    model: str | None
    endpoint: str | None = None
    adapters: tuple[AdapterSpec, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None


def conversation_state(conv: Conversation) -> ConversationState:
    """The state a conversation was left in."""
    return ConversationState(conv.model, conv.endpoint, adapters_from_json(conv.adapters), dict(conv.params),
                             conv.system_prompt)  # fmt: skip


def answer_state(m: StoredMessage) -> ConversationState:
    """The state an answer was made with. Answers stored before adapters were recorded with
    their path (schema 1) leave the adapters unknown."""
    params = dict(m.params)
    if m.meta.get("seed_chosen"):
        params["seed"] = None
    known = "adapters" in m.meta or not m.adapter
    adapters = adapters_from_json(m.meta.get("adapters")) if known else None
    return ConversationState(m.model, m.endpoint, adapters, params, m.system_prompt)
