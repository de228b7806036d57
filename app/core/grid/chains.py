"""Tests that depend on earlier answers, as promptfoo runs them: ``_conversation`` and
``storeOutputAs``.

When a grid is :meth:`~app.core.grid.model.GridConfig.sequential`, each chain (a prompt, a
provider, a repeat run and a conversation: a scenario's own, or the grid's) sends its tests
one after another, in file order. Before each is rendered it gets:

- ``_conversation``: the chain's earlier turns, ``[{prompt, input, output}]`` as promptfoo
  gives them (``prompt``: the rendered prompt, a list of ``{role, content}`` for a chat
  prompt; ``input``: its last message; ``output``: the answer), for the template to loop
  over (``{% for turn in _conversation %}``);
- each ``storeOutputAs`` variable of an earlier test of the chain, set to its answer
  (over the test's own variable of that name, as promptfoo's registers are).

A failed cell adds no turn and stores nothing; the chain goes on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.core.grid.cells import Cell
from app.core.grid.model import GridConfig, Row

ChainKey = tuple[int, int, int, str]


def turn(rendered: str, output: str) -> dict[str, Any]:
    """One ``_conversation`` entry as promptfoo makes it: ``prompt`` is the rendered prompt
    (parsed when it is JSON), ``input`` the last message's content of a JSON list (else the
    prompt), ``output`` the answer."""
    try:
        data: Any = json.loads(rendered)
    except ValueError:
        data = None
    last: Any = None
    if isinstance(data, list) and data:
        last = data[-1].get("content") if isinstance(data[-1], dict) else data[-1]
        last = last or data[-1]
    prompt = rendered if data is None else data
    return {"prompt": prompt, "input": last or prompt, "output": output}


class Chains:
    """The chains of one grid run and what each has collected."""

    def __init__(self, config: GridConfig, rows: list[Row]) -> None:
        self.rows = rows
        self.active = config.sequential()
        self._stored = [t.store_output_as for t in config.tests if t.store_output_as]
        self._turns: dict[ChainKey, list[dict[str, Any]]] = {}
        self._registers: dict[ChainKey, dict[str, str]] = {}

    @staticmethod
    def key(row: Row, col: int) -> ChainKey:
        """The chain of ``row`` in column ``col``."""
        return row.prompt_index, row.repeat, col, row.test.conversation

    def planning_vars(self) -> dict[str, Any]:
        """What a cell is first planned with (an empty conversation, stored names empty)."""
        if not self.active:
            return {}
        return {"_conversation": [], **dict.fromkeys(self._stored, "")}

    def vars_for(self, row: Row, col: int) -> dict[str, Any]:
        """The chain's variables for ``row`` now."""
        key = self.key(row, col)
        return {"_conversation": list(self._turns.get(key, [])), **self._registers.get(key, {})}

    def record(self, cell: Cell, rendered: str) -> None:
        """Keep an ended cell's answer (and its ``rendered`` prompt) for the rest of its chain."""
        if cell.status != "done":
            return
        row = self.rows[cell.row]
        key = self.key(row, cell.col)
        self._turns.setdefault(key, []).append(turn(rendered, cell.text))
        if row.test.store_output_as and cell.text:
            self._registers.setdefault(key, {})[row.test.store_output_as] = cell.text

    def heads(self, cells: list[Cell]) -> list[Cell]:
        """Of ``cells`` (about to be sent), the first of each chain; the others wait."""
        if not self.active:
            return cells
        seen: set[ChainKey] = set()
        out: list[Cell] = []
        for cell in sorted(cells, key=lambda c: c.row):
            key = self.key(self.rows[cell.row], cell.col)
            if key not in seen:
                seen.add(key)
                out.append(cell)
        return out

    def next_in_chain(self, cell: Cell, cells: Mapping[tuple[int, int], Cell]) -> Cell | None:
        """The cell of the same chain that waits after ``cell``, if any."""
        if not self.active:
            return None
        key = self.key(self.rows[cell.row], cell.col)
        later = [c for c in cells.values() if c.status == "queued" and c.run is None and c.row > cell.row
                 and self.key(self.rows[c.row], c.col) == key]  # fmt: skip
        return min(later, key=lambda c: c.row) if later else None
