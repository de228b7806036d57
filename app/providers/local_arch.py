"""Architecture traits of the lean CPU decode step (:mod:`app.providers.local_fast`).

The lean step runs one decoder-layer recipe; each architecture it takes is one :class:`Arch`
entry in :data:`ARCHES` saying how its layers differ from Llama's:

- ``fused``: which checkpoint projections make each fused buffer (Phi-3 stores q/k/v and
  gate/up fused already);
- ``norm_offset``: RMSNorm multiplies by ``offset + w`` (Gemma's ``1 + w``);
- ``qk_norm``: an RMSNorm over each query and key head before RoPE (Qwen3, Gemma 3);
- ``sandwich``: norms after attention and around the MLP (Gemma 3's post-attention,
  pre- and post-feedforward norms) instead of Llama's one norm before the MLP;
- ``embed_scale``: embeddings times sqrt(hidden), rounded to the weights' dtype (Gemma);
- ``rope_per_layer_type``: sliding and full-attention layers have their own RoPE (Gemma 3);
- ``act_key`` / ``query_scalar_key``: the config keys of the MLP activation and of the
  attention scale ``query_pre_attn_scalar ** -0.5`` (else ``head_dim ** -0.5``).

Sliding-window layers come from the config (``layer_types`` with ``sliding_window``, or one
window for every layer as Mistral and Phi-3 set it): see :func:`layer_windows`.

:func:`config_reason` says why a config cannot run on the lean step; it reads a transformers
config or a ``config.json`` (as a namespace) alike, so the model picker can say it before a
load (:func:`folder_reason`). No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

FusedLayout = dict[str, tuple[tuple[str, tuple[str, ...]], ...]]
"""Per module group of a decoder layer: (fused name, member projections) in order."""

LLAMA_FUSED: FusedLayout = {
    "self_attn": (("qkv", ("q_proj", "k_proj", "v_proj")), ("o", ("o_proj",))),
    "mlp": (("gate_up", ("gate_proj", "up_proj")), ("down", ("down_proj",))),
}
PHI3_FUSED: FusedLayout = {
    "self_attn": (("qkv", ("qkv_proj",)), ("o", ("o_proj",))),
    "mlp": (("gate_up", ("gate_up_proj",)), ("down", ("down_proj",))),
}
ACTIVATIONS = ("silu", "gelu_pytorch_tanh")
SUPPORTED_ROPE = ("default", "linear", "llama3")
"""RoPE types whose tables do not change with the sequence length (not dynamic, longrope)."""


@dataclass(frozen=True)
class Arch:
    """How one architecture's decoder layer differs from Llama's (see the module docstring)."""

    fused: FusedLayout
    norm_offset: float = 0.0
    qk_norm: bool = False
    sandwich: bool = False
    embed_scale: bool = False
    rope_per_layer_type: bool = False
    act_key: str = "hidden_act"
    query_scalar_key: str | None = None


LLAMA = Arch(LLAMA_FUSED)
ARCHES: dict[str, Arch] = {
    "llama": LLAMA,
    "mistral": LLAMA,
    "qwen2": LLAMA,
    "qwen3": Arch(LLAMA_FUSED, qk_norm=True),
    "gemma3_text": Arch(LLAMA_FUSED, norm_offset=1.0, qk_norm=True, sandwich=True, embed_scale=True,
                        rope_per_layer_type=True, act_key="hidden_activation",
                        query_scalar_key="query_pre_attn_scalar"),  # fmt: skip
    "phi3": Arch(PHI3_FUSED),
}
"""The model types the lean step runs (``config.model_type``)."""


def arch_of(config: Any) -> Arch | None:
    """The traits of ``config``'s model type, or None when the lean step does not know it."""
    return ARCHES.get(str(getattr(config, "model_type", "")))


def fused_layout(model: Any) -> FusedLayout:
    """The fused projections of ``model``'s decoder layers (Llama's for unknown types)."""
    arch = arch_of(getattr(model, "config", None))
    return arch.fused if arch is not None else LLAMA_FUSED


def config_reason(config: Any) -> str | None:
    """Why the lean step cannot run a model with ``config`` (None when the config allows it)."""
    model_type = getattr(config, "model_type", None)
    arch = ARCHES.get(str(model_type))
    if arch is None:
        known = ", ".join(sorted(ARCHES))
        return f"model type {model_type!r} (the fast path runs {known})"
    act = getattr(config, arch.act_key, None) or "silu"
    if act not in ACTIVATIONS:
        return f"activation {act!r}"
    for rope in _rope_dicts(config):
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind not in SUPPORTED_ROPE:
            return f"rope type {kind!r}"
        if float(rope.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
            return "partial rotary embeddings"
    if float(getattr(config, "partial_rotary_factor", 1.0) or 1.0) != 1.0:
        return "partial rotary embeddings"
    if getattr(config, "attn_logit_softcapping", None):
        return "attention logit softcapping"
    if getattr(config, "use_bidirectional_attention", False):
        return "bidirectional attention"
    return None


def folder_reason(folder: str | Path) -> str | None:
    """:func:`config_reason` of the ``config.json`` in ``folder`` (None when it cannot be read)."""
    try:
        data = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config_reason(SimpleNamespace(**data)) if isinstance(data, dict) else None


def _rope_dicts(config: Any) -> list[dict[str, Any]]:
    """The RoPE settings of ``config``: one dict, or one per layer type (Gemma 3)."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if not isinstance(rope, dict):
        return []
    nested = [v for v in rope.values() if isinstance(v, dict)]
    return nested if nested and len(nested) == len(rope) else [rope]


def layer_windows(config: Any, layers: int) -> list[int | None]:
    """Each layer's sliding window (keys ``q - w < k <= q``), None for full attention.

    With ``layer_types`` only its ``sliding_attention`` layers slide (Qwen2/3, Gemma 3);
    without it the config's ``sliding_window`` applies to every layer (Mistral, Phi-3)."""
    window = getattr(config, "sliding_window", None)
    window = int(window) if window else None
    types = getattr(config, "layer_types", None)
    if not types:
        return [window] * layers
    return [window if types[i] == "sliding_attention" else None for i in range(layers)]


def layer_rope_types(config: Any, layers: int) -> list[str | None]:
    """The RoPE table each layer uses: its layer type where RoPE is per type, else None."""
    arch = arch_of(config)
    types = getattr(config, "layer_types", None)
    if arch is None or not arch.rope_per_layer_type or not types:
        return [None] * layers
    return [str(types[i]) for i in range(layers)]
