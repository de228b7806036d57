"""What the token lens needs from in-process models: each generated token's log-probability
and top alternatives from the logits of the same step (:class:`LogprobRecorder`), and scoring
given tokens under the loaded model (with or without adapters) in one forward pass - e.g. an
adapter's answer under the base model, to show which tokens the adapter changed. Runs on the
model worker thread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.events import TokenChoice, TokenLogprob
from app.core.tools import ToolSpec
from app.core.types import ChatMessage
from app.providers.local_prompt import request_ids


def score_tokens(model: Any, tokenizer: Any, messages: Sequence[ChatMessage], prefix: str,
                 token_ids: Sequence[int], fast: Any = None, tools: Sequence[ToolSpec] = ()) -> list[float]:
    """The log-probability of each of ``token_ids`` as the continuation of the chat prompt
    (and ``prefix``, the answer's given start), in one forward pass (on ``fast``, the lean
    decode step, when the answer was made there: the same numbers as while generating)."""
    import torch

    if not token_ids:
        return []
    prompt = request_ids(tokenizer, messages, prefix, tools)
    with torch.inference_mode():
        if fast is not None:
            logits = fast.all_logits(torch.tensor(prompt + list(token_ids), dtype=torch.long))
            logits = logits.reshape(-1, logits.shape[-1])[len(prompt) - 1 : -1].float()
        else:
            device = next(model.parameters()).device
            ids = torch.tensor([prompt + list(token_ids)], device=device)
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    chosen = torch.tensor(list(token_ids), device=logits.device).unsqueeze(1)
    return [float(x) for x in torch.log_softmax(logits, dim=-1).gather(1, chosen).squeeze(1).tolist()]


class LogprobRecorder:
    """Per-token log-probabilities of a local generation, from the logits of the same decoding
    step (no extra forward pass): :meth:`observe` the step's logits, then :meth:`take` the
    token that was chosen. ``top`` alternatives come from most to least likely."""

    def __init__(self, tokenizer: Any, top: int) -> None:
        self.tokenizer = tokenizer
        self.top = top
        self._pending: tuple[Any, Any, Any] | None = None

    def observe(self, logits: Any) -> None:
        """The step's logits (1-D over the vocabulary, or [1, vocab])."""
        import torch

        row = logits.reshape(-1).float()
        logp = torch.log_softmax(row, dim=-1)
        k = max(1, self.top)
        values, ids = torch.topk(logp, k)
        self._pending = (logp, values, ids)

    def take(self, token_id: int) -> TokenLogprob | None:
        """The chosen token's log-probability and the step's alternatives (text filled later)."""
        if self._pending is None:
            return None
        logp, values, ids = self._pending
        self._pending = None
        alternatives = tuple(
            TokenChoice(str(self.tokenizer.decode([int(i)], skip_special_tokens=False)), float(v))
            for v, i in zip(values.tolist(), ids.tolist(), strict=True)
        )[: self.top]
        return TokenLogprob("", float(logp[int(token_id)]), alternatives, int(token_id))


def processor(recorder: LogprobRecorder) -> Any:
    """A transformers logits processor that shows each step's scores to ``recorder``."""
    from transformers import LogitsProcessor

    class _Record(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            recorder.observe(scores[0])
            return scores

    return _Record()
