"""Weight-only quantization of a loaded model's linear layers for fast CPU inference.

Two variants, picked by measurement (benchmarks/bench_local.py):

- ``int8``: every linear layer as int8 per output channel (symmetric), run by
  ``torch.ops.aten._weight_int8pack_mm`` with bf16 activations;
- ``int4``: every linear layer as int4 in groups of 32 along the input (asymmetric, the
  tinygemm layout: ``(q - 8) * scale + zero``) run by ``aten._weight_int4pack_mm_for_cpu``.
  A Q4_1 GGUF (blocks of 32, scale + minimum) maps onto this grid with its own codes, up to
  bf16's rounding of the f16 scales (the zero is fitted to make up for it), so the bundled
  model keeps the weights llama.cpp runs; the CPU default;
- ``int4-qkv8``: int8 q/k/v, int4 elsewhere.
  Per weight, the int8 kernel streams ~2x slower than the int4 one here (30 layers of q/k/v:
  int4 1.6 ms, int8 3.2 ms, bf16 6 ms), so int8 goes only where it is needed.

``lm_head`` is int4 in all of them, used as a draft: the lean step recomputes its top
logits in float32 from the bf16 rows (see ``FastDecoder._logits``).

The quantized layers are :func:`quant_linear_class` modules (a ``torch.nn.Linear``
subclass, so peft can wrap them with LoRA adapters). The q/k/v and gate/up projections of
a decoder layer share one fused buffer (their rows), which the lean decode step
(:mod:`app.providers.local_fast`) multiplies in one call. The packed tensors can be saved
into one safetensors file and loaded back without the source weights (the quantized cache).

torch is imported inside the functions (importing this module stays cheap).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.providers.local_arch import fused_layout

log = logging.getLogger(__name__)

VARIANTS = ("int8", "int4", "int4-qkv8")
# the packing of each fused projection per variant (lm_head: see quantize_model)
KINDS = {
    "int8": {"qkv": "int8", "o": "int8", "gate_up": "int8", "down": "int8"},
    "int4": {"qkv": "int4", "o": "int4", "gate_up": "int4", "down": "int4"},
    "int4-qkv8": {"qkv": "int8", "o": "int4", "gate_up": "int4", "down": "int4"},
}
FORMAT_VERSION = 3  # 3: int4 zeros fitted by least squares
GROUP_SIZE = 32


@functools.cache
def quant_linear_class() -> type:
    """The quantized linear module class (built on first use, when torch is imported)."""
    import torch

    class QuantLinear(torch.nn.Linear):
        """A linear layer whose weight is int8 (per row) or int4 (groups of 32), bf16 activations.

        ``qweight``/``qscale`` may be row slices of a buffer shared with sibling layers.
        """

        def __init__(self, in_features: int, out_features: int, kind: str, qweight: Any, qscale: Any,
                     bias: Any = None, group_size: int = GROUP_SIZE) -> None:
            torch.nn.Module.__init__(self)
            self.in_features = in_features
            self.out_features = out_features
            self.kind = kind
            self.group_size = group_size
            self.register_buffer("qweight", qweight, persistent=False)
            self.register_buffer("qscale", qscale, persistent=False)
            self.register_parameter("bias", None if bias is None else torch.nn.Parameter(bias, requires_grad=False))

        @property
        def weight(self) -> Any:  # type: ignore[override]
            """The dequantized weight (bf16): for code that inspects weights, never for forward."""
            return dequantize(self.kind, self.qweight, self.qscale, self.in_features, self.group_size)

        def forward(self, x: Any) -> Any:
            shape = x.shape
            y = qmm(self.kind, x.reshape(-1, shape[-1]).to(torch.bfloat16), self.qweight, self.qscale, self.group_size)
            if self.bias is not None:
                y = y + self.bias
            return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, {self.kind}"

    return QuantLinear


def qmm(kind: str, x: Any, qweight: Any, qscale: Any, group_size: int = GROUP_SIZE) -> Any:
    """``x @ W.T`` for a 2-D bf16 ``x`` and a packed weight."""
    import torch

    if kind == "int8":
        return torch._weight_int8pack_mm(x, qweight, qscale)
    return torch._weight_int4pack_mm_for_cpu(x, qweight, group_size, qscale)


def quantize_int8(w: Any) -> tuple[Any, Any]:
    """Symmetric int8 per output row: (int8 [N, K], bf16 scales [N])."""
    import torch

    w = w.float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12).to(torch.bfloat16)
    q = torch.round(w / scale.float()[:, None]).clamp(-128, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def _int4_grid(w: Any, group_size: int = GROUP_SIZE, fit_zero: bool = True) -> tuple[Any, Any, Any]:
    """(q 0..15 [N, K/g, g], bf16 scale, bf16 zero [N, K/g]): ``w ~ (q - 8) * scale + zero``.

    The codes and the scale come from each group's min/max; the zero is then the least-squares
    one for those codes and the bf16 scale (the mean residual), rounded to bf16. bf16 cannot
    hold a Q4_1 GGUF's f16 scales, and the min/max zero ``lo + 8 * scale`` then piles the
    scale's rounding onto the top codes; the fitted zero centres it. On the bundled GGUF this
    cuts the mean weight error 2.6x (0.00092 -> 0.00035 on layer 0's q_proj, 0.00060 -> 0.00025
    on layer 10's down_proj; bf16 rounding of the weights themselves: 0.00021).
    """
    import torch

    n, k = w.shape
    g = w.float().reshape(n, k // group_size, group_size)
    lo, hi = g.amin(dim=-1), g.amax(dim=-1)
    scale = ((hi - lo) / 15.0).clamp(min=1e-12).to(torch.bfloat16)
    zero = (lo + 8.0 * scale.float()).to(torch.bfloat16)
    q = torch.round((g - zero.float()[..., None]) / scale.float()[..., None] + 8.0).clamp(0, 15)
    if fit_zero:
        zero = (g - (q - 8.0) * scale.float()[..., None]).mean(dim=-1).to(torch.bfloat16)
    return q, scale, zero


def quantize_int4(w: Any, group_size: int = GROUP_SIZE) -> tuple[Any, Any]:
    """Asymmetric int4 in groups of ``group_size`` (min/max grid): (packed uint8, bf16 [K/g, N, 2])."""
    import torch

    n, k = w.shape
    q, scale, zero = _int4_grid(w, group_size)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.reshape(n, k).to(torch.int32).contiguous(), 1)
    scales_zeros = torch.stack([scale, zero], dim=-1).transpose(0, 1).contiguous()
    return packed, scales_zeros


def fake_quantize(kind: str, w: Any) -> Any:
    """The float32 weight that ``kind`` quantization of ``w`` stands for (exact; for tests)."""
    if kind == "int8":
        q, scale = quantize_int8(w)
        return q.float() * scale.float()[:, None]
    q, scale, zero = _int4_grid(w)
    return ((q - 8.0) * scale.float()[..., None] + zero.float()[..., None]).reshape(w.shape)


def dequantize(kind: str, qweight: Any, qscale: Any, in_features: int, group_size: int = GROUP_SIZE) -> Any:
    """The bf16 weight [N, K] a packed weight stands for (tests and inspection)."""
    import torch

    if kind == "int8":
        return (qweight.float() * qscale.float()[:, None]).to(torch.bfloat16)
    eye = torch.eye(in_features, dtype=torch.bfloat16)
    return qmm(kind, eye, qweight, qscale, group_size).t().contiguous()


def can_int4(splits: tuple[int, ...], in_features: int) -> bool:
    """The int4 CPU kernel needs rows in multiples of 16 and whole groups; its packing
    interleaves blocks of 64 rows, so fused members must start on a multiple of 64."""
    starts = [sum(splits[:i]) for i in range(1, len(splits))]
    return sum(splits) % 16 == 0 and in_features % GROUP_SIZE == 0 and all(s % 64 == 0 for s in starts)


@dataclass
class Packed:
    """One packed weight (possibly the fused rows of several projections)."""

    kind: str
    qweight: Any
    qscale: Any
    in_features: int
    splits: tuple[int, ...]  # rows of each member, in order
    bias: Any = None

    def rows(self, index: int) -> tuple[Any, Any, Any]:
        """(qweight, qscale, bias) of member ``index`` (views where the layout allows)."""
        start = sum(self.splits[:index])
        stop = start + self.splits[index]
        qw = self.qweight[start:stop]
        qs = self.qscale[start:stop] if self.kind == "int8" else self.qscale[:, start:stop].contiguous()
        bias = None if self.bias is None else self.bias[start:stop]
        return qw, qs, bias


def pack(kind: str, weights: list[Any], biases: list[Any | None]) -> Packed:
    """Quantize ``weights`` (same in_features) into one fused :class:`Packed`."""
    import torch

    w = torch.cat([t.detach().float() for t in weights], dim=0)
    splits = tuple(int(t.shape[0]) for t in weights)
    if kind == "int4" and not can_int4(splits, int(w.shape[1])):
        kind = "int8"
    qw, qs = quantize_int8(w) if kind == "int8" else quantize_int4(w)
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat([(b.detach() if b is not None else torch.zeros(t.shape[0])).to(torch.bfloat16)
                          for b, t in zip(biases, weights, strict=True)])
    return Packed(kind, qw, qs, int(w.shape[1]), splits, bias)


def decoder_layers(model: Any) -> list[Any] | None:
    """The decoder layers of a Llama-style model (``model.model.layers``, with the projections
    of its :func:`~app.providers.local_arch.fused_layout`), else None."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        return None
    layout = fused_layout(model)
    for layer in layers:
        for group, fused in layout.items():
            parent = getattr(layer, group, None)
            if parent is None or any(not hasattr(parent, m) for _, members in fused for m in members):
                return None
    return list(layers)


@dataclass
class QuantizedModel:
    """What :func:`quantize_model` made: the fused buffers per layer and lm_head."""

    variant: str
    layers: list[dict[str, Packed]]
    lm_head: Packed | None
    head_rows: Any = None  # bf16 [vocab, hidden] rows of an untied lm_head (refining an int4 head)
    head_tied: bool = False  # the lm_head is the embedding matrix (its rows are the embeddings)

    def tensors(self) -> dict[str, Any]:
        """Flat tensors for safetensors (see :func:`load_packed`)."""
        out: dict[str, Any] = {}
        for name, packed in self._items():
            out[f"{name}.qweight"] = packed.qweight
            out[f"{name}.qscale"] = packed.qscale
            if packed.bias is not None:
                out[f"{name}.bias"] = packed.bias
        return out

    def layout(self) -> dict[str, Any]:
        """Kinds and splits of every packed weight (metadata of the cache file)."""
        return {name: {"kind": p.kind, "splits": list(p.splits), "in": p.in_features} for name, p in self._items()}

    def _items(self) -> Iterator[tuple[str, Packed]]:
        for i, layer in enumerate(self.layers):
            for fused, packed in layer.items():
                yield f"layers.{i}.{fused}", packed
        if self.lm_head is not None:
            yield "lm_head", self.lm_head

    def extra_tensors(self) -> dict[str, Any]:
        """Tensors beside the packed ones (an untied head's bf16 rows)."""
        return {} if self.head_rows is None else {"lm_head.rows": self.head_rows}


def _install(parent: Any, members: tuple[str, ...], packed: Packed) -> None:
    cls = quant_linear_class()
    for index, member in enumerate(members):
        qw, qs, bias = packed.rows(index)
        setattr(parent, member, cls(packed.in_features, packed.splits[index], packed.kind, qw, qs, bias))


def quantize_model(
    model: Any, variant: str, progress: Callable[[int, int], None] | None = None, head: str = "int4"
) -> QuantizedModel:
    """Replace the linear layers of ``model`` (in place) by quantized ones; keep the rest in bf16.

    Layers are quantized from their current weights (load float32 weights for the best
    grid). ``lm_head`` is untied from the embeddings and quantized as ``head``: int4 by
    default, which the lean step uses as a draft whose top logits it recomputes from the
    bf16 rows (the embeddings when tied); int8 on its own.
    """
    import torch

    if variant not in VARIANTS:
        raise ValueError(f"unknown quantization variant {variant!r}")
    layers = decoder_layers(model)
    if layers is None:
        raise ValueError("not a Llama-style decoder (model.model.layers with q/k/v/o and gate/up/down)")
    result = QuantizedModel(variant, [], None)
    total = len(layers) + 1
    layout = fused_layout(model)
    for i, layer in enumerate(layers):
        packs: dict[str, Packed] = {}
        for group, fused in layout.items():
            parent = getattr(layer, group)
            for fused_name, members in fused:
                mods = [getattr(parent, m) for m in members]
                packed = pack(KINDS[variant][fused_name], [m.weight for m in mods], [m.bias for m in mods])
                _install(parent, members, packed)
                packs[fused_name] = packed
        result.layers.append(packs)
        if progress:
            progress(i + 1, total)
    head_kind = head
    head_module = getattr(model, "lm_head", None)
    if isinstance(head_module, torch.nn.Linear):
        packed = pack(head_kind, [head_module.weight], [head_module.bias])
        embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        result.head_tied = embed is not None and getattr(embed, "weight", None) is head_module.weight
        if not result.head_tied and packed.kind == "int4":
            result.head_rows = head_module.weight.detach().to(torch.bfloat16).contiguous()
        _untie(model)
        model.lm_head = quant_linear_class()(packed.in_features, packed.splits[0], packed.kind, packed.qweight, packed.qscale, packed.bias)
        result.lm_head = packed
    for param in model.parameters():  # not model.to(): rotary inv_freq buffers stay float32
        if param.is_floating_point() and param.dtype != torch.bfloat16:
            param.data = param.data.to(torch.bfloat16)
    if progress:
        progress(total, total)
    return result


def _untie(model: Any) -> None:
    """Stop transformers from tying lm_head to the embeddings again (it is quantized now)."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "tie_word_embeddings", False):
        config.tie_word_embeddings = False
    text_config = getattr(config, "text_config", None) if config is not None else None
    if text_config is not None and getattr(text_config, "tie_word_embeddings", False):
        text_config.tie_word_embeddings = False


def save_packed(quantized: QuantizedModel, model: Any, path: Path, metadata: dict[str, str]) -> None:
    """Write the packed weights and the model's other (bf16) tensors into one safetensors file."""
    import json

    from safetensors.torch import save_file

    cls = quant_linear_class()
    tensors = {f"q.{k}": v.contiguous() for k, v in (quantized.tensors() | quantized.extra_tensors()).items()}
    skip = {n for n, m in model.named_modules() if isinstance(m, cls)}
    for name, tensor in model.state_dict().items():
        owner = name.rsplit(".", 1)[0]
        if owner in skip or name.startswith("lm_head."):
            continue
        tensors[f"m.{name}"] = tensor.detach().contiguous()
    meta = dict(metadata)
    meta.update(variant=quantized.variant, format=str(FORMAT_VERSION), layout=json.dumps(quantized.layout()),
                head_tied=str(int(quantized.head_tied)))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def load_packed(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, tensors) of a file written by :func:`save_packed`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
        # clone: safetensors' buffers are not 64-byte aligned, and the packed-matmul kernels
        # crash on unaligned weights for some batch sizes (seen with int8 and 6 rows)
        tensors = {k: fh.get_tensor(k).clone() for k in fh.keys()}
    return meta, tensors


def model_from_packed(config: Any, meta: dict[str, str], tensors: dict[str, Any]) -> tuple[Any, QuantizedModel]:
    """Rebuild the quantized model from a cache file, without reading the source weights."""
    import json

    import torch
    from transformers import AutoModelForCausalLM

    if meta.get("format") != str(FORMAT_VERSION):
        raise ValueError(f"quantized cache format {meta.get('format')} is not {FORMAT_VERSION}")
    layout = json.loads(meta["layout"])
    _untie_config(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    layers = decoder_layers(model)
    if layers is None:
        raise ValueError("the cached model is not a Llama-style decoder")

    def packed(name: str) -> Packed:
        info = layout[name]
        return Packed(info["kind"], tensors[f"q.{name}.qweight"], tensors[f"q.{name}.qscale"], int(info["in"]),
                      tuple(int(s) for s in info["splits"]), tensors.get(f"q.{name}.bias"))

    result = QuantizedModel(meta["variant"], [], None)
    groups = fused_layout(model)
    for i, layer in enumerate(layers):
        packs: dict[str, Packed] = {}
        for group, fused in groups.items():
            for fused_name, members in fused:
                packs[fused_name] = packed(f"layers.{i}.{fused_name}")
                _install(getattr(layer, group), members, packs[fused_name])
        result.layers.append(packs)
    result.head_tied = meta.get("head_tied") == "1"
    result.head_rows = tensors.get("q.lm_head.rows")
    if "lm_head" in layout:
        result.lm_head = packed("lm_head")
        p = result.lm_head
        model.lm_head = quant_linear_class()(p.in_features, p.splits[0], p.kind, p.qweight, p.qscale, p.bias)
    rest = {k[2:]: v for k, v in tensors.items() if k.startswith("m.")}
    missing = model.load_state_dict(rest, strict=False, assign=True)
    if missing.unexpected_keys:
        raise ValueError(f"unexpected tensors in the quantized cache: {missing.unexpected_keys[:3]}")
    _rebuild_meta_buffers(model)
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if leftovers:
        raise ValueError(f"the quantized cache lacks {leftovers[:3]}")
    return model, result


def _untie_config(config: Any) -> None:
    if getattr(config, "tie_word_embeddings", False):
        config.tie_word_embeddings = False


def _rebuild_meta_buffers(model: Any) -> None:
    """Recreate modules whose only meta tensors are computed buffers (rotary embeddings, and
    Gemma's embedding scale)."""
    import torch

    for name, module in list(model.named_modules()):
        scale = getattr(module, "embed_scale", None)
        if isinstance(scale, torch.Tensor) and scale.device.type == "meta" and hasattr(module, "scalar_embed_scale"):
            module.register_buffer("embed_scale", torch.tensor(float(module.scalar_embed_scale)), persistent=False)
        if "rotary" not in type(module).__name__.lower():
            continue
        if not any(b.device.type == "meta" for b in module.buffers(recurse=False)):
            continue
        fresh = type(module)(config=module.config) if hasattr(module, "config") else None
        if fresh is None:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, fresh)
