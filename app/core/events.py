"""Stream events: what a provider's ``stream()`` yields, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenChoice:
    """One candidate token and its log-probability (natural log, <= 0)."""

    text: str
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its text, its log-probability, and the most likely candidates at
    that step (``top``, from most to least likely; the chosen token among them when it is)."""

    text: str
    logprob: float
    top: tuple[TokenChoice, ...] = ()
    token_id: int | None = None
    """The model's own token id (in-process models), so the answer can be scored again."""

    def to_json(self) -> dict[str, object]:
        """``{"text", "logprob", "top": [{"text", "logprob"}, ...]}`` (the CLI's and history's form;
        plus ``id`` for in-process models)."""
        out: dict[str, object] = {"text": self.text, "logprob": self.logprob,
                                  "top": [{"text": c.text, "logprob": c.logprob} for c in self.top]}
        if self.token_id is not None:
            out["id"] = self.token_id
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TokenLogprob:
        """Inverse of :meth:`to_json`."""
        top = data.get("top") or []
        assert isinstance(top, list)
        token_id = data.get("id")
        return cls(str(data["text"]), float(data["logprob"]),  # type: ignore[arg-type]
                   tuple(TokenChoice(str(c["text"]), float(c["logprob"])) for c in top),
                   int(token_id) if isinstance(token_id, int) else None)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of generated text; ``tokens`` are its tokens with their log-probabilities when
    the request asked for them (``GenerationParams.logprobs``)."""

    text: str
    tokens: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should know about this answer that is not an error (e.g. the server
    does not give probabilities); the answer goes on."""

    message: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of a thinking model's reasoning (``reasoning_content`` / ``reasoning``),
    streamed before (or between) the answer's :class:`TextDelta` s; never part of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A streamed piece of a tool call: the first piece of call ``index`` has its ``id`` and
    ``name``, later ones a piece of its JSON ``arguments`` (split anywhere). Whole calls are
    built once, by :class:`app.core.tools.ToolCallAccumulator`; such a stream finishes with
    ``Finished("tool_calls")``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Progress:
    """Model loading or conversion progress. ``fraction`` is 0..1, or None when unknown."""

    phase: str
    fraction: float | None = None
    message: str = ""
    eta_s: float | None = None
    """Seconds left, as the provider estimates them (None: unknown)."""


@dataclass(frozen=True, slots=True)
class Retrying:
    """The request failed before any text and will be sent again after ``delay_s`` seconds
    (``attempt`` is the attempt that failed), reported when the wait starts and about once a
    second while it lasts. ``rate_limited``: the server said 429, so the
    scheduler holds back other requests to the same endpoint too."""

    attempt: int
    delay_s: float
    message: str
    """What to show, e.g. ``OpenAI: rate limited; retrying in 12 s (attempt 2 of 3)``."""
    rate_limited: bool = False
    seconds_left: float | None = None
    """The countdown: the wait left now (a wait is reported about once a second)."""


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Token usage of one generation. ``estimated`` is True when counted locally."""

    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Finished:
    """The stream ended. ``reason``: stop, length, cancelled, stop_sequence, ..."""

    reason: str


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | Progress | Retrying | Notice | UsageReport | Finished
