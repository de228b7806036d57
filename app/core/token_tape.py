"""A long answer's tokens kept compactly: texts in lists, numbers in arrays.

A streamed answer with probabilities brings one :class:`~app.core.events.TokenLogprob` per
token, each with its K alternatives: 7 small objects a token that the cyclic garbage collector
walks again and again while the answer grows (tens of milliseconds a pass at 80k tokens, on the
GUI thread). :class:`TokenTape` keeps the same data in a few flat containers (strings and
floats are not tracked by the collector), so the per-token objects die as soon as their event
is handled; a token is built again on demand (``tape[i]``) for a tooltip, a popup or the meta.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter
from typing import overload

from app.core.events import TokenChoice, TokenLogprob

NO_ID = -1
"""The stored id of a token without one (ids are never negative)."""
_TEXT = attrgetter("text")
_LOGPROB = attrgetter("logprob")


class TokenTape(Sequence[TokenLogprob]):
    """A growing sequence of tokens stored column by column (see the module doc)."""

    __slots__ = ("_ids", "_logprob", "_text", "_top_end", "_top_logprob", "_top_text")

    def __init__(self, tokens: Iterable[TokenLogprob] = ()) -> None:
        self._text: list[str] = []
        self._logprob = array("d")
        self._ids = array("q")
        self._top_end = array("q")
        self._top_text: list[str] = []
        self._top_logprob = array("d")
        self.extend(tokens)

    def append(self, token: TokenLogprob) -> None:
        """Keep one more token."""
        self.extend((token,))

    def extend(self, tokens: Iterable[TokenLogprob]) -> None:
        """Keep these tokens, in order (the hot path: one call per streamed token)."""
        text, logprob, ids = self._text.append, self._logprob.append, self._ids.append
        top_text, top_logprob, top_end = self._top_text, self._top_logprob, self._top_end.append
        for token in tokens:
            text(token.text)
            logprob(token.logprob)
            ids(NO_ID if token.token_id is None else token.token_id)
            top = token.top
            if top:
                top_text.extend(map(_TEXT, top))
                top_logprob.extend(map(_LOGPROB, top))
            top_end(len(top_text))

    def __len__(self) -> int:
        return len(self._text)

    @overload
    def __getitem__(self, index: int) -> TokenLogprob: ...

    @overload
    def __getitem__(self, index: slice) -> list[TokenLogprob]: ...

    def __getitem__(self, index: int | slice) -> TokenLogprob | list[TokenLogprob]:
        if isinstance(index, slice):
            return [self._token(i) for i in range(*index.indices(len(self._text)))]
        n = len(self._text)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("token index out of range")
        return self._token(index)

    def __iter__(self) -> Iterator[TokenLogprob]:
        for i in range(len(self._text)):
            yield self._token(i)

    def _token(self, i: int) -> TokenLogprob:
        lo = self._top_end[i - 1] if i else 0
        top = tuple(TokenChoice(self._top_text[j], self._top_logprob[j]) for j in range(lo, self._top_end[i]))
        token_id = self._ids[i]
        return TokenLogprob(self._text[i], self._logprob[i], top, None if token_id == NO_ID else token_id)

    def to_json(self, stop: int | None = None) -> list[dict[str, object]]:
        """The first ``stop`` tokens (default all) as :meth:`TokenLogprob.to_json` gives them,
        made straight from the columns (no token objects: a 1,024-token answer's stored form
        in ~1 ms instead of ~5)."""
        n = len(self._text) if stop is None else max(0, min(stop, len(self._text)))
        texts, logprobs, ids, ends = self._text, self._logprob, self._ids, self._top_end
        top_text, top_logprob = self._top_text, self._top_logprob
        out: list[dict[str, object]] = []
        add = out.append
        lo = 0
        for i in range(n):
            hi = ends[i]
            token: dict[str, object] = {"text": texts[i], "logprob": logprobs[i],
                                        "top": [{"text": t, "logprob": lp}
                                                for t, lp in zip(top_text[lo:hi], top_logprob[lo:hi], strict=True)]}
            if ids[i] != NO_ID:
                token["id"] = ids[i]
            add(token)
            lo = hi
        return out

    def text(self, i: int) -> str:
        """The text of token ``i`` (nothing built)."""
        return self._text[i]

    def logprob(self, i: int) -> float:
        """The log-probability of token ``i`` (nothing built)."""
        return self._logprob[i]

    @property
    def texts(self) -> Sequence[str]:
        """Every token's text (a view to read, not to change)."""
        return self._text

    @property
    def logprobs(self) -> Sequence[float]:
        """Every token's log-probability (a view to read, not to change)."""
        return self._logprob


def logprobs_of(tokens: Sequence[TokenLogprob]) -> Sequence[float]:
    """The log-probabilities of ``tokens`` (straight from a :class:`TokenTape`'s column)."""
    return tokens.logprobs if isinstance(tokens, TokenTape) else [t.logprob for t in tokens]
