"""Idle warm-up: make the last answer's KV rows exact while the user reads it.

The rows of decoded tokens come from one-token steps, which are not bit for bit what a cold
prefill computes, so prefix reuse (:mod:`app.providers.local_prefix_cache`) cannot serve them:
the next turn, Regenerate with an edit, or a branch from token 300 of the answer would prefill
the whole answer again. After an answer, the model worker runs one of these tasks while no
job is queued (:meth:`~app.providers.worker.ModelWorker.set_idle`): each call prefills one
more ``ALIGN`` chunk of the prompt and answer as a cold prefill does, so those rows become
reusable. A queued request waits for one chunk at most; the task stops by itself when the
model, its adapters or the sequence changed (``valid``) and never changes an answer.

- :class:`FastWarmUp` rewrites the lean step's static cache (its live sequence); the last
  prefill's partial chunk rows and logits are kept aside first (``SavedTail``), so the same
  prompt again still starts at once.
- :class:`DynamicWarmUp` extends the prefix cache's entry of the last request on
  transformers' path (a ``DynamicCache``) within the cache's bounds.

Worker thread only; torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.providers.local_prefix_cache import (
    ALIGN,
    CacheEntry,
    PrefixCache,
    SavedTail,
    dynamic_bytes,
    prefill_chunk,
)


class FastWarmUp:
    """Prefill ``ids`` (the last request's prompt and answer) into ``decoder``'s static cache
    from its exact rows on, one ``ALIGN`` chunk per call (see the module docstring)."""

    def __init__(self, decoder: Any, ids: Sequence[int], valid: Callable[[], bool]) -> None:
        self.decoder = decoder
        self.ids = list(ids)
        self.valid = valid
        self.key = decoder.kv_key
        self.chunks = 0  # chunks prefilled so far

    def __call__(self) -> bool:
        """Prefill one more chunk; False when there is nothing (more) to do."""
        import torch

        d = self.decoder
        start = int(d.exact)
        end = start + ALIGN
        if (end > len(self.ids) or not self.valid() or d.kv_key != self.key or d.seq_key != self.key
                or d.seq[:start] != self.ids[:start]):  # fmt: skip
            return False
        if self.chunks == 0:
            d.saved = save_tail(d)
        with torch.inference_mode():
            d.forward(torch.tensor(self.ids[start:end], dtype=torch.long), start)
        self.chunks += 1
        return end + ALIGN <= len(self.ids)


def save_tail(decoder: Any) -> SavedTail | None:
    """The last prefill's rows past its whole chunks and its logits (what serves the same
    prompt again), before the warm-up overwrites them; None when there is no such prefill."""
    tail = decoder.tail
    start = decoder.exact
    if tail is None or decoder.seq_key != decoder.kv_key or tail[0] < start:
        return None
    end = tail[0]
    k = decoder.k_cache[:, :, start:end].clone()
    v = decoder.v_cache[:, :, start:end].clone()
    return SavedTail(decoder.kv_key, list(decoder.seq[:end]), start, k, v, tail[1])


class DynamicWarmUp:
    """Extend ``entry`` (the kept ``DynamicCache`` of ``ids``' prompt) with ``ids``' next
    ``ALIGN`` chunk per call (:func:`~app.providers.local_prefix_cache.prefill_chunk`)."""

    def __init__(self, model: Any, cache: PrefixCache, entry: CacheEntry, ids: Sequence[int],
                 valid: Callable[[], bool]) -> None:  # fmt: skip
        self.model = model
        self.cache = cache
        self.entry: CacheEntry | None = entry
        self.ids = list(ids)
        self.valid = valid
        self.chunks = 0

    def __call__(self) -> bool:
        """Prefill one more chunk into the entry; False when there is nothing (more) to do."""
        import torch

        entry = self.entry
        if entry is None:
            return False
        start = len(entry.ids)
        end = start + ALIGN
        if (end > len(self.ids) or not any(e is entry for e in self.cache.entries) or not self.valid()
                or entry.ids != self.ids[:start]):  # fmt: skip
            self.entry = None  # an evicted entry's memory goes now
            return False
        with torch.inference_mode():
            prefill_chunk(self.model, entry.payload, self.ids, start)
        entry.ids.extend(self.ids[start:end])
        entry.nbytes = dynamic_bytes(entry.payload)
        self.cache.trim()  # within the bounds: this entry may go (then the next call stops)
        self.chunks += 1
        return end + ALIGN <= len(self.ids)
