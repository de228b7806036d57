"""Token counting with tiktoken, fully offline.

The official ``o200k_base`` and ``cl100k_base`` files ship in ``resources/``; their sha256 is
checked against ``resources/tiktoken.SHA256SUMS`` and the encodings are built directly with
:class:`tiktoken.Encoding`, so tiktoken never downloads nor writes a cache file.
The split patterns and special tokens are the ones of ``tiktoken_ext.openai_public``
(tiktoken 0.14); ``tests/core/test_tokens.py`` checks that they still match.

Unknown models get a labelled estimate (``exact=False``) made with ``cl100k_base``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import ConfigError
from app.core.paths import resources_dir
from app.core.types import ChatMessage, TokenCount

if TYPE_CHECKING:
    import tiktoken

O200K = "o200k_base"
CL100K = "cl100k_base"
ENCODINGS: tuple[str, ...] = (O200K, CL100K)
ESTIMATE_ENCODING = CL100K

# OpenAI cookbook ``num_tokens_from_messages`` for gpt-4 / gpt-4o and later chat models.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

ENCODING_SPECS: dict[str, tuple[str, dict[str, int]]] = {
    CL100K: (
        _CL100K_PAT,
        {
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    O200K: (_O200K_PAT, {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018}),
}
"""encoding name -> (split pattern, special tokens), as in ``tiktoken_ext.openai_public``."""

# Checked in order; the first prefix that matches wins (so "gpt-4o" comes before "gpt-4").
_O200K_PREFIXES = ("gpt-5", "gpt-4.1", "gpt-4.5", "gpt-4o", "chatgpt-4o", "o1", "o3", "o4", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")


def encoding_name_for(model: str) -> str | None:
    """The tiktoken encoding OpenAI uses for ``model``, or None when unknown.

    Accepts dated snapshots (``gpt-4o-mini-2024-07-18``) and fine-tunes (``ft:gpt-4o:...``).
    """
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:]
    name = name.rpartition("/")[2] if name.startswith("openai/") else name
    for prefix in _O200K_PREFIXES:
        if _has_prefix(name, prefix):
            return O200K
    for prefix in _CL100K_PREFIXES:
        if _has_prefix(name, prefix):
            return CL100K
    return None


def _has_prefix(name: str, prefix: str) -> bool:
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    # "o1" must not match "o10x"; "gpt-5" matches "gpt-5", "gpt-5-mini", "gpt-5.1", "gpt-5:ft".
    return rest == "" or rest[0] in "-.:_" or not prefix[-1].isdigit()


def _expected_hashes(folder: Path) -> dict[str, str]:
    sums = folder / "tiktoken.SHA256SUMS"
    try:
        lines = sums.read_text(encoding="ascii").splitlines()
    except OSError as exc:
        raise ConfigError(
            f"The token-count checksums file {sums} is missing ({exc.strerror}).",
            hint="Reinstall the app: resources/tiktoken.SHA256SUMS belongs to it.",
        ) from exc
    out: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def _load_ranks(path: Path, expected_sha256: str | None) -> dict[bytes, int]:
    """Read a ``.tiktoken`` file (base64 token + rank per line) and check its sha256."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"The tokenizer file {path} cannot be read ({exc.strerror}).",
            hint="Reinstall the app: the tiktoken encodings ship in its resources folder.",
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if expected_sha256 is None or actual != expected_sha256:
        raise ConfigError(
            f"The tokenizer file {path} is damaged (sha256 {actual[:12]}... does not match).",
            hint="Reinstall the app to restore the original file.",
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


_load_lock = threading.Lock()


def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name`` built from the bundled file (cached; no network).

    The first call per encoding takes ~0.2-0.6 s (see :func:`preload`); later calls are free.
    """
    with _load_lock:  # one load per encoding even when threads race
        return _build_encoding(name)


def _cache_clear() -> None:
    _build_encoding.cache_clear()


get_encoding.cache_clear = _cache_clear  # type: ignore[attr-defined]


def preload(names: Sequence[str] = ENCODINGS) -> None:
    """Load encodings ahead of time (call from a worker thread at start to keep the UI smooth)."""
    for name in names:
        get_encoding(name)


@functools.cache
def _build_encoding(name: str) -> tiktoken.Encoding:
    import tiktoken

    if name not in ENCODING_SPECS:
        raise ConfigError(f"Unknown tokenizer encoding '{name}'.", hint="Use o200k_base or cl100k_base.")
    folder = resources_dir()
    filename = f"{name}.tiktoken"
    ranks = _load_ranks(folder / filename, _expected_hashes(folder).get(filename))
    pat_str, special = ENCODING_SPECS[name]
    return tiktoken.Encoding(name=name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special)


def _encoding_for(model: str) -> tuple[str, bool]:
    name = encoding_name_for(model)
    return (name, True) if name is not None else (ESTIMATE_ENCODING, False)


def _label(name: str, exact: bool) -> str:
    return name if exact else f"estimate ({name})"


def _n(enc: tiktoken.Encoding, text: str) -> int:
    # Special-token strings in user text are counted as plain text, never rejected.
    return len(enc.encode(text, disallowed_special=())) if text else 0


def count_text(model: str, text: str) -> TokenCount:
    """Tokens of plain ``text`` for ``model`` (exact when the model is known)."""
    name, exact = _encoding_for(model)
    return TokenCount(_n(get_encoding(name), text), exact=exact, method=_label(name, exact))


def count_chat(model: str, messages: Sequence[ChatMessage]) -> TokenCount:
    """Tokens of a whole chat request, with OpenAI's per-message overhead.

    Matches the OpenAI cookbook's ``num_tokens_from_messages`` for gpt-4 / gpt-4o:
    3 per message + role + content tokens, plus 3 for the reply priming.
    """
    name, exact = _encoding_for(model)
    enc = get_encoding(name)
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + _n(enc, message.role) + _n(enc, message.content)
    return TokenCount(total, exact=exact, method=_label(name, exact))
