"""The engine runs one generation through a provider and owns what every provider shares:
parameter validation, timing (time to first token, tokens/s), usage, cost and the ledger.

Used through the run scheduler by the CLI, the ``LLMModel`` facade and the window alike. The
values it works with live in :mod:`app.core.generation` (re-exported here).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Protocol

from app.core.errors import AppError, ConfigError, StreamInterrupted, redact
from app.core.events import (
    Finished,
    Notice,
    Progress,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from app.core.generation import EventCallback, Generation, GenerationResult, LiveStats
from app.core.provider import Provider, ProviderRegistry
from app.core.settings import EndpointConfig, env_base_url
from app.core.types import ChatMessage, GenerationRecord, GenerationRequest, ModelRef, adapter_label
from app.core.urls import clean_url
from app.core.usage import RowFigures, RowProgress

__all__ = ["Engine", "EventCallback", "Generation", "GenerationResult", "LiveStats"]


class PriceLookup(Protocol):
    """What the engine needs from the price table."""

    def cost(self, model: ModelRef, usage: UsageReport, endpoint: EndpointConfig | None = None) -> Decimal | None:
        """Exact USD cost at ``endpoint`` (None: OpenAI's own), 0 when free, None when unknown."""
        ...


class LedgerSink(Protocol):
    """What the engine needs from the usage ledger (:class:`app.core.usage.UsageLedger`):
    a row opened when a request starts, updated while it streams, closed when it ends.
    None of these raise."""

    def open(self, rec: GenerationRecord) -> int | None:
        """Open a "running" row; its id, or None when it cannot be written now."""
        ...

    def progress(self, row_id: int | None, figures: RowFigures) -> None:
        """Update a running row with what has arrived so far."""
        ...

    def close(self, row_id: int | None, rec: GenerationRecord) -> None:
        """Write the final record into the row (a new row when ``row_id`` is None)."""
        ...


class Engine:
    """Runs generations; records every one (finished, failed or cancelled) in the ledger."""

    def __init__(self, registry: ProviderRegistry, prices: PriceLookup, ledger: LedgerSink | None = None) -> None:
        self.registry = registry
        self.prices = prices
        self.ledger = ledger

    async def run(  # fmt: skip
        self, request: GenerationRequest, on_event: EventCallback | None = None, *,
        conversation_id: str | None = None, generation: Generation | None = None, tag: str | None = None,
    ) -> GenerationResult:
        """Stream ``request``; call ``on_event`` for each event; return the result.

        Errors propagate as :class:`AppError` (a failure after some text raises
        :class:`StreamInterrupted` carrying ``partial_text``); cancellation propagates too.
        Either way a ledger record is written: its row is opened before the request is sent
        and updated while it streams (so a killed process leaves what had arrived), tagged
        with ``tag`` (the run's tag, e.g. a Workbench run's id: the ledger's ``run_id``; not
        the scheduler's run id). Pass ``generation`` to read the text while it
        streams (and after a cancellation).
        """
        request.params.validated()
        if request.model.caps.endpoints and request.endpoint is None:
            env_base_url()  # a malformed OPENAI_BASE_URL: ConfigError before any row or request
        provider = self.registry.get(request.model.provider)
        gen = generation if generation is not None else Generation(request)
        stats, parts, thoughts = gen.stats, gen.parts, gen.thoughts
        row_id, live = self._open_row(gen, provider, conversation_id, tag)
        error: BaseException | None = None
        prefix = request.prefix  # the given start of the answer: shown with the first token, not timed
        stream: AsyncIterator[StreamEvent] = provider.stream(request)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    text = event.text
                    if not text:
                        if event.tokens:  # tokens without characters (an end-of-text token)
                            gen.tokens.extend(event.tokens)
                        continue
                    if prefix:
                        parts.append(prefix)
                        if on_event is not None:
                            on_event(TextDelta(prefix), stats)
                        prefix = ""
                    stats.add_answer(text)
                    parts.append(text)
                    if event.tokens:
                        gen.tokens.extend(event.tokens)
                elif isinstance(event, ReasoningDelta):
                    text = event.text
                    if not text:
                        continue
                    stats.add_reasoning(text)
                    thoughts.append(text)
                elif isinstance(event, Progress):
                    # a model load is shown apart: time to first token counts from its end
                    now = time.perf_counter()
                    gen.load_s = now - stats.created
                    stats.started = now
                elif isinstance(event, ToolCallDelta):
                    stats.first_token_at = stats.arrived(stats.first_token_at)  # a calls-only answer starts with its first call
                    gen.calls.add(event.index, event.id, event.name, event.arguments)
                elif isinstance(event, Notice):
                    gen.notices.append(event.message)
                elif isinstance(event, UsageReport):
                    gen.usage = event
                elif isinstance(event, Finished):
                    gen.reason = event.reason
                if on_event is not None:
                    on_event(event, stats)
                if live is not None:  # after the caller has shown it: the ledger is not in the way
                    live.tick()
        except asyncio.CancelledError as exc:
            error, gen.reason = exc, "cancelled"
            raise
        except StreamInterrupted as exc:
            error, gen.reason = exc, "error"
            if not exc.partial_text:
                exc.partial_text = gen.text
            raise
        except AppError as exc:
            error, gen.reason = exc, "error"
            if parts:
                raise StreamInterrupted(exc.message, hint=exc.hint, partial_text=gen.text) from exc
            raise
        except Exception as exc:  # a provider bug must not leave the caller stuck
            error, gen.reason = exc, "error"
            raise StreamInterrupted(
                f"The generation failed unexpectedly: {type(exc).__name__}: {exc}",
                partial_text=gen.text,
            ) from exc
        finally:
            if live is not None:
                live.cancel()
            if error is not None and isinstance(stream, AsyncGenerator):  # close it now, not at GC
                try:
                    await asyncio.shield(stream.aclose())
                except (Exception, asyncio.CancelledError):
                    pass
            result = self._finish(gen, provider, conversation_id, error, row_id, tag)
            failure = sys.exc_info()[1]  # the error on its way out (StreamInterrupted wraps ``error``)
            if isinstance(failure, AppError):
                failure.result = result  # its usage and cost, as the ledger has them
        return result

    def _finish(
        self,
        gen: Generation,
        provider: Provider,
        conversation_id: str | None,
        error: BaseException | None,
        row_id: int | None,
        tag: str | None,
    ) -> GenerationResult:
        request, stats = gen.request, gen.stats
        end = time.perf_counter()
        text = gen.text
        usage = gen.usage
        if usage is None:
            if isinstance(error, AppError) and not isinstance(error, StreamInterrupted) and not text:
                # refused or unreachable before any output (no key, 401, 429, 5xx, bad model):
                # nothing was processed, so nothing is counted or charged
                usage = UsageReport(0, 0, estimated=True)
            else:
                usage = self._estimate_usage(request, provider, text[len(request.prefix):])
        cost = self.cost(request.model, usage, request.endpoint)
        tps = stats.tokens_per_s(usage.completion_tokens, now=stats.decode_end(end)) if usage.completion_tokens else None
        err_text = None
        if error is not None and not isinstance(error, asyncio.CancelledError):
            err_text = redact(str(error))
        rec = GenerationRecord(
            started_at=time.time() - (end - stats.created),
            provider=request.model.provider,
            model=request.model.name,
            endpoint=clean_url(request.endpoint),
            adapter=adapter_label(request.adapters),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_prompt_tokens=usage.cached_prompt_tokens,
            estimated=usage.estimated,
            cost_usd=None if cost is None else str(cost),
            ttft_s=stats.ttft_s,
            duration_s=end - stats.created,
            tokens_per_s=tps,
            finish_reason=gen.reason,
            conversation_id=conversation_id,
            error=err_text,
            run_id=tag,
        )
        gen.record = rec
        if self.ledger is not None:
            self.ledger.close(row_id, rec)
        return GenerationResult(
            request=request,
            text=text,
            usage=usage,
            cost_usd=cost,
            ttft_s=stats.ttft_s,
            duration_s=rec.duration_s,
            tokens_per_s=tps,
            finish_reason=gen.reason,
            record=rec,
            record_id=row_id,
            reasoning=gen.reasoning,
            load_s=gen.load_s,
            reasoning_tokens=stats.reasoning_chunks,
            tokens=gen.tokens,  # the compact tape itself: no 7 objects a token at the end
            notices=tuple(gen.notices),
            tool_calls=gen.calls.calls(),
        )

    def record_unsent(self, request: GenerationRequest, reason: str, *, conversation_id: str | None = None,
                      tag: str | None = None) -> None:
        """Record a request that was never sent (e.g. cancelled while it waited for its lane):
        0 tokens, no cost, so every run of the scheduler has its ledger row."""
        if self.ledger is None:
            return
        rec = _empty_record(request, reason, conversation_id, tag)
        self.ledger.close(None, replace(rec, estimated=False, cost_usd="0", error="not sent"))

    def _open_row(
        self, gen: Generation, provider: Provider, conversation_id: str | None, tag: str | None
    ) -> tuple[int | None, RowProgress | None]:
        """Open the request's ledger row ("running") and its throttled progress updates:
        tokens so far (chunks, an estimate), the prompt counted locally (once), the cost."""
        if self.ledger is None:
            return None, None
        request, stats = gen.request, gen.stats
        row_id = self.ledger.open(_empty_record(request, "running", conversation_id, tag))
        if row_id is None:
            return None, None
        def figures() -> RowFigures:
            now = time.perf_counter()
            cost = self.live_cost(gen)
            return RowFigures(stats.chunks + stats.reasoning_chunks, self.prompt_estimate(gen),
                              None if cost is None else str(cost), now - stats.created, stats.ttft_s,
                              stats.tokens_per_s(stats.chunks + stats.reasoning_chunks, now))

        return row_id, RowProgress(self.ledger, row_id, figures)

    def prompt_estimate(self, gen: Generation) -> int:
        """The prompt's tokens of ``gen``'s request counted locally, once per generation (0 when
        its provider cannot count now): the live figures' and the ledger's running rows'."""
        if gen.prompt_estimate is None:
            request = gen.request
            try:
                provider = self.registry.get(request.model.provider)
                gen.prompt_estimate = provider.count_tokens(request.model.name, list(request.messages)).tokens
            except Exception:  # counting is best effort for a live figure
                gen.prompt_estimate = 0
        return gen.prompt_estimate

    def live_cost(self, gen: Generation) -> Decimal | None:
        """The estimated cost of ``gen`` so far: its prompt counted locally, each streamed
        chunk (answer or reasoning: reasoning is billed as completion) one token."""
        stats = gen.stats
        return self.estimate_cost(gen.request.model, gen.request.endpoint, self.prompt_estimate(gen),
                                  stats.chunks + stats.reasoning_chunks)

    def estimate_cost(self, model: ModelRef, endpoint: str | None, prompt_tokens: int,
                      completion_tokens: int) -> Decimal | None:
        """The cost of counts that are estimates (a live figure, the window's before-sending
        estimate); None when the price is unknown."""
        return self.cost(model, UsageReport(prompt_tokens, completion_tokens, estimated=True), endpoint)

    def cost(self, model: ModelRef, usage: UsageReport, endpoint: str | None = None) -> Decimal | None:
        """Exact USD cost of ``usage`` on ``model`` at ``endpoint`` (a settings endpoint name,
        a base URL, or None for the default); None when the price is unknown. The pricing
        rules live in :meth:`app.core.pricing.PriceTable.cost`; the UI's live and
        before-sending estimates use this too."""
        return self.prices.cost(model, usage, self.endpoint_config(model, endpoint))

    def endpoint_config(self, model: ModelRef, endpoint: str | None) -> EndpointConfig | None:
        """Where an ``openai:`` request with ``endpoint`` goes (None for other providers, and
        for a name the settings do not know: the request itself will say so)."""
        if not model.caps.endpoints or endpoint is None:
            return None
        try:
            return self.registry.context.settings.resolve_endpoint(endpoint)
        except ConfigError:
            return None

    @staticmethod
    def _estimate_usage(request: GenerationRequest, provider: Provider, text: str) -> UsageReport:
        """Usage counted locally (labelled estimated) when the provider sent none."""
        count = provider.count_tokens
        prompt = count(request.model.name, list(request.messages))
        completion = count(request.model.name, [ChatMessage("assistant", text)]) if text else None
        comp_tokens = 0
        if completion is not None:
            # count_tokens includes per-message overhead; remove the overhead of one empty message
            empty = count(request.model.name, [ChatMessage("assistant", "")]).tokens
            comp_tokens = max(0, completion.tokens - empty)
        return UsageReport(prompt.tokens, comp_tokens, estimated=True)


def _empty_record(request: GenerationRequest, reason: str, conversation_id: str | None,
                  tag: str | None) -> GenerationRecord:
    """A ledger record of ``request`` with nothing received yet (tokens 0, cost unknown)."""
    return GenerationRecord(
        started_at=time.time(), provider=request.model.provider, model=request.model.name,
        endpoint=clean_url(request.endpoint), adapter=adapter_label(request.adapters), prompt_tokens=0,
        completion_tokens=0, cached_prompt_tokens=0, estimated=True, cost_usd=None, ttft_s=None,
        duration_s=0.0, tokens_per_s=None, finish_reason=reason, conversation_id=conversation_id, run_id=tag,
    )  # fmt: skip
