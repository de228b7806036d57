"""The estimate shown before a grid runs: prompt tokens and cost of every sendable cell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from app.core.events import UsageReport
from app.core.grid.cells import Cell, GridEstimate
from app.core.grid.model import Variant

if TYPE_CHECKING:
    from app.core.engine import Engine


def estimate_cells(engine: Engine, cells: Iterable[Cell], variants: Sequence[Variant]) -> GridEstimate:
    """Counts with each model's tokenizer when it can (else a labelled estimate); a cell
    without a known price (or of an ``apiBaseUrl`` variant: unpriced) is left out of the
    costs and counted."""
    from app.core.tokens import count_chat

    tokens, exact, unpriced, unbounded, sendable = 0, True, 0, 0, 0
    cost_in, cost_out = Decimal(0), Decimal(0)
    for cell in cells:
        req = cell.request
        if req is None:
            continue
        sendable += 1
        try:
            count = engine.registry.get(req.model.provider).count_tokens(req.model.name, list(req.messages))
        except Exception:  # a tokenizer that is not there: a labelled estimate
            count = count_chat(req.model.name, list(req.messages))
        tokens += count.tokens
        exact = exact and count.exact
        price_in = engine.cost(req.model, UsageReport(count.tokens, 0, estimated=True), req.endpoint)
        if price_in is None or variants[cell.col].unpriced:
            unpriced += 1
            continue
        cost_in += price_in
        if req.params.max_tokens is None:
            unbounded += 1
        else:
            cost_out += engine.cost(req.model, UsageReport(0, req.params.max_tokens), req.endpoint) or Decimal(0)
    return GridEstimate(sendable, tokens, exact, cost_in, cost_out, unpriced, unbounded)
