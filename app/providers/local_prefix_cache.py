"""Prefix reuse for in-process models: the KV cache of recent sequences, kept per loaded model.

Chat turns, Regenerate, Edit, the token lens's "branch from this token" and Workbench cells
resend a long prefix. A new request reuses the longest common token prefix with a sequence
whose KV is kept under the same key and prefills only the rest. The key holds everything that
changes the KV (model, variant/dtype, RoPE settings, the active adapters with their file hashes
and scales; see :func:`LocalRuntime.kv_key`): a request with other adapters never reuses
another's cache.

- The lean step (:class:`~app.providers.local_fast.FastDecoder`) keeps its live sequence in its
  static cache (``seq``: the tokens whose rows are there). A request that extends it prefills
  only the new tokens; one that diverges first saves the live rows here (a copy) when they
  would be lost, and takes a kept sequence's rows when that one shares more.
- transformers' ``generate`` gets a ``DynamicCache`` cropped to the common prefix (owned when
  nothing else is lost, copied otherwise) and its cache is kept after the answer.

Entries are bounded by count and bytes (settings ``prefix_cache_entries`` and
``prefix_cache_mb``), least recently used first out. At least one prompt token is always
prefilled (its logits start the answer). Worker thread only; torch is imported lazily.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

MB = 1 << 20
ALIGN = 32
"""Prefill runs in chunks at multiples of this many positions; only whole chunks are reused."""


@dataclass
class CacheEntry:
    """The KV of ``ids`` (positions 0..len-1) under ``key``; ``payload`` is the caller's."""

    key: Hashable
    ids: list[int]
    payload: Any
    nbytes: int


@dataclass
class SavedTail:
    """The lean step's last prefill of ``ids`` set aside by the idle warm-up: the rows from
    ``start`` (its last whole chunk's end) to its end, and its last logits (the same prompt
    again needs no prefill)."""

    key: Hashable
    ids: list[int]
    start: int
    k: Any
    v: Any
    logits: Any


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def is_prefix(head: Sequence[int], ids: Sequence[int]) -> bool:
    """True when ``ids`` starts with all of ``head``."""
    return len(head) <= len(ids) and common_prefix(head, ids) == len(head)


class PrefixCache:
    """Recent sequences' KV, LRU-bounded by ``limits()`` = (entries, bytes), read on each use."""

    def __init__(self, limits: Callable[[], tuple[int, int]]) -> None:
        self.limits = limits
        self.entries: list[CacheEntry] = []  # least recently used first

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept entries."""
        return sum(e.nbytes for e in self.entries)

    @property
    def enabled(self) -> bool:
        """False when the settings allow no entries (reuse is off)."""
        count, size = self.limits()
        return count > 0 and size > 0

    def best(self, key: Hashable, ids: Sequence[int]) -> tuple[CacheEntry | None, int]:
        """The kept entry under ``key`` sharing the longest prefix with ``ids``, and its length."""
        found: CacheEntry | None = None
        length = 0
        for entry in self.entries:
            if entry.key == key:
                n = common_prefix(entry.ids, ids)
                if n > length:
                    found, length = entry, n
        if found is not None:
            self.entries.remove(found)
            self.entries.append(found)
        return found, length

    def take(self, entry: CacheEntry) -> None:
        """Remove ``entry`` (its payload now belongs to the caller)."""
        self.entries = [e for e in self.entries if e is not entry]

    def covers(self, key: Hashable, ids: Sequence[int]) -> bool:
        """True when a kept entry under ``key`` already holds all of ``ids``."""
        return any(e.key == key and is_prefix(ids, e.ids) for e in self.entries)

    def put(self, key: Hashable, ids: Sequence[int], payload: Any, nbytes: int) -> bool:
        """Keep ``payload`` (the KV of ``ids``); entries it extends go; then evict to the bounds.
        Returns False when it was not kept (reuse off, too big, or nothing new)."""
        count, size = self.limits()
        if count <= 0 or nbytes > size or not ids or self.covers(key, ids):
            return False
        self.entries = [e for e in self.entries if not (e.key == key and is_prefix(e.ids, ids))]
        self.entries.append(CacheEntry(key, list(ids), payload, nbytes))
        self.trim()
        return True

    def trim(self) -> None:
        """Evict least recently used entries until within the bounds (they may have shrunk)."""
        count, size = self.limits()
        while self.entries and (len(self.entries) > max(0, count) or self.nbytes > size):
            self.entries.pop(0)

    def clear(self) -> None:
        """Drop every entry."""
        self.entries = []


# --- the lean step's static cache ---------------------------------------------------------
def resume_fast(decoder: Any, cache: PrefixCache | None, ids: Sequence[int]) -> tuple[int, Any]:
    """Make ``decoder``'s static cache hold the longest reusable prefix of ``ids`` (its
    capacity reserved already); return that length (the positions the request need not
    prefill) and, when ``ids`` is exactly the last prefill (the same prompt again), its logits.

    Only rows a cold prefill would compute bit for bit alike are reused (``decoder.exact``:
    whole ``ALIGN`` chunks of a prefill, never decoded tokens), so answers equal a cold run's.
    The live rows are saved to ``cache`` first when the request would overwrite rows that it
    does not repeat (a branch, Regenerate, another adapter), so a later request can go back."""
    if cache is None or not cache.enabled:
        if cache is not None:
            cache.clear()
        return 0, None
    limit = len(ids) - 1
    same = decoder.seq_key == decoder.kv_key
    if same and _restore_tail(decoder, cache, ids):
        return len(ids), decoder.tail[1].clone()
    tail = decoder.tail
    if same and tail is not None and tail[0] == len(ids) and decoder.seq[: len(ids)] == list(ids):
        return len(ids), tail[1].clone()
    exact = decoder.seq[: decoder.exact] if same else []
    live = _aligned(min(common_prefix(exact, ids), limit))
    entry, kept = cache.best(decoder.kv_key, ids)
    kept = _aligned(min(kept, limit))
    if decoder.exact and not (same and is_prefix(exact, ids)):
        _save_live(decoder, cache)
    if entry is not None and kept > live:
        k, v = entry.payload
        decoder.k_cache[:, :, :kept].copy_(k[:, :, :kept])
        decoder.v_cache[:, :, :kept].copy_(v[:, :, :kept])
        decoder.seq = list(entry.ids[:kept])
        decoder.seq_key = decoder.kv_key
        decoder.exact = kept
        decoder.tail = None
        return kept, None
    return live, None


def _restore_tail(decoder: Any, cache: PrefixCache, ids: Sequence[int]) -> bool:
    """When ``ids`` is the prefill set aside by the idle warm-up (``decoder.saved``) and its
    whole chunks are still live, put its last rows and logits back (the warmed rows are saved
    to ``cache`` first); True when done."""
    saved = decoder.saved
    if saved is None or saved.key != decoder.kv_key or saved.ids != list(ids):
        return False
    start, end = saved.start, len(ids)
    if decoder.exact < start or decoder.seq[:start] != saved.ids[:start]:
        return False
    if decoder.exact > start:
        _save_live(decoder, cache)
    decoder.k_cache[:, :, start:end].copy_(saved.k)
    decoder.v_cache[:, :, start:end].copy_(saved.v)
    decoder.seq = list(ids)
    decoder.exact = start
    decoder.tail = (end, saved.logits)
    decoder.saved = None
    return True


def _aligned(n: int) -> int:
    return max(0, n - n % ALIGN)


def _save_live(decoder: Any, cache: PrefixCache) -> None:
    """Copy the decoder's exact live rows into ``cache`` (unless an entry holds them already)."""
    n = decoder.exact
    seq = decoder.seq[:n]
    if n and min(seq) >= 0 and not cache.covers(decoder.seq_key, seq):
        k = decoder.k_cache[:, :, :n].clone()
        v = decoder.v_cache[:, :, :n].clone()
        cache.put(decoder.seq_key, seq, (k, v), k.nbytes + v.nbytes)


# --- transformers' DynamicCache -------------------------------------------------------------
def resume_dynamic(cache: PrefixCache | None, key: Hashable, ids: Sequence[int], model: Any) -> tuple[Any, int]:
    """(a DynamicCache holding the prompt ``ids`` up to its last whole ``ALIGN`` chunk, how
    many of those tokens came from ``cache``), or (None, 0) when reuse is off or cannot apply.

    The kept prefix is cropped to whole chunks, and the rest up to the last chunk start is
    prefilled here chunk by chunk (:func:`prefill_chunks`), as a cold request does: the
    ``generate`` call then prefills the same tail either way, so answers equal a cold run's."""
    if cache is None:
        return None, 0
    from transformers import DynamicCache

    if not cache.enabled:  # off: nothing is reused or kept, but the prefill runs alike
        cache.clear()
    entry, kept = cache.best(key, ids)
    kept = _aligned(min(kept, len(ids) - 1))
    if entry is None or kept <= 0:
        past, kept = DynamicCache(config=model.config), 0
        if not croppable(past):
            return None, 0
    else:
        if is_prefix(entry.ids, ids):  # nothing of it is lost: take it
            cache.take(entry)
            past = entry.payload
        else:
            past = copy.deepcopy(entry.payload)
        past.crop(kept - past.get_seq_length())
    prefill_chunks(model, past, ids, kept)
    return past, kept


def prefill_chunks(model: Any, past: Any, ids: Sequence[int], start: int) -> None:
    """Run ``ids[start:b]`` into ``past`` in ``ALIGN``-token forwards, ``b`` the start of the
    chunk holding the last token (``start`` is a chunk start)."""
    for pos in range(start, _aligned(len(ids) - 1), ALIGN):
        prefill_chunk(model, past, ids, pos)


def prefill_chunk(model: Any, past: Any, ids: Sequence[int], pos: int) -> None:
    """Run the ``ALIGN`` tokens of ``ids`` from ``pos`` into ``past`` (a cold prefill's chunk)."""
    import torch

    device = next(model.parameters()).device
    chunk = torch.tensor([list(ids[pos : pos + ALIGN])], dtype=torch.long, device=device)
    model(input_ids=chunk, use_cache=True, logits_to_keep=1, **{cache_argument(): past})


def cache_argument() -> str:
    """transformers' name for a given cache: ``cache`` since 5.25 (which warns about
    ``past_key_values``), ``past_key_values`` before."""
    from transformers.generation import utils

    return "cache" if "cache" in getattr(utils, "ALL_CACHE_NAMES", ()) else "past_key_values"


def keep_dynamic(cache: PrefixCache | None, key: Hashable, ids: Sequence[int], past: Any) -> None:
    """Keep ``past`` after ``generate`` for ``ids`` (its prompt): cropped to the prompt's whole
    chunks, the rows a cold prefill computes alike."""
    if cache is None or past is None or not croppable(past):
        return
    n = _aligned(len(ids) - 1)
    if n <= 0:
        return
    past.crop(n - past.get_seq_length())
    cache.put(key, list(ids[:n]), past, dynamic_bytes(past))


def dynamic_bytes(past: Any) -> int:
    """Bytes of the keys and values a DynamicCache holds."""
    return sum(int(t.nbytes) for layer in past.layers for t in (layer.keys, layer.values) if t is not None)


def croppable(past: Any) -> bool:
    """True when every layer of ``past`` is a plain full-attention DynamicLayer (a sliding
    window or a linear-attention state cannot go back to an arbitrary prefix)."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in getattr(past, "layers", ()))
