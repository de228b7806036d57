"""The LoRA adapters peft loaded on a quantized model, in the form the lean decode step runs.

The step keeps the packed base weights untouched and runs each adapter unmerged: two small
matrix products per fused projection (q/k/v, gate/up). Several adapters active on one
projection are concatenated along the rank, with their scales folded into ``b``; an adapter
on a member of a fused projection gets zero rows for the other members. Adapters the step
cannot run exactly (DoRA and other variants, a module outside the decoder's projections) are
refused with a reason, and the caller then uses ``model.generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.providers.local_arch import FusedLayout, fused_layout


@dataclass
class LoraPlan:
    """Unmerged LoRA of one fused projection: ``y += (x @ a) @ b`` (scales folded into b)."""

    a: Any  # [K, R]
    b: Any  # [R, N]


def lora_plans(model: Any, dtype: Any) -> tuple[tuple[Any, ...], dict[int, dict[str, LoraPlan]], str | None]:
    """(state key, per-layer LoRA plans, reason when the lean step cannot run these adapters)."""
    import torch

    layers = model.model.layers
    layout = fused_layout(model)
    found: list[tuple[int, str, int, Any]] = []  # (layer, fused, member index, module)
    key: list[Any] = []
    names = {id(getattr(getattr(layer, group), member)): (i, fused_name, j)
             for i, layer in enumerate(layers) for group, fused in layout.items()
             for fused_name, members in fused for j, member in enumerate(members)}
    for module in model.modules():
        if not hasattr(module, "lora_A") or not hasattr(module, "scaling"):
            continue
        if getattr(module, "disable_adapters", False) or getattr(module, "merged", False):
            key.append((id(module), "off"))
            continue
        active = [a for a in getattr(module, "active_adapters", ()) if a in module.lora_A]
        if not active:
            continue
        where = names.get(id(module))
        if where is None:
            return (object(),), {}, f"an adapter on {type(getattr(module, 'base_layer', module)).__name__} outside the decoder projections"
        for a in active:
            if a in getattr(module, "lora_variant", {}) or getattr(module, "use_dora", {}).get(a, False):
                return (object(),), {}, "DoRA or another LoRA variant"
            key.append((id(module), a, float(module.scaling[a]), id(module.lora_A[a].weight), module.lora_A[a].weight._version))
        found.append((*where, module))
    plans: dict[int, dict[str, LoraPlan]] = {}
    groups: dict[tuple[int, str], list[tuple[int, Any]]] = {}
    for i, fused_name, j, module in found:
        groups.setdefault((i, fused_name), []).append((j, module))
    splits = {fused_name: members for fused in layout.values() for fused_name, members in fused}
    for (i, fused_name), members in groups.items():
        layer = layers[i]
        outs = [getattr(_parent(layer, fused_name, layout), m) for m in splits[fused_name]]
        widths = [int(getattr(o, "out_features", None) or o.base_layer.out_features) for o in outs]
        offsets = [sum(widths[:j]) for j in range(len(widths))]
        a_parts, b_parts = [], []
        for j, module in members:
            for a in [x for x in module.active_adapters if x in module.lora_A]:
                wa = module.lora_A[a].weight.detach().float()  # [r, K]
                wb = module.lora_B[a].weight.detach().float() * float(module.scaling[a])  # [N_j, r]
                full = torch.zeros(sum(widths), wb.shape[1])
                full[offsets[j]: offsets[j] + widths[j]] = wb
                a_parts.append(wa)
                b_parts.append(full)
        a_cat = torch.cat(a_parts, dim=0).t().contiguous().to(dtype)
        b_cat = torch.cat(b_parts, dim=1).t().contiguous().to(dtype)
        plans.setdefault(i, {})[fused_name] = LoraPlan(a_cat, b_cat)
    return tuple(key), plans, None


def _parent(layer: Any, fused_name: str, layout: FusedLayout) -> Any:
    for group, fused in layout.items():
        if any(name == fused_name for name, _ in fused):
            return getattr(layer, group)
    raise KeyError(fused_name)
