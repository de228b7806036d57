"""The store of Workbench runs: runs with their full configuration, reopened, and a run
killed mid-way is kept as interrupted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.grid.model import Assertion, GridConfig, Prompt, TestCase, Variant
from app.core.grid.runner import GridRunner
from app.core.grid.store import RunStore, reopen, store_path

CONFIG = GridConfig(description="Pets", prompts=(Prompt("About {{pet}}"),),
                    variants=(Variant("mock:echo"), Variant("mock:lorem?n=3", label="lorem", temperature=0.2)),
                    tests=(TestCase({"pet": "cats"}, (Assertion("icontains", "cats"),)), TestCase({"pet": "dogs"})))


def test_a_run_is_stored_with_its_configuration_and_reopens(services: Any, run: Callable[..., Any]) -> None:
    store = RunStore(store_path(services.paths.data_dir))
    runner = GridRunner(services.scheduler, CONFIG, sink=store, origin="cli", source="/tmp/pets.yaml")

    async def scenario() -> None:
        runner.start()
        await runner.wait()

    run(scenario())
    (header,) = store.list_runs()
    assert (header.id, header.title, header.origin, header.status) == (runner.run_id, "Pets", "cli", "complete")
    assert header.summary["cells"] == 4 and header.summary["passed"] == 3 and "CLI" in header.line()
    stored = store.load(runner.run_id)
    assert stored.config == CONFIG
    again = reopen(services.scheduler, store, runner.run_id)
    for key, cell in runner.cells.items():
        copy = again.cells[key]
        assert (copy.status, copy.text, copy.passed, copy.usage, copy.cost_usd) == (
            cell.status, cell.text, cell.passed, cell.usage, cell.cost_usd)
        assert [a.to_dict() for a in copy.asserts] == [a.to_dict() for a in cell.asserts]
    request = stored.cells[(0, 1)]["request"]
    assert request["model"] == "mock:lorem?n=3" and request["params"]["temperature"] == 0.2
    assert request["messages"] == [{"role": "user", "content": "About cats"}]

    async def rerun_one() -> None:  # a rerun in the reopened run saves into the same run
        assert again.rerun(1, 0)
        await again.wait()

    run(rerun_one())
    assert len(store.list_runs()) == 1 and store.load(runner.run_id).cells[(1, 0)]["figures"]["attempt"] == 2
    store.delete(runner.run_id)
    assert store.list_runs() == []
    store.close()


def test_a_run_killed_mid_way_is_kept_as_interrupted(services: Any, tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = RunStore(path)
    runner = GridRunner(services.scheduler, CONFIG, sink=store)
    store.begin(runner.run_id, CONFIG, origin="window", source=None)
    cell = runner.cells[(0, 0)]
    cell.status, cell.text = "done", "About cats"
    store.save_cell(runner.run_id, cell)
    runner.cells[(0, 1)].status = "running"
    store.save_cell(runner.run_id, runner.cells[(0, 1)])
    store.close()  # no finish(): the process died
    again = RunStore(path)
    (header,) = again.list_runs()
    assert header.status == "interrupted"
    reopened = reopen(services.scheduler, again, runner.run_id)
    assert reopened.cells[(0, 0)].text == "About cats" and reopened.cells[(0, 0)].status == "done"
    assert reopened.cells[(0, 1)].status == "cancelled" and "interrupted" in (reopened.cells[(0, 1)].error or "")
    again.close()


def test_a_cells_tool_calls_and_the_variants_tools_are_kept(services: Any, tmp_path: Path) -> None:
    from app.core.tools import ResponseSchema, ToolCall, ToolSpec

    variant = Variant("mock:echo", tools=(ToolSpec("get_weather", "", {"type": "object"}),), tool_choice="get_weather",
                      parallel_tool_calls=True, response_schema=ResponseSchema({"type": "object"}, "reply", False))  # fmt: skip
    config = CONFIG.with_(variants=(variant,))
    store = RunStore(tmp_path / "runs.sqlite3")
    runner = GridRunner(services.scheduler, config, sink=store)
    store.begin(runner.run_id, config, origin="cli", source=None)
    cell = runner.cells[(0, 0)]
    cell.status, cell.tool_calls = "done", (ToolCall("call_0", "get_weather", '{"city": "Paris"}'),)
    store.save_cell(runner.run_id, cell)
    assert store.load(runner.run_id).config.variants == (variant,)
    again = reopen(services.scheduler, store, runner.run_id)
    assert again.cells[(0, 0)].tool_calls == cell.tool_calls
    assert again.cells[(0, 0)].request == cell.request  # the tools are in the reopened cell's request too
    store.close()
