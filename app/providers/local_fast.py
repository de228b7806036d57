"""A lean decode step for quantized Llama-style models on the CPU (the fast path).

The architectures it runs (Llama, Mistral, Qwen2/3, Gemma 3, Phi-3) and how their layers
differ are the table in :mod:`app.providers.local_arch`.

``generate`` in transformers spends several milliseconds per token around the model
(cache objects, masks, logits processors, per-module hooks); with weight-only int8/int4
matrices a token's matrix work is ~8 ms here, so that overhead halves the speed. This
module runs the same model with a static KV cache and one call per fused projection:

- per layer: RMSNorm, fused q/k/v, (q/k norms), RoPE on q and k together, cache write, SDPA
  (GQA; a sliding window reads only its own rows of the cache), o, (norm), residual, RMSNorm,
  fused gate/up, SiLU or GELU, down, (norm), residual;
- LoRA adapters loaded by peft on the quantized model run unmerged, as two small matrix
  products per fused projection (:mod:`app.providers.local_fast_lora`);
- logits only for the last position.

The one-token step's layer loop is :mod:`app.providers.local_step` (one TorchScript
function); the generation loop around the decoder (prefix reuse, sampling, streaming) is
:mod:`app.providers.local_fast_generate`.

:class:`FastDecoder` shares the packed weights of the quantized transformers model (it
owns no copy); it refuses models or adapters it cannot run exactly (``supported``), and
the caller then uses ``model.generate``. Worker thread only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.providers.local_arch import (
    LLAMA,
    arch_of,
    config_reason,
    layer_rope_types,
    layer_windows,
)
from app.providers.local_fast_lora import LoraPlan, lora_plans
from app.providers.local_prefix_cache import ALIGN
from app.providers.local_quant import GROUP_SIZE, QuantizedModel, qmm
from app.providers.local_step import (
    INT4,
    INT8,
    StepPlan,
    StepShape,
    add_out,
    ensure_torch,
    project,
    rms,
    scripted,
)

log = logging.getLogger(__name__)

CACHE_STEP = 256
REFINE = 64  # top logits recomputed in float32 (see FastDecoder._logits)
BLOCK = 64  # the head's top-k looks at the best blocks of BLOCK logits first (see top_indices)
STEP_PROJECTIONS = ("qkv", "o", "gate_up", "down")  # a layer's packed projections, in StepPlan's order
# RoPE, the KV cache and attention run in float32 (torch.float32 below): torch's CPU SDPA is 6-9x slower on bf16
# inputs than on float32 ones for one query row (measured: 230 vs 39 us a layer at 200
# positions, 5.3 vs 0.57 ms at 4,000), which outweighs reading a cache twice the size.


@dataclass
class _Layer:
    in_norm: Any
    post_norm: Any  # the MLP's input norm
    packs: dict[str, Any]
    lora: dict[str, LoraPlan]
    attn_out_norm: Any = None  # Gemma's norm of the attention output
    mlp_out_norm: Any = None  # Gemma's norm of the MLP output
    qk_norm: Any = None  # [q heads + kv heads, head_dim]: per-head RMSNorm weights of q and k
    window: int | None = None  # a sliding window: the keys q - window < k <= q
    rope: int = 0  # index of its RoPE table


def top_indices(logits: Any, k: int) -> Any:
    """The indices [rows, k] of each row's ``k`` largest logits (ties in any order).

    For one row of a large vocabulary, the ``k`` blocks of ``BLOCK`` logits with the largest
    maxima hold a top ``k`` (a block left out has ``k`` larger maxima above its own), so
    ``topk`` runs on those ``k * BLOCK`` values only. torch's ``topk`` over SmolLM2's whole
    row took 0.1-0.45 ms a token, depending on the order of the values (1.2 ms when they
    rise along the row); this takes ~0.04 ms.
    """
    rows, vocab = logits.shape
    if rows != 1 or vocab % BLOCK or vocab < 4 * k * BLOCK:
        return logits.topk(k, dim=-1).indices
    blocks = logits.view(-1, BLOCK)
    best = blocks.amax(1).topk(k, sorted=False).indices
    inner = blocks.index_select(0, best).view(-1).topk(k, sorted=False).indices
    block = best.index_select(0, inner.div(BLOCK, rounding_mode="floor"))
    return block.mul_(BLOCK).add_(inner.remainder(BLOCK)).unsqueeze(0)


def unsupported_reason(model: Any, quantized: QuantizedModel | None) -> str | None:
    """Why the lean step cannot run ``model`` (None when it can)."""
    config = getattr(model, "config", None)
    if quantized is None or config is None:
        return "not quantized"
    reason = config_reason(config)
    if reason is not None:
        return reason
    if quantized.lm_head is None:
        return "lm_head not quantized"
    return None


class FastDecoder:
    """The lean decode step over a quantized model (see the module docstring)."""

    def __init__(self, model: Any, quantized: QuantizedModel) -> None:
        import torch
        import torch.nn.functional as F

        self.model = model
        self.quantized = quantized
        cfg = model.config
        self.arch = arch = arch_of(cfg) or LLAMA
        self.hidden = int(cfg.hidden_size)
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or self.hidden // self.heads)
        self.eps = float(cfg.rms_norm_eps)
        # RMSNorm: h * rsqrt(mean(h^2) + eps) * w == h / hypot(|h|, sqrt(hidden * eps)) * (w * sqrt(hidden))
        self.norm_floor = torch.tensor((self.hidden * self.eps) ** 0.5)
        self.qk_floor = torch.tensor((self.head_dim * self.eps) ** 0.5)
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 2048) or 2048)
        inner = model.model
        self.embed = inner.embed_tokens.weight
        # Gemma: embeddings times sqrt(hidden) rounded to the weights' dtype, as its embedding module does
        self.embed_scale = inner.embed_tokens.embed_scale.to(self.embed.dtype) if arch.embed_scale else None
        self.final_norm = self._scaled(inner.norm.weight)
        self.rotary = inner.rotary_emb
        n = len(inner.layers)
        rope_types = layer_rope_types(cfg, n)
        self.rope_types = sorted(set(rope_types), key=str)  # one cos/sin table each
        windows = layer_windows(cfg, n)
        self.layers = [self._layer(layer, packs, windows[i], self.rope_types.index(rope_types[i]))
                       for i, (layer, packs) in enumerate(zip(inner.layers, quantized.layers, strict=True))]
        scalar = getattr(cfg, arch.query_scalar_key, None) if arch.query_scalar_key else None
        self.scale = float(scalar) ** -0.5 if scalar else None  # SDPA's scale (None: head_dim ** -0.5)
        self.softcap = float(getattr(cfg, "final_logit_softcapping", None) or 0.0)
        act = str(getattr(cfg, arch.act_key, None) or "silu")
        self.act: Callable[[Any], Any] = F.silu if act == "silu" else functools.partial(F.gelu, approximate="tanh")
        self.head = quantized.lm_head
        self.head_rows = self.embed if quantized.head_tied else quantized.head_rows
        self.capacity = 0
        self.k_cache: Any = None
        self.v_cache: Any = None
        self.cos: list[Any] = []  # per RoPE table: [cap, 1, head_dim]
        self.sin: list[Any] = []
        self.cos_halves: list[Any] = []  # the same as [cap, 1, 2, head_dim / 2]
        self.sin_halves: list[Any] = []
        self.k_layers: list[Any] = []
        self.v_layers: list[Any] = []
        self._capture: list[Any] | None = None
        self._lora_key: tuple[Any, ...] | None = None
        self.lora_reason: str | None = None
        self.kv_key: Any = None  # what the KV depends on now (set by the runtime: adapters, scales)
        self.seq: list[int] = []  # the tokens whose KV rows the static cache holds (-1: unknown)
        self.seq_key: Any = None  # the kv_key those rows were computed under
        self.tail: tuple[int, Any] | None = None  # (end, logits) of the last exact prefill: the same prompt again
        self.saved: Any = None  # the last prefill's tail set aside by the idle warm-up (SavedTail)
        self.shape = StepShape(self.heads, self.kv_heads, self.head_dim, GROUP_SIZE, self.kv_heads != self.heads,
                               act != "silu", self.scale)  # fmt: skip
        self.plan = self._make_plan()
        self._decode_layers = scripted()
        self.exact = 0  # rows 0..exact hold a cold prefill's exact KV (whole ALIGN chunks; see _attend)
        self.dtype = torch.bfloat16

    def _scaled(self, weight: Any, size: int | None = None) -> Any:
        """A norm weight (plus the architecture's offset) times sqrt(size), float32: rms(h) = |h| / sqrt(size)."""
        return (weight.detach().float() + self.arch.norm_offset) * ((size or self.hidden) ** 0.5)

    def _layer(self, layer: Any, packs: dict[str, Any], window: int | None, rope: int) -> _Layer:
        """The lean step's view of decoder ``layer`` (its norms; ``packs``: its packed weights)."""
        import torch

        sandwich = self.arch.sandwich
        mlp_in = layer.pre_feedforward_layernorm if sandwich else layer.post_attention_layernorm
        out = _Layer(self._scaled(layer.input_layernorm.weight), self._scaled(mlp_in.weight), packs, {},
                     window=window, rope=rope)  # fmt: skip
        if sandwich:
            out.attn_out_norm = self._scaled(layer.post_attention_layernorm.weight)
            out.mlp_out_norm = self._scaled(layer.post_feedforward_layernorm.weight)
        if self.arch.qk_norm:
            attn, hd = layer.self_attn, self.head_dim
            q = self._scaled(attn.q_norm.weight, hd).expand(self.heads, hd)
            k = self._scaled(attn.k_norm.weight, hd).expand(self.kv_heads, hd)
            out.qk_norm = torch.cat([q, k]).contiguous()
        return out

    # --- LoRA ----------------------------------------------------------------------------
    def refresh_lora(self) -> None:
        """Read the active LoRA adapters from the model's peft layers (cheap when unchanged)."""
        key, plans, reason = lora_plans(self.model, self.dtype)
        if key == self._lora_key:
            return
        self._lora_key = key
        self.lora_reason = reason
        for i, layer in enumerate(self.layers):
            layer.lora = plans.get(i, {})
        self.plan = self._make_plan()

    def _make_plan(self) -> StepPlan:
        """The one-token step's view of the layers (the prefill projects through it too)."""
        plan = StepPlan([], [], [], [], [], [], [], [], [], [], [], [], [])
        for layer in self.layers:
            plan.in_norms.append(layer.in_norm)
            plan.post_norms.append(layer.post_norm)
            plan.attn_out_norms.append(layer.attn_out_norm)
            plan.mlp_out_norms.append(layer.mlp_out_norm)
            plan.qk_norms.append(layer.qk_norm)
            plan.windows.append(layer.window or 0)
            plan.ropes.append(layer.rope)
            for name in STEP_PROJECTIONS:
                packed, lora = layer.packs[name], layer.lora.get(name)
                plan.kinds.append(INT8 if packed.kind == "int8" else INT4)
                plan.qweights.append(packed.qweight)
                plan.qscales.append(packed.qscale)
                plan.biases.append(packed.bias)
                plan.lora_a.append(None if lora is None else lora.a)
                plan.lora_b.append(None if lora is None else lora.b)
        return plan

    @property
    def ready(self) -> bool:
        """True when the current adapters can run on the lean step."""
        self.refresh_lora()
        return self.lora_reason is None

    # --- cache -----------------------------------------------------------------------------
    def _ensure_capacity(self, needed: int) -> None:
        import torch

        if needed <= self.capacity:
            return
        cap = max(needed, min(self.max_positions, ((needed + CACHE_STEP - 1) // CACHE_STEP) * CACHE_STEP))
        n = len(self.layers)
        k_cache = torch.zeros(n, self.kv_heads, cap, self.head_dim, dtype=torch.float32)
        v_cache = torch.zeros(n, self.kv_heads, cap, self.head_dim, dtype=torch.float32)
        if self.capacity:  # growing mid-generation: keep what is cached
            k_cache[:, :, : self.capacity].copy_(self.k_cache)
            v_cache[:, :, : self.capacity].copy_(self.v_cache)
        self.k_cache, self.v_cache = k_cache, v_cache
        pos = torch.arange(cap).unsqueeze(0)
        half = self.head_dim // 2
        x = torch.zeros(1, dtype=self.dtype)
        self.cos, self.sin = [], []
        for kind in self.rope_types:
            cos, sin = self.rotary(x, pos) if kind is None else self.rotary(x, pos, kind)
            sin = sin[0].float()
            self.cos.append(cos[0].float().unsqueeze(1))  # [cap, 1, head_dim]
            self.sin.append(torch.cat([-sin[:, :half], sin[:, half:]], dim=-1).unsqueeze(1))  # rotate_half's signs
        self.cos_halves = [c.view(cap, 1, 2, half) for c in self.cos]  # the one-token step's shapes (see _step)
        self.sin_halves = [s.view(cap, 1, 2, half) for s in self.sin]
        self.k_layers = list(self.k_cache.unbind(0))
        self.v_layers = list(self.v_cache.unbind(0))
        self.capacity = cap

    def reserve(self, positions: int) -> None:
        """Make room in the static cache for ``positions`` tokens (before a generation)."""
        self._ensure_capacity(positions)

    # --- the step ----------------------------------------------------------------------------
    def forward(self, ids: Any, pos: int) -> Any:
        """Run tokens ``ids`` (1-D) at positions ``pos..``; return the last position's logits (float)."""
        import torch

        m = int(ids.shape[0])
        self._ensure_capacity(pos + m)
        self._forget_from(pos)
        if m == 1 and self._capture is None:
            logits = self._step(ids, pos)
            self.seq.append(int(ids[0]))
            return logits
        end = pos + m
        h = self._embed(ids)  # the residual stream stays float32
        tables = [(c[pos:end], s[pos:end]) for c, s in zip(self.cos, self.sin, strict=True)]
        nh, nkv, hd = self.heads, self.kv_heads, self.head_dim
        nq, nk = nh * hd, nkv * hd
        half = hd // 2
        floor = self.norm_floor
        norm = self._norm
        plan = self.plan  # the projections as the one-token step runs them (4 a layer, STEP_PROJECTIONS)
        for i, layer in enumerate(self.layers):
            p = 4 * i
            qkv = project(norm(h, layer.in_norm, floor), plan, p, GROUP_SIZE).float()
            qk = qkv[:, : nq + nk].view(m, nh + nkv, hd)
            if layer.qk_norm is not None:
                qk = self._rms(qk, layer.qk_norm, self.qk_floor)
            cos, sin = tables[layer.rope]
            qk = torch.addcmul(qk * cos, qk.roll(half, -1), sin)
            k_cache, v_cache = self.k_cache[i], self.v_cache[i]
            k_cache[:, pos:end].copy_(qk[:, nh:].transpose(0, 1))
            v_cache[:, pos:end].copy_(qkv[:, nq + nk :].view(m, nkv, hd).transpose(0, 1))
            q = qk[:, :nh].transpose(0, 1).unsqueeze(0)
            attn = self._attend(q, k_cache, v_cache, pos, end, layer.window)
            self._add(h, project(attn[0].transpose(0, 1).reshape(m, nq).to(self.dtype), plan, p + 1, GROUP_SIZE),
                      layer.attn_out_norm)  # fmt: skip
            gu: Any = project(norm(h, layer.post_norm, floor), plan, p + 2, GROUP_SIZE)
            gate, up = gu.split(gu.shape[-1] // 2, dim=-1)
            self._add(h, project(self.act(gate).mul_(up), plan, p + 3, GROUP_SIZE), layer.mlp_out_norm)
        self.seq.extend(ids.tolist())
        exact = pos == self.exact  # every row from 0 as a cold prefill computes it
        if exact:
            self.exact = end - end % ALIGN
        if self._capture is not None:
            self._capture.append(h)
        logits = self._logits(h[-1:])[0]
        self.tail = (end, logits.clone()) if exact else None
        return logits

    def _embed(self, ids: Any) -> Any:
        """The float32 embeddings of ``ids`` (scaled as the model's embedding module does)."""
        rows = self.embed.index_select(0, ids)
        return (rows if self.embed_scale is None else rows * self.embed_scale).float()

    def _add(self, h: Any, y: Any, norm: Any) -> None:
        """``h += y``, or ``h += rms_norm(y)`` with a weight (Gemma's output norms)."""
        ensure_torch()
        add_out(h, y, norm, self.norm_floor)

    def _attend(self, q: Any, k_cache: Any, v_cache: Any, pos: int, end: int, window: int | None = None) -> Any:
        """Attention of the query rows ``pos..end`` (``q``: [1, heads, rows, dim]), in chunks at
        multiples of ``ALIGN``, each over the keys up to its own end (with a sliding ``window``,
        from the window's start for the chunk's first row).

        torch's SDPA gives a row slightly different bits depending on how many rows and keys
        it is called with. A chunk ``[j*ALIGN, (j+1)*ALIGN)`` is always computed alike, so its
        rows' KV equals a cold prefill's bit for bit: prefix reuse keeps answers identical by
        reusing only such rows (``exact``)."""
        import torch
        import torch.nn.functional as F

        gqa = self.kv_heads != self.heads
        parts = []
        start = pos
        while start < end:
            chunk = start - start % ALIGN
            stop = min(end, chunk + ALIGN)
            lo = 0 if window is None else max(0, chunk - window + 1)  # a chunk's keys depend on the chunk alone
            mask = torch.ones(stop - start, stop - lo, dtype=torch.bool).tril(diagonal=start - lo)
            if window is not None:  # rows r see keys r - window < k <= r
                mask &= ~torch.ones_like(mask).tril(diagonal=start - lo - window)
            parts.append(F.scaled_dot_product_attention(
                q[:, :, start - pos : stop - pos], k_cache[:, lo:stop].unsqueeze(0), v_cache[:, lo:stop].unsqueeze(0),
                attn_mask=mask, enable_gqa=gqa, scale=self.scale))  # fmt: skip
            start = stop
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)

    def _forget_from(self, pos: int) -> None:
        """Rows from ``pos`` on are about to be written: drop them from ``seq`` (and all of it
        when the KV state changed since it was written); ``exact`` ends at a chunk start."""
        seq = self.seq
        if self.seq_key != self.kv_key:
            seq.clear()
            self.seq_key = self.kv_key
            self.exact = 0
            self.tail = None
        self.exact = min(self.exact, pos - pos % ALIGN)
        if self.tail is not None and pos < self.tail[0]:
            self.tail = None
        if len(seq) > pos:
            del seq[pos:]
        elif len(seq) < pos:
            seq.extend([-1] * (pos - len(seq)))

    def _step(self, ids: Any, pos: int) -> Any:
        """One decode token (``forward`` with one id): the same arithmetic in fewer tensor calls,
        all the layers in one call of :func:`~app.providers.local_step.decode_layers` (compiled
        by TorchScript; see that module).

        At SmolLM2's size a call costs ~1.5-3 us whatever it computes, and a layer made ~75 of
        them; this one makes ~35 (no roll, no slicing of per-token tables, RoPE written in place,
        the cache written at one position through per-layer views). Attention stays the prefill's
        SDPA: a token decoded here and the same token prefilled (a branch, ``--assistant-prefix``)
        then score alike.
        """
        h = self._embed(ids)
        cos = [c[pos] for c in self.cos_halves]  # [1, 2, head_dim / 2] each
        sin = [s[pos] for s in self.sin_halves]
        self._decode_layers(h, pos, cos, sin, self.k_layers, self.v_layers, self.plan, self.shape,
                            self.norm_floor, self.qk_floor)  # fmt: skip
        return self._logits(h)[0]

    def _logits(self, h: Any) -> Any:
        """float32 logits [rows, vocab] of the final hidden states ``h`` (float32).

        The head is an int4 draft (17.7 MB per token for SmolLM2's 49152 x 576, against
        57 MB in bf16); its top ``REFINE`` logits per row are recomputed in float32 from the
        bf16 rows, so the candidates that matter (the argmax, nearly all of the softmax's
        mass) are exact, and the bf16 output's 0.125 steps at |logit| ~ 25 do not tie close
        candidates (SmolLM2's "The" / "L'" for the capital of France).
        """
        import torch

        head = self.head
        assert head is not None
        normed = self._rms(h, self.final_norm, self.norm_floor)
        logits = qmm(head.kind, normed.to(torch.bfloat16), head.qweight, head.qscale).float()
        if head.bias is not None:
            logits += head.bias.float()
        if REFINE and (head.kind == "int8" or self.head_rows is not None):
            top = top_indices(logits, min(REFINE, logits.shape[-1]))  # [rows, k]
            if head.kind == "int8":
                rows = head.qweight[top.reshape(-1)].float().view(*top.shape, -1)  # [rows, k, hidden]
                exact = torch.bmm(rows, normed.unsqueeze(-1)).squeeze(-1) * head.qscale[top].float()
            else:  # an int4 draft: the exact rows are bf16
                rows = self.head_rows.index_select(0, top.reshape(-1)).float().view(*top.shape, -1)
                exact = torch.bmm(rows, normed.unsqueeze(-1)).squeeze(-1)
            if head.bias is not None:
                exact += head.bias[top].float()
            logits.scatter_(1, top, exact)
        if self.softcap:  # Gemma's final softcapping: tanh(x / c) * c (monotonic: the top stays the top)
            logits = torch.tanh(logits.div_(self.softcap)).mul_(self.softcap)
        return logits

    def all_logits(self, ids: Any) -> Any:
        """Logits at every position of ``ids`` (1-D), from position 0: for perplexity."""
        import torch

        hidden: list[Any] = []
        self._capture = hidden
        try:
            self.forward(ids, 0)
        finally:
            self._capture = None
        return self._logits(hidden[0]) if hidden else torch.empty(0)

    @staticmethod
    def _rms(h: Any, weight: Any, floor: Any) -> Any:
        """RMSNorm of the float32 stream, float32 (:func:`app.providers.local_step.rms`;
        ``weight`` is pre-scaled by sqrt(hidden), see _scaled)."""
        ensure_torch()
        return rms(h, weight, floor)

    @classmethod
    def _norm(cls, h: Any, weight: Any, floor: Any) -> Any:
        """:meth:`_rms` into bf16, the input of a projection."""
        import torch

        return cls._rms(h, weight, floor).to(torch.bfloat16)
