"""The adapter effect per token in the Workbench: a base-vs-adapter pair on an in-process model
(the FakeLocal stand-in of the Compare test, registered as "local") asks for its tokens when the
grid runs, and selecting both cells shows the tokens the adapter moved most beside the diff."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from app.core.grid.model import GridConfig, Prompt, Variant
from app.core.types import AdapterSpec
from tests.ui.test_compare_effect import LensLocal

TINY = "local:tiny"


def test_a_base_vs_adapter_pair_shows_the_tokens_the_adapter_moved(bench: Any, drive: Callable[..., Any]) -> None:
    bench.services.registry.register("local", LensLocal)
    bench.load_config(GridConfig(prompts=(Prompt("Where did the cat sit?"),),
                                 variants=(Variant("mock:echo"), Variant(TINY, seed=1),
                                           Variant(TINY, seed=1, adapters=(AdapterSpec("/adapters/style"),)))), None)
    drive(asyncio.wait_for(bench.run(), 10))
    cells = bench.runner.cells
    assert cells[(0, 1)].request.params.logprobs == 5 == cells[(0, 2)].request.params.logprobs  # the pair asked
    assert cells[(0, 0)].request.params.logprobs is None  # the others did not
    bench.select_cell(0, 1)
    bench.select_cell(0, 2, add=True)
    drive(asyncio.wait_for(bench.pair_effect.task, 10))
    effect = bench.diff.effect
    assert effect.marked_texts() == [" sat", " the", " warm", "."]
    assert "Adapter effect over 8 tokens" in effect.summary.text() and effect.view.isVisible()
    assert not bench.diff.body.isVisible() and effect.toggle.text() == "Show diff"
    (scored, _ids), = LensLocal.instances[-1].scored
    assert scored.adapters == ()
    bench.select_cell(0, 0)
    bench.select_cell(0, 1, add=True)  # not a pair: no effect, the diff
    assert not effect.isVisible() and bench.diff.body.isVisibleTo(bench.diff)
    bench.select_cell(0, 2)
    bench.select_cell(0, 1, add=True)  # the pair again: no second forward pass
    assert bench.pair_effect.task is None and effect.marked_texts() == [" sat", " the", " warm", "."]
    assert len(LensLocal.instances[-1].scored) == 1
