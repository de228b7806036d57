"""The adapter effect per token in the Workbench: a base-vs-adapter pair (two cells of one
row, the same in-process model and prompt, one without adapters) asks for its tokens'
probabilities when the grid runs, and selecting both cells (Ctrl+click) shows, beside their
diff, the adapter's answer with the tokens the adapter moved most highlighted (scored under the
base model in one forward pass, once per answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace

from app.core.grid.cells import Cell
from app.core.lens import AdapterEffect
from app.core.provider import ProviderRegistry
from app.ui.widgets.effect_view import EffectView, score_and_show


def _pairs_with(a: Cell, b: Cell) -> bool:
    ra, rb = a.request, b.request
    if ra is None or rb is None or a.row != b.row or not ra.model.takes_adapters:
        return False
    same = ra.model == rb.model and ra.messages == rb.messages and ra.endpoint == rb.endpoint
    return same and bool(ra.adapters) != bool(rb.adapters)


def pair_cells(a: Cell | None, b: Cell | None) -> tuple[Cell, Cell] | None:
    """``(base, adapter)`` when the two cells are a base-vs-adapter pair, else None."""
    if a is None or b is None or not _pairs_with(a, b):
        return None
    assert a.request is not None
    return (b, a) if a.request.adapters else (a, b)


def ask_tokens_for_pairs(cells: Iterable[Cell], top_k: int) -> int:
    """Make the cells of every base-vs-adapter pair ask for their tokens' probabilities (with
    ``top_k`` alternatives; parameters that already ask keep theirs). Returns how many cells."""
    by_row: dict[int, list[Cell]] = {}
    for cell in cells:
        by_row.setdefault(cell.row, []).append(cell)
    marked: set[tuple[int, int]] = set()
    for row in by_row.values():
        for i, a in enumerate(row):
            for b in row[i + 1:]:
                if _pairs_with(a, b):
                    marked |= {a.key, b.key}
    for cells_of_row in by_row.values():
        for cell in cells_of_row:
            req = cell.request
            if cell.key in marked and req is not None and req.params.logprobs is None:
                cell.request = replace(req, params=req.params.with_(logprobs=top_k))
    return len(marked)


class PairEffect:
    """Shows the adapter effect of the selected pair in ``view`` (scored once per answer)."""

    def __init__(self, view: EffectView, registry: ProviderRegistry) -> None:
        self.view = view
        self.registry = registry
        self.task: asyncio.Task[AdapterEffect | None] | None = None
        self._done: dict[str, AdapterEffect] = {}

    def show(self, a: Cell | None, b: Cell | None) -> None:
        """The selection is ``a`` and ``b``: their effect, or nothing when they are no pair."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = None
        self.view.clear()
        pair = pair_cells(a, b)
        if pair is None:
            return
        _base, tuned = pair
        if tuned.status != "done" or tuned.request is None:
            self.view.set_message("The adapter effect per token shows here once the adapter's answer is done.")
            return
        if tuned.run is None:  # a stored run: its cells keep their text, not their tokens
            self.view.set_message("No adapter effect for a stored run (its tokens are not kept): run the grid again.")
            return
        tokens = tuned.run.generation.tokens
        known = self._done.get(tuned.run.id)
        if known is not None:
            self.view.set_effect(tokens, known)
            return
        run, request = tuned.run, tuned.request

        async def score() -> AdapterEffect | None:
            effect = await score_and_show(self.view, self.registry, request, tokens)
            if effect is not None:
                self._done[run.id] = effect
            return effect

        self.task = asyncio.ensure_future(score())
