"""The Workbench window runs grids: cells stream and stop, a cell reruns alone, the diff of
two cells, the budget confirmation, stored runs reopen (the CLI's too)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox

from app.core.grid.model import GridConfig, Prompt, TestCase, Variant
from app.ui.workbench.grid_model import CELL_ROLE
from tests.conftest import wait_signal
from tests.ui.workbench.conftest import until_flushed

SLOW = "mock:lorem?n=3000&rate=40"


def grid_2x3(slow: str = "mock:lorem?n=6") -> GridConfig:
    return GridConfig(description="Pets", prompts=(Prompt("Tell me about {{pet}}"),),
                      variants=(Variant("mock:echo"), Variant("mock:fixed?text=cats rule", label="fixed"), Variant(slow)),
                      tests=(TestCase({"pet": "cats"}), TestCase({"pet": "dogs"})))  # fmt: skip


def test_a_2x3_grid_streams_into_its_cells_and_stops(bench: Any, drive: Callable[..., Any]) -> None:
    bench.load_config(grid_2x3(SLOW), None)
    model = bench.model

    async def scenario() -> None:
        task = bench.run()
        assert task is not None
        slow_index = model.index(0, model.column_of(2))
        await until_flushed(bench, lambda: bool(model.data(slow_index, CELL_ROLE).current_text)
                            and all(bench.runner.cells[(r, c)].ended for r in (0, 1) for c in (0, 1)))
        streaming = model.data(slow_index, CELL_ROLE)
        assert streaming.status == "running" and bench.stop_action.isEnabled() and not bench.model.editable
        assert "token" in streaming.figures_line() and "first token" in streaming.figures_line()  # live figures
        bench.select_cell(0, 2)
        await until_flushed(bench, lambda: bool(bench.answer.text))  # the whole answer view follows the stream
        bench.stop_action.trigger()
        await asyncio.wait_for(task, 10)

    drive(scenario())
    cells = bench.runner.cells
    assert cells[(0, 0)].text == "Tell me about cats" and cells[(1, 1)].text == "cats rule"
    assert {cells[(r, 2)].status for r in (0, 1)} == {"cancelled"}
    assert cells[(0, 2)].text and len(cells[(0, 2)].text.split()) < 3000  # the partial text is kept
    assert bench.run_action.isEnabled() and not bench.stop_action.isEnabled() and bench.model.editable
    footer = bench.footer_model.data(bench.footer_model.index(0, model.column_of(0)))
    assert "free" in footer and "mean" in footer and "p95" in footer and "2/2 pass" in footer
    assert bench.footer_model.data(bench.footer_model.index(0, model.column_of(2))).endswith("2 stopped")
    assert bench.footer.isVisible() and bench.footer.columnWidth(model.column_of(1)) == bench.table.columnWidth(
        model.column_of(1))
    assert len(bench.services.ledger.recent(100)) == 6


def test_a_cell_reruns_alone(bench: Any, drive: Callable[..., Any]) -> None:
    bench.load_config(grid_2x3(), None)

    async def scenario() -> None:
        await asyncio.wait_for(bench.run(), 10)
        before = {k: (c.text, c.attempt) for k, c in bench.runner.cells.items()}
        bench.select_cell(1, 2)
        assert bench.rerun_action.isEnabled()
        bench.rerun_action.trigger()
        await wait_signal(bench.run_finished, 10)
        after = {k: (c.text, c.attempt) for k, c in bench.runner.cells.items()}
        assert after[(1, 2)][1] == 2
        assert {k: v for k, v in after.items() if k != (1, 2)} == {k: v for k, v in before.items() if k != (1, 2)}

    drive(scenario())
    assert len(bench.services.ledger.recent(100)) == 7
    stored = bench.store.load(bench.runner.run_id)
    assert stored.cells[(1, 2)]["figures"]["attempt"] == 2


def test_the_diff_of_two_cells_shows_the_changed_words(bench: Any, drive: Callable[..., Any]) -> None:
    bench.load_config(grid_2x3(), None)
    drive(asyncio.wait_for(bench.run(), 10))
    bench.select_cell(0, 0)
    bench.select_cell(1, 0, add=True)
    assert bench.tabs.currentWidget() is bench.diff
    assert bench.diff.removed == ["cats"] and bench.diff.added == ["dogs"]
    html = bench.diff.body.toHtml()
    assert "line-through" in html and "cats" in html and "dogs" in html
    bench.select_cell(0, 1)
    assert bench.tabs.currentWidget() is bench.answer and bench.answer.text.strip() == "cats rule"


def test_above_the_budget_the_run_asks_first(bench: Any, drive: Callable[..., Any]) -> None:
    bench.services.settings.workbench_budget_usd = 0.0
    bench.load_config(GridConfig(prompts=(Prompt("hi"),), variants=(Variant("openai:gpt-4o-mini", max_tokens=50),)), None)

    async def answer(button: QMessageBox.StandardButton) -> None:
        task = bench.run()
        (box,) = await wait_signal(bench.confirming, 10)
        assert "above your budget" in box.text() and "prompt tokens" in box.text()
        box.button(button).click()
        await asyncio.wait_for(task, 10)

    drive(answer(QMessageBox.StandardButton.Cancel))
    assert not bench.services.ledger.recent(10) and bench.runner.cells[(0, 0)].status == "idle"
    assert "1 cell · 8 prompt tokens" in bench.estimate_label.text() and "≈ $" in bench.estimate_label.text()
    drive(answer(QMessageBox.StandardButton.Yes))  # sent: no key here, so the cell shows its error
    cell = bench.runner.cells[(0, 0)]
    assert cell.status == "failed" and "API key" in (cell.error or "")


def test_a_stored_run_reopens_and_cli_runs_are_listed(bench: Any, drive: Callable[..., Any], tmp_path: Path) -> None:
    from app.cli import main

    bench.load_config(grid_2x3(), None)
    drive(asyncio.wait_for(bench.run(), 10))
    run_id = bench.runner.run_id
    texts = {k: c.text for k, c in bench.runner.cells.items()}
    bench.new_grid()
    assert all(not c.text for c in bench.runner.cells.values())
    grid = tmp_path / "cli.yaml"
    grid.write_text("description: From the CLI\nprompts: [hi]\nproviders: [mock:echo]\n", encoding="utf-8")
    assert main(["grid", str(grid)]) == 0
    bench.runs.refresh()
    lines = [bench.runs.list.item(i).text() for i in range(bench.runs.list.count())]
    assert any("From the CLI" in line and "CLI" in line for line in lines)
    assert bench.runs.select(run_id)
    bench.runs.reopen_button.click()
    assert bench.config.description == "Pets" and bench.runner.run_id == run_id
    assert {k: c.text for k, c in bench.runner.cells.items()} == texts
    index = bench.model.index(1, bench.model.column_of(1))
    assert bench.model.data(index, CELL_ROLE).text == "cats rule"
    out = tmp_path / "stored.html"
    assert bench.export_stored(run_id, out) and "cats rule" in out.read_text(encoding="utf-8")
