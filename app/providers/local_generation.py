"""Generation with transformers on the model worker thread.

A :class:`TokenStreamer` decodes incrementally (multi-byte characters split over tokens
come out whole), cuts stop strings (holding back text that may start one) and counts
tokens; a :class:`CancelFlag` checked by a ``StoppingCriteria`` stops generation within a
token. Imports of torch/transformers happen inside the functions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.core.errors import ContextTooLong
from app.core.events import TokenLogprob
from app.core.tools import ToolSpec
from app.core.types import ChatMessage, GenerationParams
from app.providers.local_lens import LogprobRecorder, processor
from app.providers.local_prefix_cache import (
    PrefixCache,
    cache_argument,
    keep_dynamic,
    resume_dynamic,
)
from app.providers.local_prompt import request_ids
from app.providers.local_tools import held_back


@dataclass
class GenStats:
    """Live counters of one generation (written by the worker, readable anywhere)."""

    tokens: int = 0
    tokens_at_cancel: int | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache
    sequence: list[int] = field(default_factory=list)  # prompt and answer ids once done (for the idle warm-up)


class CancelFlag:
    """A threading.Event that remembers how many tokens existed when it was set."""

    def __init__(self, stats: GenStats) -> None:
        self.stats = stats
        self._event = threading.Event()

    def set(self) -> None:
        """Ask the generation to stop."""
        if not self._event.is_set():
            self.stats.tokens_at_cancel = self.stats.tokens
            self._event.set()

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._event.is_set()


def recorder_for(tokenizer: Any, params: GenerationParams) -> LogprobRecorder | None:
    """A log-probability recorder when the request asks for them."""
    if params.logprobs is None:
        return None
    return LogprobRecorder(tokenizer, params.logprobs)


class TokenStreamer:
    """A transformers streamer: incremental decode, stop strings, token counting, and (with a
    ``recorder``) each token's log-probability attached to the text it produced: the tokens
    sent with the text always join to exactly that text."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], emit: Emit, stats: GenStats,
                 recorder: LogprobRecorder | None = None) -> None:  # fmt: skip
        self.tokenizer = tokenizer
        self.stops = tuple(stops)
        self.emit = emit
        self.stats = stats
        self.recorder = recorder
        self.ids: list[int] = []
        self.text = ""
        self.emitted = 0
        self.stopped = False
        self._prefix = 0
        self._read = 0
        self._prompt_seen = False
        self._group: list[TokenLogprob] = []  # tokens whose text has not decoded yet
        self._ready: list[TokenLogprob] = []  # tokens with their text, not sent yet
        self._ready_end = 0  # where the text of the last ready token ends in self.text

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def put(self, value: Any) -> None:
        """Called by ``generate``: first with the prompt (skipped), then with each token."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for tid in value.reshape(-1).tolist():
            self.stats.tokens += 1
            if self.stopped:
                continue
            self.ids.append(int(tid))
            if self.recorder is not None:
                info = self.recorder.take(int(tid))
                if info is not None:
                    self._group.append(info)
            prefix_text = self._decode(self.ids[self._prefix : self._read])
            new_text = self._decode(self.ids[self._prefix :])
            if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
                self._feed(new_text[len(prefix_text) :])
                self._prefix, self._read = self._read, len(self.ids)

    def _feed(self, delta: str) -> None:
        self._texts(delta)
        self.text += delta
        if self.stops:
            start = max(0, self.emitted - max(len(s) for s in self.stops))
            hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
            if hits:
                cut = min(hits)
                self.text = self.text[:cut]
                self.stopped = True
                self._send(self.text[self.emitted : cut])
                self.emitted = cut
                return
            safe = len(self.text) - held_back(self.text, self.stops)
        else:
            safe = len(self.text)
        if safe > self.emitted:
            self._send(self.text[self.emitted : safe])
            self.emitted = safe

    def _texts(self, delta: str) -> None:
        """The tokens decoded just now produced ``delta``: the last of them carries it (earlier
        ones were parts of one character)."""
        if not self._group:
            return
        *parts, last = self._group
        self._group = []
        self._ready.extend(parts)
        self._ready.append(replace(last, text=delta))
        self._ready_end = len(self.text) + len(delta)

    def _tokens_up_to(self, end: int) -> tuple[TokenLogprob, ...]:
        """The ready tokens whose text lies within ``self.text[:end]`` (a token cut by a stop
        string keeps only its part before the cut)."""
        if not self._ready:
            return ()
        out: list[TokenLogprob] = []
        pos = self._ready_end - sum(len(t.text) for t in self._ready)
        while self._ready:
            token = self._ready[0]
            if pos + len(token.text) > end:
                if not self.stopped:
                    break
                token = replace(token, text=token.text[: max(0, end - pos)])
                self._ready = []
                if token.text:
                    out.append(token)
                break
            out.append(self._ready.pop(0))
            pos += len(token.text)
        return tuple(out)

    def _send(self, text: str) -> None:
        tokens = self._tokens_up_to(self.emitted + len(text)) if self.recorder is not None else ()
        if text:
            self.emit(text, tokens) if tokens else self.emit(text)

    def end(self) -> None:
        """Flush what is left (a trailing partial character, held-back text)."""
        if not self.stopped and self._read < len(self.ids):
            rest = self._decode(self.ids[self._prefix :])[len(self._decode(self.ids[self._prefix : self._read])) :]
            if rest:
                self._feed(rest)
        if not self.stopped and self.emitted < len(self.text):
            self._send(self.text[self.emitted :])
            self.emitted = len(self.text)
        if self.recorder is not None and not self.stopped:  # the end of text (no characters) too
            self._texts("")
            last = self._tokens_up_to(len(self.text))
            if last:
                self.emit("", last)


Emit = Callable[..., None]
"""Where text goes: ``emit(text)``, or ``emit(text, tokens)`` with the tokens that made it."""


def _stopping(flag: CancelFlag, streamer: TokenStreamer) -> Any:
    import torch
    from transformers import StoppingCriteria

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = flag.is_set() or streamer.stopped
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return _Stop()


@dataclass
class Prepared:
    """A local generation about to start: its prompt ids, how many tokens it may add, and the
    streamer its tokens go through."""

    ids: list[int]
    max_new: int
    streamer: TokenStreamer


def prepare(tokenizer: Any, messages: Sequence[ChatMessage], params: GenerationParams, emit: Emit,
            flag: CancelFlag, limit: int | None, prefix: str = "", tools: Sequence[ToolSpec] = ()) -> Prepared:  # fmt: skip
    """Tokenize the request (with ``tools`` offered through the chat template, and the answer's
    given start), check it fits ``limit`` (the context; None: no known limit) and make its
    streamer (with a logprob recorder if asked)."""
    ids = request_ids(tokenizer, messages, prefix, tools)
    flag.stats.prompt_tokens = len(ids)
    if limit and len(ids) >= limit:
        raise ContextTooLong(f"The prompt has {len(ids)} tokens; this model's context is {limit} tokens.")
    max_new = params.max_tokens or (limit - len(ids) if limit else 512)
    if limit:
        max_new = min(max_new, limit - len(ids))
    return Prepared(ids, max_new, TokenStreamer(tokenizer, params.stop, emit, flag.stats, recorder_for(tokenizer, params)))


def generate(  # fmt: skip
    model: Any, tokenizer: Any, messages: Sequence[ChatMessage], params: GenerationParams, emit: Emit,
    flag: CancelFlag, context_length: int | None, prefix: str = "", tools: Sequence[ToolSpec] = (),
    constraint: Any = None, cache: PrefixCache | None = None, key: Hashable = None,
) -> tuple[int, int, str]:
    """Generate on the calling (worker) thread; return (prompt tokens, completion tokens, reason).
    ``prefix``: the answer's given start, continued (it is not emitted: the engine shows it);
    ``tools``: offered through the chat template; ``constraint``: a
    :class:`~app.providers.local_constrain.Constraint` the answer is held to; ``cache``: the
    loaded model's prefix cache (the KV under ``key`` is reused and kept)."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    job = prepare(tokenizer, messages, params, emit, flag, context_length, prefix, tools)
    ids, max_new, streamer = job.ids, job.max_new, job.streamer
    recorder = streamer.recorder

    class _Bridge(BaseStreamer):
        def put(self, value: Any) -> None:
            streamer.put(value)

        def end(self) -> None:
            streamer.end()

    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "max_new_tokens": max_new,
        "streamer": _Bridge(),
        "stopping_criteria": StoppingCriteriaList([_stopping(flag, streamer)]),
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    processors = LogitsProcessorList([processor(recorder)] if recorder is not None else [])  # the raw distribution
    if constraint is not None:
        from app.providers.local_constrain import logits_processor

        processors.append(logits_processor(constraint, len(ids)))
    if processors:
        kwargs["logits_processor"] = processors
    kwargs.update(params.sampling_kwargs())
    implementation = params.extras.get("cache_implementation") if params.extras else None
    past = None
    if implementation:
        kwargs["cache_implementation"] = str(implementation)
    else:
        with torch.inference_mode():
            past, flag.stats.cached_tokens = resume_dynamic(cache, key, ids, model)
        if past is not None:
            kwargs[cache_argument()] = past
    if params.seed is not None:
        torch.manual_seed(params.seed)
    with torch.inference_mode():
        out = model.generate(**kwargs)
    keep_dynamic(cache, key, ids, past)
    flag.stats.sequence = out[0].tolist()
    generated = out[0, len(ids) :].tolist()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    return len(ids), len(generated), finish_reason(streamer, flag, generated, eos_ids, max_new)


def finish_reason(streamer: TokenStreamer, flag: CancelFlag, generated: Sequence[int], eos_ids: set[int],
                  max_new: int) -> str:  # fmt: skip
    """Why a local generation ended: stop (a stop string or the end of text), cancelled, length."""
    if streamer.stopped:
        return "stop"
    if flag.is_set():
        return "cancelled"
    if len(generated) >= max_new and not (generated and generated[-1] in eos_ids):
        return "length"
    return "stop"
