"""A long JSON list encoded a piece at a time, for a caller that must not block for long.

An answer's stored tokens (up to 1,024, each with its alternatives: ~320 KB of JSON) take
~6 ms to encode in one ``json.dumps``, on the GUI thread. :func:`encode_steps` encodes the
same list in pieces (one per call of ``next``) and ends with an :class:`Encoded`: the list
with its text, which :func:`dumps` puts into the surrounding JSON as it is. The text is the
same as ``dumps`` of the list would make (the same options), so what is stored does not depend
on how it was encoded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

STEP_ITEMS = 256
"""Items encoded per step (~1.5 ms for stored tokens with 5 alternatives)."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class Encoded:
    """A JSON value (``value``) with its text (``text``) made already."""

    __slots__ = ("text", "value")

    def __init__(self, value: Any, text: str) -> None:
        self.value = value
        self.text = text


def encode_steps(items: Sequence[Any], size: int = STEP_ITEMS) -> Iterator[Encoded | None]:
    """Encode ``items`` ``size`` at a time: yields None after each piece, then the
    :class:`Encoded` list (``items`` must not change meanwhile): its caller's step that
    receives it does nothing else but use it."""
    pieces: list[str] = []
    for start in range(0, len(items), size):
        pieces.append(_dumps(items[start : start + size])[1:-1])
        yield None
    yield Encoded(items, "[" + ", ".join(pieces) + "]")


def plain(value: Any) -> Any:
    """``value`` with each :class:`Encoded` at its top level (a mapping's values) replaced by
    its value (for what keeps or shows the value itself)."""
    if isinstance(value, Encoded):
        return value.value
    if isinstance(value, Mapping) and any(isinstance(v, Encoded) for v in value.values()):
        return {k: v.value if isinstance(v, Encoded) else v for k, v in value.items()}
    return value


def dumps(value: Any) -> str:
    """A JSON column's text (None is ``{}``); an :class:`Encoded` value of a mapping goes in as
    its text (the same text as its value would give)."""
    if value is None:
        return "{}"
    if isinstance(value, Encoded):
        return value.text
    if not isinstance(value, Mapping) or not any(isinstance(v, Encoded) for v in value.values()):
        return _dumps(value)
    texts: dict[str, str] = {}
    marked: dict[Any, Any] = {}
    for key, v in value.items():
        if isinstance(v, Encoded):
            mark = f"\x00encoded-{uuid.uuid4().hex}"
            texts[_dumps(mark)] = v.text
            v = mark
        marked[key] = v
    out = _dumps(marked)
    for mark, text in texts.items():
        out = out.replace(mark, text, 1)
    return out

