"""The deterministic, scriptable mock provider (tests and demos).

Model names (``mock:<name>[?opt=value&...]``):

- ``echo``: answers with the last user message.
- ``fixed?text=...``: answers with the given text.
- ``lorem?n=200``: ``n`` deterministic words (the seed picks the words).
- ``markdown``: a short Markdown answer with a list and a code block (the demo).
- ``tokens?n=10000``: ``n`` tokens as fast as possible.
- ``tools[?call=NAME&parallel=N&steps=K&args=TEXT]``: calls the offered tools (see
  :mod:`app.providers.mock_tools`), then answers with text quoting their results.
- any model accepts ``rate=<tokens per second>``, ``delay=<seconds before the first token>``,
  ``fail=before|mid``, ``fail_after=<tokens>``, ``error=rate_limit|unreachable|server|auth``,
  ``think=<tokens>``: that many reasoning tokens (``ReasoningDelta``) before the answer, as a
  thinking model streams them (at ``rate``; they count as completion tokens and against
  ``max_tokens``, so ``think=50`` with ``max_tokens=10`` ends with "length" and no answer),
  ``stop_s=<seconds>``: when stopped mid-way, block that long cleaning up (as a local model
  does while it frees memory), so that a second Ctrl+C lands during the clean-up.

Tests can also script answers with :meth:`MockProvider.enqueue`.
A mock token is one whitespace-separated word (with its leading space); counts are exact.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from app.core.errors import (
    AuthError,
    InvalidParams,
    NoSuchModel,
    ProviderError,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Unreachable,
)
from app.core.events import (
    Finished,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TokenChoice,
    TokenLogprob,
    ToolCallDelta,
    UsageReport,
)
from app.core.provider import ProviderContext
from app.core.types import ChatMessage, GenerationRequest, ModelInfo, ModelRef, TokenCount
from app.providers.mock_tools import planned_calls, results_text

MOCK_MODELS = ("echo", "fixed", "lorem", "markdown", "tokens", "tools")
_WORDS = (
    "alpha beta gamma delta model token stream latency cost adapter prompt answer "
    "context window sample seed rank scale layer cache vector tensor"
).split()
DEMO_MARKDOWN = """Here is a **quick answer** with a list and some code:

1. Tokens stream as they arrive.
2. Cost and speed show per message.

```python
def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
```

Ask me anything else!"""

_TOKEN_RE = re.compile(r"\s*\S+|\s+$")


def split_tokens(text: str) -> list[str]:
    """Split text into mock tokens (a word with its leading whitespace)."""
    return _TOKEN_RE.findall(text)


def count_mock_tokens(text: str) -> int:
    """Mock token count of ``text``."""
    return len(text.split())


@dataclass(frozen=True)
class MockScript:
    """A scripted answer for :meth:`MockProvider.enqueue`."""

    text: str
    rate: float | None = None
    fail_after: int | None = None
    error: str = "server"


def _error(kind: str, message: str) -> ProviderError:
    if kind == "rate_limit":
        return RateLimited(message, retry_after=1.0)
    if kind == "unreachable":
        return Unreachable(message)
    if kind == "auth":
        return AuthError(message)
    return ServerError(message)


class MockProvider:
    """Deterministic provider with scriptable speed and faults."""

    id = "mock"

    def __init__(self, context: ProviderContext | None = None) -> None:
        self.context = context
        self._queue: deque[MockScript] = deque()
        self.requests: list[GenerationRequest] = []

    def enqueue(self, items: Iterable[str | MockScript]) -> None:
        """Queue answers; each request takes the next one before falling back to its model."""
        for item in items:
            self._queue.append(item if isinstance(item, MockScript) else MockScript(item))

    async def list_models(self) -> list[ModelInfo]:
        """The built-in mock models."""
        return [self.model_info(name) for name in MOCK_MODELS]

    def model_info(self, model: str) -> ModelInfo:
        """Info for ``model`` (options after ``?`` are allowed)."""
        base, _ = _parse(model)
        if base not in MOCK_MODELS:
            raise NoSuchModel(f"There is no mock model '{base}'.", hint="Use one of: " + ", ".join(MOCK_MODELS) + ".")
        return ModelInfo(
            ref=ModelRef("mock", model),
            display_name=f"Mock: {base}",
            context_length=1_000_000,
            is_local=True,
            supports_adapters=False,
            state="ready",
            description="Deterministic test model (free).",
            tokenizer="mock-words",
        )

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        """Words in all messages plus 3 per message (a fixed chat overhead)."""
        n = sum(count_mock_tokens(m.content) + 3 for m in messages)
        return TokenCount(n, exact=True, method="mock-words")

    def _answer(self, request: GenerationRequest) -> tuple[str, dict[str, str], MockScript | None]:
        base, opts = _parse(request.model.name)
        if base not in MOCK_MODELS:
            self.model_info(request.model.name)
        script = self._queue.popleft() if self._queue else None
        if script is not None:
            return script.text, opts, script
        if base == "echo":
            users = [m.content for m in request.messages if m.role == "user"]
            return (users[-1] if users else ""), opts, None
        if base == "fixed":
            return opts.get("text", "OK"), opts, None
        if base == "markdown":
            return DEMO_MARKDOWN, opts, None
        if base == "tools":
            return results_text(request), opts, None
        n = int(opts.get("n", "200" if base == "lorem" else "1000"))
        if base == "tokens":
            return "".join(f" tok{i}" for i in range(n)).lstrip(), opts, None
        rng = random.Random(request.params.seed if request.params.seed is not None else 0)
        return " ".join(rng.choice(_WORDS) for _ in range(n)), opts, None

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Stream the answer token by token, honouring rate, delay, stop, max_tokens and faults."""
        try:
            stop_s = float(_parse(request.model.name)[1].get("stop_s") or 0)
        except ValueError as exc:
            raise InvalidParams(f"Bad mock option in '{request.model.name}': {exc}") from exc
        ended = False
        try:
            async for event in self._stream(request):
                yield event
            ended = True
        finally:
            if stop_s and not ended:
                import time

                time.sleep(stop_s)  # a synchronous clean-up, like freeing a local model

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        request.params.validated()
        self.requests.append(request)
        text, opts, script = self._answer(request)
        try:
            rate = float(script.rate if script and script.rate else opts.get("rate", 0) or 0)
            delay = float(opts.get("delay", 0) or 0)
            fail = opts.get("fail")
            fail_after = int(script.fail_after if script and script.fail_after is not None else opts.get("fail_after", 3))
            think = int(opts.get("think", 0) or 0)
        except ValueError as exc:
            raise InvalidParams(f"Bad mock option in '{request.model.name}': {exc}") from exc
        kind = script.error if script else opts.get("error", "server")
        if script and script.fail_after is not None:
            fail = "mid" if script.fail_after > 0 else "before"
        if delay:
            await asyncio.sleep(delay)
        if fail == "before":
            raise _error(kind, "Mock failure before the first token.")
        if script is None and _parse(request.model.name)[0] == "tools" and (calls := planned_calls(request, opts)):
            for call in calls:  # the arguments in two pieces, as a server streams them
                cut = len(call.arguments) // 2
                yield ToolCallDelta(call.index, call.id, call.name, call.arguments[:cut])
                yield ToolCallDelta(call.index, arguments=call.arguments[cut:])
            prompt = self.count_tokens(request.model.name, list(request.messages)).tokens
            yield UsageReport(prompt, sum(count_mock_tokens(c.arguments) + 1 for c in calls))
            yield Finished("tool_calls")
            return
        tokens = split_tokens(text)
        if tokens and request.prefix and not request.prefix[-1].isspace():
            tokens[0] = " " + tokens[0]  # a continuation of the given start
        lens = request.params.logprobs
        limit = request.params.max_tokens
        reason = "stop"
        sent: list[str] = []
        words: int | None = 0  # counted as they go (a token holds one word, or whitespace only):
        # counting the whole answer at its end took ~9 ms at 80k tokens (None: counted at the end)
        interval = 1.0 / rate if rate > 0 else 0.0
        loop = asyncio.get_running_loop()
        start = loop.time()
        thought = min(max(0, think), limit) if limit is not None else max(0, think)
        for j in range(thought):
            yield ReasoningDelta(f"{' ' if j else ''}{_WORDS[j % len(_WORDS)]}")
            if interval:
                wait = start + (j + 1) * interval - loop.time()
                await asyncio.sleep(max(0.0, wait))
            elif j % 64 == 63:
                await asyncio.sleep(0)
        start += thought * interval
        if limit is not None:
            limit -= thought
        for i, tok in enumerate(tokens):
            if fail == "mid" and i == fail_after:
                raise StreamInterrupted("Mock stream cut mid-way.", partial_text="".join(sent))
            if limit is not None and i >= limit:
                reason = "length"
                break
            hit = None
            if request.params.stop:  # joining only when needed keeps long streams linear
                candidate = "".join(sent) + tok
                hit = next((s for s in request.params.stop if s in candidate), None)
            if hit is not None:
                cut = candidate.index(hit)
                rest = candidate[len("".join(sent)) : cut]
                if rest:
                    sent.append(rest)
                    yield TextDelta(rest)
                reason, words = "stop", None  # a piece of a token: counted at the end
                break
            sent.append(tok)
            if words is not None and not tok.isspace():
                words += 1
            yield TextDelta(tok, mock_logprobs(tok, i, lens)) if lens is not None else TextDelta(tok)
            if interval:
                wait = start + (i + 1) * interval - loop.time()
                await asyncio.sleep(max(0.0, wait))
            elif i % 64 == 63:
                await asyncio.sleep(0)
        prompt = self.count_tokens(request.model.name, list(request.messages)).tokens
        yield UsageReport(prompt_tokens=prompt, completion_tokens=thought + (count_mock_tokens("".join(sent)) if words is None else words))
        yield Finished(reason)

    async def aclose(self) -> None:
        """Nothing to release."""


def mock_logprobs(token: str, index: int, top: int) -> tuple[TokenLogprob]:
    """The mock's deterministic log-probabilities (a proper distribution): the chosen token is
    always the most likely (p 0.8 down to 0.5), alternative k gets half of what k-1 left."""
    step = index % 4
    logprob = math.log(_chosen_p(step))
    chosen = (TokenChoice(token, logprob),)
    return (TokenLogprob(token, logprob, (chosen + _alternatives(step, top))[:top]),)


def _chosen_p(step: int) -> float:
    """The chosen token's probability at ``step`` (0-3): 0.8 down to 0.5."""
    return 0.8 - 0.1 * step


@functools.cache
def _alternatives(step: int, top: int) -> tuple[TokenChoice, ...]:
    """The alternatives after the chosen token (the same for every token of a step: built once,
    so a long stream's cost is the provider's, not the mock's own bookkeeping)."""
    p = _chosen_p(step)
    return tuple(TokenChoice(f" alt{k}", math.log((1 - p) * 0.5**k)) for k in range(1, top))


def _parse(model: str) -> tuple[str, dict[str, str]]:
    base, _, query = model.partition("?")
    return base.strip(), dict(parse_qsl(query, keep_blank_values=True))
