"""Running the Workbench's grid (a mixin of the window): the estimate and the budget
confirmation, Run / Stop / Rerun cell, the stored runs (reopen, rerun, export, delete) and
what the details pane shows for the selected cells."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from app.core.errors import AppError
from app.core.figures import format_cost
from app.core.grid.store import reopen
from app.ui.workbench.effect import ask_tokens_for_pairs

if TYPE_CHECKING:
    from app.core.grid.runner import GridRunner
    from app.ui.workbench.bench import Bench


class RunActions:
    """See the module doc."""

    def _rw(self) -> Bench:
        return self  # type: ignore[return-value]  # the window (see bench.py)

    # -- running --------------------------------------------------------------------------------
    def run(self) -> asyncio.Task[Any] | None:
        """Run every cell of the grid as a new run (the estimate first; above the budget the
        user confirms). Returns the task (tests await it)."""
        w = self._rw()
        if w.runner.running:
            w.show_message("A run is going on: Stop it first, or wait for it to end.", "warning")
            return None
        if not w.config.variants:
            w.show_message("Add a column first: pick a model and press + Add.", "warning")
            return None
        w.run_task = w._spawn(self._run())
        return w.run_task

    async def _run(self) -> None:
        from app.providers.bundled import default_temperature  # noqa: F401  (warm import before the run)

        w = self._rw()
        config = w.config
        runner = w._new_runner(config)
        problems = runner.problems()
        estimate = await asyncio.to_thread(runner.estimate)
        w.estimate_label.setText(estimate.sentence())
        budget = w.budget()
        if estimate.cost_max > budget or (estimate.unbounded and estimate.cost_in > 0):
            limit = "no limit on the answers' length" if estimate.unbounded else f"at most {format_cost(estimate.cost_max)}"
            text = (f"{estimate.sentence()}.\n\nThis run may cost {limit}, above your budget of {format_cost(budget)} "
                    "(Settings: workbench_budget_usd). Run it?")  # fmt: skip
            if not await w.confirm("Run the grid?", text):
                w.show_message("Not run.", "info")
                return
        w.runner = runner
        w.model.set_runner(runner)
        ask_tokens_for_pairs(runner.cells.values(), w.services.settings.probabilities_top_k)  # the adapter effect
        sent = runner.start()
        if problems:
            w.show_message(f"{len(problems)} cells cannot be sent: {problems[0].error}", "warning")
        else:
            w.show_message(f"Running {sent} cells… (■ Stop stops them all; finished cells are kept)")
        await self._follow(runner)

    async def _follow(self, runner: GridRunner) -> None:
        w = self._rw()
        w.set_running(True)
        try:
            await runner.wait()
        finally:
            w.set_running(w.runner.running)
            w.model.flush()
        w.runs.refresh()
        w.runs.select(runner.run_id)
        if len(w.selected_cells()) >= 2:  # a pair selected while it ran: its effect now
            self._on_selection()
        s = runner.summary()
        if w.message.kind() != "warning":  # a warning about cells that could not be sent stays
            w.show_message(f"Done: {s.sentence()} · {s.cells} cells" + (f", {s.cancelled} stopped" if s.cancelled else ""),
                           "ok" if not (s.failed or s.errors) else "info")  # fmt: skip
        w.run_finished.emit(runner.run_id)

    def stop(self) -> int:
        """Stop every running cell (the finished ones are kept)."""
        return self._rw().runner.stop()

    def rerun_selected(self) -> bool:
        """Run the selected cell again."""
        keys = self._rw().selected_cells()
        return bool(keys) and self.rerun_cell(*keys[0])

    def rerun_cell(self, row: int, col: int) -> bool:
        """Run one cell again, alone (its answer is replaced)."""
        w = self._rw()
        runner = w.runner
        if not runner.rerun(row, col):
            cell = runner.cell(row, col)
            w.show_message(cell.error if cell is not None and cell.error and cell.request is None
                           else "That cell is still running.", "warning")  # fmt: skip
            return False
        if not w.stop_action.isEnabled():  # no run being followed: follow this one
            w.run_task = w._spawn(self._follow(runner))
        return True

    # -- stored runs ----------------------------------------------------------------------------
    def _stored(self, run_id: str) -> GridRunner | None:
        from app.providers.bundled import default_temperature

        w = self._rw()
        try:
            return reopen(w.services.scheduler, w.store, run_id, default_temperature=default_temperature,
                          listener=w.model.on_cell)  # fmt: skip
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return None

    def reopen(self, run_id: str) -> bool:
        """Show a stored run (its configuration and answers); its cells can be rerun."""
        w = self._rw()
        if w.runner.running:
            w.show_message("Stop the run first, then reopen another one.", "warning")
            return False
        runner = self._stored(run_id)
        if runner is None:
            return False
        w.load_config(runner.config, None, runner)
        w.show_message(f"Reopened run {run_id}: {runner.summary().sentence()}.")
        return True

    def rerun_stored(self, run_id: str) -> asyncio.Task[Any] | None:
        """Run a stored run's configuration again, as a new run."""
        return self.run() if self.reopen(run_id) else None

    def export_stored(self, run_id: str, path: Any = None) -> bool:
        """Export a stored run."""
        runner = self._stored(run_id)
        return runner is not None and self._rw()._export(runner, path)

    def delete_stored(self, run_id: str) -> None:
        """Delete a stored run."""
        w = self._rw()
        w.store.delete(run_id)
        w.runs.refresh()

    # -- selection ------------------------------------------------------------------------------
    def _on_selection(self) -> None:
        w = self._rw()
        keys = w.selected_cells()
        runner = w.runner
        if len(keys) >= 2:
            a, b = runner.cell(*keys[0]), runner.cell(*keys[1])
            if a is not None and b is not None:
                w.diff.show_diff(a.current_text, b.current_text, self._title(*keys[0]), self._title(*keys[1]))
                w.pair_effect.show(a, b) if not w.blind else w.pair_effect.show(None, None)  # it names an adapter
                if w.tabs.currentWidget() is not w.review_panel:  # rating pairs: the vote stays in view
                    w.tabs.setCurrentWidget(w.diff)
            w._review_selection()
            return
        if len(keys) == 1:
            cell = runner.cell(*keys[0])
            w.answer.show_cell(cell, self._title(*keys[0]))
            v = keys[0][1]
            if not w.blind:  # the Variant tab would name the model
                w.variant_editor.set_variant(v, w.config.variants[v])
            if w.tabs.currentWidget() in (w.diff, w.variant_editor):
                w.tabs.setCurrentWidget(w.answer)
            w._show_code()
        w._review_selection()

    def _title(self, row: int, col: int) -> str:
        w = self._rw()
        return f"{w.model.rows[row].label} × {w.variant_name(col)}"

    def _on_model_cells_flushed(self, keys: set[tuple[int, int]]) -> None:
        w = self._rw()
        cell = w.answer.cell
        if cell is not None and cell.key in keys:
            w.answer.update_cell()
