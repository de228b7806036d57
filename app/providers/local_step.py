"""The lean decode step's layer loop as one function that TorchScript compiles.

One decoded token makes ~35 small tensor calls a layer (SmolLM2: ~1,000 a token). From Python
each call also costs the interpreter's time between them. :func:`decode_layers` scripted with
``torch.jit.script`` runs the same calls from TorchScript's interpreter: 8.0 vs 9.6 ms a token
for SmolLM2 on this 2-core machine (median of 10 alternating blocks of 64 steps in one process),
with bit-identical logits.

``torch.jit`` is deprecated in favour of ``torch.compile``, which made this step slower here
(18 ms with inductor against 11 eager; docs/benchmarks.md). So :func:`scripted` falls back to
this same function run as Python when scripting fails (a frozen app without its sources, a
torch without TorchScript), and a test checks that both give the same logits.

The code keeps to what TorchScript compiles: typed lists and ``Optional``, a NamedTuple of
per-layer lists (:class:`StepPlan`), no closures. TorchScript reads the annotations' and calls'
names from this module's globals, so :func:`ensure_torch` puts torch there before anything
runs (importing the module loads no heavy library). Worker thread only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F

log = logging.getLogger(__name__)


def ensure_torch() -> None:
    """Import torch into this module's globals (``torch``, ``F``), once."""
    if "torch" not in globals():
        import torch
        import torch.nn.functional

        globals().update(torch=torch, F=torch.nn.functional)

INT4, INT8 = 4, 8  # StepPlan.kinds (TorchScript cannot read module globals: project() writes 8)


class StepPlan(NamedTuple):
    """What :func:`decode_layers` needs of each layer, as flat lists (``None``: the layer has
    none). The projections are four a layer, in the order qkv, o, gate_up, down."""

    in_norms: list[torch.Tensor]
    post_norms: list[torch.Tensor]
    attn_out_norms: list[Optional[torch.Tensor]]  # noqa: UP045 (TorchScript reads Optional)
    mlp_out_norms: list[Optional[torch.Tensor]]  # noqa: UP045
    qk_norms: list[Optional[torch.Tensor]]  # noqa: UP045
    windows: list[int]  # a sliding window's size; 0: none
    ropes: list[int]  # the index of the layer's RoPE table
    kinds: list[int]  # INT4 or INT8, per projection
    qweights: list[torch.Tensor]
    qscales: list[torch.Tensor]
    biases: list[Optional[torch.Tensor]]  # noqa: UP045
    lora_a: list[Optional[torch.Tensor]]  # noqa: UP045 ([K, R]: the unmerged LoRA's y += (x @ a) @ b)
    lora_b: list[Optional[torch.Tensor]]  # noqa: UP045


class StepShape(NamedTuple):
    """The model's sizes and settings the step needs."""

    heads: int
    kv_heads: int
    head_dim: int
    group_size: int  # int4 groups
    gqa: bool
    gelu: bool  # the MLP's activation: GELU (tanh) instead of SiLU
    scale: Optional[float]  # noqa: UP045 (SDPA's scale; None: head_dim ** -0.5)


def rms(h: torch.Tensor, weight: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """RMSNorm of the float32 stream, float32.

    ``weight`` is pre-scaled by sqrt(size) and ``floor`` is sqrt(size * eps), so ``hypot``
    adds the model's epsilon exactly (leaving it out moved SmolLM2's logits by up to 0.4
    and flipped near-ties).
    """
    return torch.div(h, torch.hypot(torch.linalg.vector_norm(h, dim=-1, keepdim=True), floor)).mul_(weight)


def project(x: torch.Tensor, plan: StepPlan, index: int, group_size: int) -> torch.Tensor:
    """``x @ W.T`` of packed projection ``index``, plus its bias and its unmerged LoRA."""
    if plan.kinds[index] == 8:  # INT8
        y = torch._weight_int8pack_mm(x, plan.qweights[index], plan.qscales[index])
    else:
        y = torch._weight_int4pack_mm_for_cpu(x, plan.qweights[index], group_size, plan.qscales[index])
    bias = plan.biases[index]
    if bias is not None:
        y = y + bias
    a = plan.lora_a[index]
    b = plan.lora_b[index]
    if a is not None and b is not None:
        y = y + x.mm(a).mm(b)  # not addmm: scripted, it rounds otherwise than from Python
    return y


def add_out(h: torch.Tensor, y: torch.Tensor, norm: Optional[torch.Tensor], floor: torch.Tensor) -> None:  # noqa: UP045
    """``h += y``, or ``h += rms_norm(y)`` with a weight (Gemma's output norms)."""
    if norm is None:
        h.add_(y)
    else:
        h.add_(rms(y.float(), norm, floor))


def decode_layers(h: torch.Tensor, pos: int, cos: list[torch.Tensor], sin: list[torch.Tensor],
                  k_layers: list[torch.Tensor], v_layers: list[torch.Tensor], plan: StepPlan, shape: StepShape,
                  floor: torch.Tensor, qk_floor: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Run one token's float32 hidden state ``h`` [1, hidden] at position ``pos`` through every
    layer (``h`` is updated in place and returned); each layer's K and V go into its cache at
    ``pos``. ``cos`` / ``sin``: each RoPE table's row for ``pos``, shaped [1, 2, head_dim / 2]."""
    nh, nkv, hd = shape.heads, shape.kv_heads, shape.head_dim
    nq, nk = nh * hd, nkv * hd
    end = pos + 1
    for i in range(len(k_layers)):
        p = 4 * i
        qkv = project(rms(h, plan.in_norms[i], floor).to(torch.bfloat16), plan, p, shape.group_size)
        qkv = qkv.float().view(-1)
        qk = qkv[: nq + nk]
        qk_norm = plan.qk_norms[i]
        if qk_norm is not None:
            qk = rms(qk.view(nh + nkv, hd), qk_norm, qk_floor)
        qk = qk.view(nh + nkv, 2, hd // 2)
        rope = plan.ropes[i]
        torch.addcmul(qk * cos[rope], qk.flip(1), sin[rope], out=qk)  # RoPE in place: flip swaps the halves
        qk = qk.view(nh + nkv, hd)
        k_cache, v_cache = k_layers[i], v_layers[i]
        k_cache[:, pos].copy_(qk[nh:])
        v_cache[:, pos].copy_(qkv[nq + nk :].view(nkv, hd))
        window = plan.windows[i]
        lo = 0 if window == 0 else max(0, end - window)
        attn = F.scaled_dot_product_attention(qk[:nh].view(1, nh, 1, hd), k_cache[:, lo:end].unsqueeze(0),
                                              v_cache[:, lo:end].unsqueeze(0), enable_gqa=shape.gqa,
                                              scale=shape.scale)  # fmt: skip
        out = project(attn.view(1, nq).to(torch.bfloat16), plan, p + 1, shape.group_size)
        add_out(h, out, plan.attn_out_norms[i], floor)
        gu = project(rms(h, plan.post_norms[i], floor).to(torch.bfloat16), plan, p + 2, shape.group_size)
        half = gu.shape[-1] // 2
        gate, up = gu[:, :half], gu[:, half:]
        act = F.gelu(gate, approximate="tanh") if shape.gelu else F.silu(gate)
        add_out(h, project(act.mul_(up), plan, p + 3, shape.group_size), plan.mlp_out_norms[i], floor)
    return h


DecodeLayers = Callable[..., Any]
_SCRIPTED: list[DecodeLayers] = []


def scripted() -> DecodeLayers:
    """:func:`decode_layers` compiled by TorchScript (once a process), or as Python when that
    fails (said once in the log)."""
    ensure_torch()
    if not _SCRIPTED:
        try:
            with warnings.catch_warnings():  # torch.jit's deprecation notice (see the module doc)
                warnings.simplefilter("ignore", DeprecationWarning)
                _SCRIPTED.append(torch.jit.script(decode_layers))
        except Exception as exc:  # noqa: BLE001 - the Python function computes the same
            log.warning("the decode step runs as Python (TorchScript could not compile it: %s)", exc)
            _SCRIPTED.append(decode_layers)
    return _SCRIPTED[0]
