"""Generation on the lean decode step: prompt, prefix reuse, sampling and streaming.

The loop around :class:`~app.providers.local_fast.FastDecoder` with the same contract as
:func:`app.providers.local_generation.generate` (transformers' ``generate`` on the slow path).
Worker thread only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from app.core.tools import ToolSpec
from app.core.types import ChatMessage, GenerationParams
from app.providers.local_fast import FastDecoder
from app.providers.local_generation import CancelFlag, Emit, finish_reason, prepare
from app.providers.local_prefix_cache import PrefixCache, resume_fast
from app.providers.local_threads import ThreadTuner


def fast_generate(  # fmt: skip
    decoder: FastDecoder, tokenizer: Any, messages: Sequence[ChatMessage], params: GenerationParams, emit: Emit,
    flag: CancelFlag, context_length: int | None, eos_ids: set[int], tuner: ThreadTuner | None = None,
    prefix: str = "", tools: Sequence[ToolSpec] = (), constraint: Any = None, cache: PrefixCache | None = None,
) -> tuple[int, int, str]:
    """Generate on the lean step; the same contract as :func:`local_generation.generate`.

    With a ``tuner`` the thread count is chosen per step (see :class:`ThreadTuner`); with a
    ``constraint`` each step's logits are masked to the grammar before sampling (the token
    lens records them before the mask); with a ``cache`` the longest kept prefix of the
    prompt is reused (``flag.stats.cached_tokens``) and only the rest is prefilled.
    """
    import torch

    job = prepare(tokenizer, messages, params, emit, flag, context_length or decoder.max_positions, prefix, tools)
    ids, max_new, streamer = job.ids, job.max_new, job.streamer
    recorder = streamer.recorder
    processors = _processors(params)
    sample = params.temperature > 0
    if params.seed is not None:
        torch.manual_seed(params.seed)
    history = torch.tensor([ids], dtype=torch.long)
    generated: list[int] = []
    decoder.reserve(len(ids) + max_new)
    streamer.put(history)
    if tuner is not None:
        torch.set_num_threads(tuner.start())
    with torch.inference_mode():
        start, logits = resume_fast(decoder, cache, ids)
        flag.stats.cached_tokens = start
        if logits is None:
            logits = decoder.forward(history[0, start:], start)
        pos = len(ids)
        step = 0
        while len(generated) < max_new:
            if flag.is_set() or streamer.stopped:
                break
            if recorder is not None:  # the model's own probabilities at this step
                recorder.observe(logits)
            scores = logits.unsqueeze(0)
            if constraint is not None:
                constraint.mask(scores)
            if processors:
                scores = processors(history, scores)
            if sample:
                token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1)[0, 0])
            else:
                token = int(scores[0].argmax())
            generated.append(token)
            if constraint is not None:
                constraint.advance(token)
            streamer.put(torch.tensor([token]))
            if token in eos_ids or len(generated) >= max_new:
                break
            if processors:
                history = torch.cat([history, torch.tensor([[token]])], dim=1)
            if tuner is None:
                logits = decoder.forward(torch.tensor([token]), pos)
            else:
                threads = tuner.threads_for(step)
                torch.set_num_threads(threads)
                started = time.perf_counter()
                logits = decoder.forward(torch.tensor([token]), pos)
                tuner.record(step, threads, time.perf_counter() - started)
            pos += 1
            step += 1
    streamer.end()
    flag.stats.sequence = [*ids, *generated]
    return len(ids), len(generated), finish_reason(streamer, flag, generated, eos_ids, max_new)


def _processors(params: GenerationParams) -> Any:
    """transformers' logits processors for the request (None for plain greedy)."""
    from transformers import LogitsProcessorList
    from transformers.generation.logits_process import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    procs = LogitsProcessorList()
    if params.repetition_penalty is not None and params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature > 0:
        if params.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            procs.append(TopKLogitsWarper(params.top_k))
        if params.top_p is not None and params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
    return procs or None
