"""The token lens's arithmetic, Qt-free: what an answer's tokens say (mean log-probability,
perplexity, each token's alternatives), how they are kept in a message's meta, the start of a
sibling answer branched from one token, and the adapter effect per token (an adapter's answer
scored under the base model in one extra forward pass: which tokens the adapter moved most).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice

from app.core.errors import AppError
from app.core.events import TokenChoice, TokenLogprob
from app.core.provider import LocalModelProvider
from app.core.token_tape import TokenTape, logprobs_of
from app.core.types import GenerationRequest

MINUS = "\u2212"
EFFECT_TOP_N = 5
"""How many most-changed tokens the adapter effect names and marks."""
EFFECT_THRESHOLD = 1.0
"""|Δ logprob| (nats) from which a token is marked even outside the top N (about 2.7x)."""
STORED_TOKENS_MAX = 1024
"""An answer keeps the probabilities of at most this many tokens in the history (its first
ones): with 5 alternatives a token takes ~200 bytes of JSON, and the whole meta is written
when the answer ends and read whenever its conversation is. The mean logprob of the whole
answer is kept apart, so its footer stays right."""


def probability(logprob: float) -> float:
    """``exp(logprob)``, clipped to 0..1 (a logprob above 0 from rounding counts as 1)."""
    if math.isnan(logprob):
        return 0.0
    return math.exp(min(0.0, logprob))


def percent(logprob: float) -> str:
    """A logprob as a percentage people read: ``80%``, ``4.2%``, ``0.03%``, ``<0.01%``."""
    p = probability(logprob) * 100
    if p >= 10 or p == 0:
        return f"{p:.0f}%"
    if p >= 1:
        return f"{p:.1f}%"
    if p >= 0.01:
        return f"{p:.2f}%"
    return "<0.01%"


def signed(x: float, digits: int = 2) -> str:
    """``+0.42`` / ``−1.30`` (a real minus sign)."""
    text = f"{abs(x):.{digits}f}"
    return (MINUS if x < 0 and float(text) != 0 else "+") + text


def mean_logprob(tokens: Sequence[TokenLogprob]) -> float | None:
    """The mean log-probability of the chosen tokens (None: no tokens)."""
    values = [v for v in logprobs_of(tokens) if math.isfinite(v)]
    return sum(values) / len(values) if values else None


def perplexity(tokens: Sequence[TokenLogprob]) -> float | None:
    """``exp(-mean logprob)``: 1 when every token was certain (None: no tokens)."""
    mean = mean_logprob(tokens)
    return None if mean is None else math.exp(-mean)


def lens_sentence(tokens: Sequence[TokenLogprob], mean: float | None = None) -> str:
    """The footer's addition: ``mean logprob −0.42 · perplexity 1.52`` ('' without tokens);
    ``mean``: the one stored for the whole answer (its tokens may be cut)."""
    mean = mean_logprob(tokens) if mean is None else mean
    if mean is None or not math.isfinite(mean):
        return ""
    return f"mean logprob {signed(mean)} \u00b7 perplexity {math.exp(-mean):.2f}"


def alternatives(token: TokenLogprob) -> list[TokenChoice]:
    """The token's candidates from most to least likely, the chosen one always among them."""
    out = list(token.top)
    if not any(c.text == token.text for c in out):
        out.append(TokenChoice(token.text, token.logprob))
    return sorted(out, key=lambda c: c.logprob, reverse=True)


def visible(text: str) -> str:
    """A token's text with its whitespace made visible (``␣`` for spaces, ``↵`` for newlines)."""
    return text.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u21e5") or "\u2205"


# -- storing -----------------------------------------------------------------------------------
def tokens_to_json(tokens: Iterable[TokenLogprob], stop: int | None = None) -> list[dict[str, object]]:
    """The first ``stop`` tokens (default all) as a message's meta keeps them
    (:meth:`TokenLogprob.to_json` each; a :class:`TokenTape` makes them from its columns)."""
    if isinstance(tokens, TokenTape):
        return tokens.to_json(stop)
    return [t.to_json() for t in (tokens if stop is None else islice(tokens, max(0, stop)))]


def tokens_from_json(data: object) -> tuple[TokenLogprob, ...]:
    """The inverse of :func:`tokens_to_json`; anything unreadable gives no tokens (never raises)."""
    if not isinstance(data, list):
        return ()
    try:
        return tuple(TokenLogprob.from_json(item) for item in data)
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError):
        return ()


def tokens_from_meta(meta: Mapping[str, object] | None) -> tuple[TokenLogprob, ...]:
    """The tokens stored in an answer's meta (``meta["tokens"]``; none: ``()``)."""
    return tokens_from_json(meta.get("tokens")) if meta else ()


def stored_tokens(start: Sequence[Mapping[str, object]], tokens: Sequence[TokenLogprob]) -> list[dict[str, object]]:
    """The tokens an answer's meta keeps (``tokens``): ``start``, a branch's given start already
    as JSON, then ``tokens``; at most :data:`STORED_TOKENS_MAX` of them."""
    room = max(0, STORED_TOKENS_MAX - len(start))
    return [dict(d) for d in start[:STORED_TOKENS_MAX]] + tokens_to_json(tokens, room)


def stored_lens(start: Sequence[Mapping[str, object]], tokens: Sequence[TokenLogprob], *,
                with_tokens: bool = True) -> dict[str, object]:
    """What an answer's meta keeps of its tokens: ``tokens`` (:func:`stored_tokens`; not
    without ``with_tokens``, for a caller that makes them later), the ``logprob_mean`` of all
    of them and, when they were cut, ``tokens_total``."""
    values = [float(d["logprob"]) for d in start if isinstance(d.get("logprob"), int | float)]  # type: ignore[arg-type]
    out: dict[str, object] = {"tokens": stored_tokens(start, tokens)} if with_tokens else {}
    lps = logprobs_of(tokens)
    count, total = len(values) + len(lps), sum(values) + sum(lps)  # linear, no copies
    if not math.isfinite(total):  # a -inf token: the mean of the others
        finite = [v for v in [*values, *lps] if math.isfinite(v)]
        count, total = len(finite), sum(finite)
    if count:
        out["logprob_mean"] = total / count
    if len(start) + len(tokens) > STORED_TOKENS_MAX:
        out["tokens_total"] = len(start) + len(tokens)
    return out


def text_around(text: str, tokens: Sequence[TokenLogprob]) -> tuple[str, str]:
    """The text before and after the tokens in ``text``: a given start whose tokens are not
    known, and the rest of an answer whose stored tokens were cut. ``('', '')`` when the
    tokens are the whole text or do not fit it."""
    joined = "".join(t.text for t in tokens)
    if not joined or joined == text:
        return "", ""
    if text.endswith(joined):
        return text[: len(text) - len(joined)], ""
    if text.startswith(joined):
        return "", text[len(joined):]
    return "", ""


def split_lead(text: str, tokens: Sequence[TokenLogprob]) -> str:
    """The start of ``text`` that the tokens do not cover (a given prefix whose tokens are not
    known): ``''`` when the tokens are the whole text, or when they do not end it."""
    return text_around(text, tokens)[0]


# -- branching from a token --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenBranch:
    """The start of a sibling answer branched at one token: ``prefix`` is the text before the
    token plus the chosen alternative (the request's ``prefix``), ``tokens`` its tokens (those
    before, then the alternative with the probabilities of that step)."""

    prefix: str
    tokens: tuple[TokenLogprob, ...]
    index: int
    choice: TokenChoice


def branch_at(text: str, tokens: Sequence[TokenLogprob], index: int, choice_text: str) -> TokenBranch:
    """The start of the answer that says ``choice_text`` instead of token ``index``.
    Raises :class:`AppError` for a token that is not there."""
    if not 0 <= index < len(tokens):
        raise AppError(f"There is no token {index + 1} in this answer.", hint="Click a token of the answer shown.")
    step = tokens[index]
    choice = next((c for c in alternatives(step) if c.text == choice_text), None)
    if choice is None:
        raise AppError(f"{visible(choice_text)!s} was not among the alternatives of that token.",
                       hint="Pick one of the alternatives listed.")  # fmt: skip
    lead = split_lead(text, tokens)
    before = tuple(tokens[:index])
    prefix = lead + "".join(t.text for t in before) + choice.text
    return TokenBranch(prefix, (*before, TokenLogprob(choice.text, choice.logprob, step.top)), index, choice)


# -- adapter effect ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenEffect:
    """One token of an adapter's answer: its log-probability with the adapter and under the
    base model."""

    index: int
    text: str
    adapter_logprob: float
    base_logprob: float

    @property
    def diff(self) -> float:
        """How much the adapter raised (> 0) or lowered the token's log-probability."""
        return self.adapter_logprob - self.base_logprob

    def describe(self) -> str:
        """``“ cat” 12% → 95%`` (base → adapter)."""
        return (f"\u201c{visible(self.text)}\u201d {percent(self.base_logprob)} \u2192 "
                f"{percent(self.adapter_logprob)}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class AdapterEffect:
    """What an adapter did to its answer, token by token: ``effects`` in answer order, ``top``
    the indices of the most-changed tokens (largest |Δ| first), ``marked`` the tokens to
    highlight (the top ones and any with |Δ| ≥ the threshold)."""

    effects: tuple[TokenEffect, ...]
    top: tuple[int, ...]
    marked: frozenset[int]

    @property
    def mean_diff(self) -> float | None:
        """The mean Δ logprob per token (None: no tokens)."""
        if not self.effects:
            return None
        return sum(e.diff for e in self.effects) / len(self.effects)

    def strength(self, index: int) -> float:
        """0..1: how strongly to highlight token ``index`` (|Δ| of 3 nats or more is 1)."""
        if index not in self.marked:
            return 0.0
        return min(1.0, 0.35 + abs(self.effects[index].diff) / 3.0)

    def sentence(self) -> str:
        """``Adapter effect over 12 tokens: mean Δ logprob +0.42 · most changed: “ cat” 12% → 95%, …``."""
        mean = self.mean_diff
        if mean is None:
            return "Adapter effect: the answer has no tokens."
        head = f"Adapter effect over {len(self.effects):,} tokens: mean \u0394 logprob {signed(mean)}"
        named = [self.effects[i].describe() for i in self.top]
        return head + (" \u00b7 most changed: " + ", ".join(named) if named else "")


def adapter_effect(tokens: Sequence[TokenLogprob], base_logprobs: Sequence[float], *, top_n: int = EFFECT_TOP_N,
                   threshold: float = EFFECT_THRESHOLD) -> AdapterEffect:
    """Compare an adapter's answer (``tokens``, with the adapter's log-probabilities) with the
    same tokens scored under the base model. Raises ValueError when the lengths differ."""
    if len(tokens) != len(base_logprobs):
        raise ValueError(f"{len(tokens)} tokens but {len(base_logprobs)} base log-probabilities")
    effects = tuple(TokenEffect(i, t.text, t.logprob, float(b)) for i, (t, b) in enumerate(zip(tokens, base_logprobs,
                                                                                               strict=True)))
    ranked = sorted((e for e in effects if math.isfinite(e.diff) and abs(e.diff) > 1e-9),
                    key=lambda e: abs(e.diff), reverse=True)  # fmt: skip
    top = tuple(e.index for e in ranked[: max(0, top_n)])
    marked = frozenset(top) | {e.index for e in ranked if abs(e.diff) >= threshold}
    return AdapterEffect(effects, top, marked)


async def score_adapter_effect(provider: LocalModelProvider, request: GenerationRequest,
                               tokens: Sequence[TokenLogprob], *, top_n: int = EFFECT_TOP_N) -> AdapterEffect:
    """Score the adapter answer's ``tokens`` (made by ``request``, with its adapters) under the
    base model - the same request without adapters, one forward pass - and compare.
    Raises :class:`AppError` when the tokens carry no token ids (nothing is scored then)."""
    if not tokens:
        raise AppError("The adapter's answer has no tokens to compare.",
                       hint="Ask for probabilities (View > Show probabilities) and compare again.")  # fmt: skip
    ids = [t.token_id for t in tokens]
    if any(i is None for i in ids):
        raise AppError("The adapter's answer has no token ids, so it cannot be scored under the base model.",
                       hint="The adapter effect needs an in-process model.")  # fmt: skip
    base = await provider.score(replace(request, adapters=()), [int(i) for i in ids if i is not None])
    return adapter_effect(tokens, base, top_n=top_n)
