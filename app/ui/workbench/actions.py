"""The Workbench's operations (a mixin of :class:`~app.ui.workbench.window.WorkbenchWindow`):
grid files, variants, cases, running (estimate and budget confirmation first), stored runs,
"Send to chat" and "Copy as code". Dialogs are shown with ``open()`` and awaited through a
future, never ``exec()`` inside a coroutine (PITFALLS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from app.core.errors import AppError
from app.core.grid.config import dump_grid, load_grid
from app.core.grid.export import write_export
from app.core.grid.model import GridConfig, Prompt, Variant
from app.ui.widgets.common import spawn
from app.ui.workbench.edits import EditActions
from app.ui.workbench.reviewing import ReviewActions
from app.ui.workbench.running import RunActions

if TYPE_CHECKING:
    from app.ui.workbench.bench import Bench

GRID_FILTER = "Grid files (*.yaml *.yml *.json);;All files (*)"


class WorkbenchActions(EditActions, RunActions, ReviewActions):
    """See the module doc (the edits, the runs and the review are in their own mixins)."""

    # -- the document ---------------------------------------------------------------------------
    def _w(self) -> Bench:
        return self  # type: ignore[return-value]  # the window (see bench.py)

    @property
    def config(self) -> GridConfig:
        """The grid being edited."""
        return self._w().model.config

    def load_config(self, config: GridConfig, path: Path | None, runner: Any = None) -> None:
        """Show ``config`` (from ``path``; with a stored run's ``runner``)."""
        w = self._w()
        w.path = path
        w.runner = runner or w._new_runner(config)
        w.model.set_config(config, w.runner)
        w.size_columns()
        w.description.setText(config.description)
        self._fill_prompts(0)
        w.variant_editor.set_variant(None, None)
        w.answer.show_cell(None)
        w.estimate_label.setText("")
        w.set_running(False)
        self._set_dirty(False)
        for warning in config.warnings[:3]:
            w.show_message(warning, "warning")

    def _fill_prompts(self, current: int) -> None:
        w = self._w()
        w.prompt_box.blockSignals(True)
        w.prompt_edit.blockSignals(True)
        try:
            w.prompt_box.clear()
            for i, p in enumerate(self.config.prompts):
                w.prompt_box.addItem(p.label or f"Prompt {i + 1}")
            current = min(current, len(self.config.prompts) - 1)
            w.prompt_box.setCurrentIndex(current)
            w.prompt_box.setVisible(len(self.config.prompts) > 1)
            w.prompt_edit.setPlainText(self.config.prompts[current].template if self.config.prompts else "")
        finally:
            w.prompt_box.blockSignals(False)
            w.prompt_edit.blockSignals(False)

    def _set_dirty(self, dirty: bool) -> None:
        w = self._w()
        w.dirty = dirty
        name = w.path.name if w.path else (self.config.description or "untitled grid")
        w.setWindowTitle(f"Workbench — {name}{'*' if dirty else ''} — LLM Playground")

    def set_config(self, config: GridConfig) -> None:
        """Replace the grid after an edit; cells whose request and checks did not change keep
        their answers (the others are shown as not run)."""
        w = self._w()
        old = w.runner
        new = w._new_runner(config, run_id=old.run_id if old.begun else None)
        new.adopt(old)
        current = w.table.currentIndex()
        w.runner = new
        shape = (len(w.model.var_names), len(w.model.config.variants))
        w.model.set_config(config, new)
        if (len(w.model.var_names), len(config.variants)) != shape:
            w.size_columns()
        if current.isValid():
            w.table.setCurrentIndex(w.model.index(min(current.row(), w.model.rowCount() - 1),
                                                  min(current.column(), w.model.columnCount() - 1)))  # fmt: skip
        self._set_dirty(True)

    def _busy(self) -> bool:
        if self._w().runner.running:
            self._w().show_message("Stop the run first (■ Stop), or wait for it to end.", "warning")
            return True
        return False

    # -- files ----------------------------------------------------------------------------------
    def new_grid(self) -> None:
        """An empty grid with the main window's model as its first column."""
        if self._busy():
            return
        w = self._w()
        variants = (Variant(w.host.backend.current_model()),) if w.host is not None else ()
        self.load_config(GridConfig(prompts=(Prompt(""),), variants=variants), None)

    def open_file(self, path: str | Path | None = None) -> bool:
        """Open a grid file (a dialog when ``path`` is None)."""
        w = self._w()
        if self._busy():
            return False
        if path is None:
            path, _ = QFileDialog.getOpenFileName(w.window(), "Open grid file", str(Path.home()), GRID_FILTER)
            if not path:
                return False
        try:
            config = load_grid(Path(path), self._w().services.secrets.get)
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return False
        self.load_config(config, Path(path))
        if not config.warnings:
            w.show_message(f"Opened {Path(path).name}: {len(w.model.rows)} cases × {len(config.variants)} variants.")
        return True

    def save(self) -> bool:
        """Save to the open file (Save as when there is none)."""
        w = self._w()
        if w.path is None:
            return self.save_as()
        return self._write(w.path)

    def ask_to_save(self, then: Callable[[], object]) -> QMessageBox:
        """Ask (non-modally) about the edited grid before it goes: Save (``then`` once saved),
        Discard (the edits are dropped: the file, or a new grid, comes back; then ``then``) or
        Cancel (nothing happens). The question is ``save_box`` while it is open."""
        w = self._w()
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved grid",
                          f"Save the changes to {w.path.name if w.path else 'this grid'}?",
                          buttons.Save | buttons.Discard | buttons.Cancel, w.window())  # fmt: skip
        box.setInformativeText("Without saving, your edits to the grid are lost.")
        box.setDefaultButton(buttons.Save)

        def on_finished(_result: int) -> None:
            choice = box.standardButton(box.clickedButton()) if box.clickedButton() is not None else buttons.Cancel
            w.save_box = None
            box.deleteLater()
            if choice == buttons.Save and self.save():
                then()
            elif choice == buttons.Discard:
                self._discard_edits()
                then()

        box.finished.connect(on_finished)
        w.save_box = box
        box.open()
        return box

    def _discard_edits(self) -> None:
        w = self._w()
        if not w.runner.running:  # (a running grid stays on screen until it ends)
            try:
                config = load_grid(w.path, w.services.secrets.get) if w.path is not None else None
            except AppError:
                config = None
            if config is not None:
                self.load_config(config, w.path)
            else:
                self.new_grid()
        self._set_dirty(False)

    def save_as(self, path: str | Path | None = None) -> bool:
        """Save under a new name (a dialog when ``path`` is None)."""
        w = self._w()
        if path is None:
            path, _ = QFileDialog.getSaveFileName(w.window(), "Save grid file", str(w.path or Path.home() / "grid.yaml"),
                                                  GRID_FILTER)  # fmt: skip
            if not path:
                return False
        target = Path(path)
        if target.suffix.lower() not in (".yaml", ".yml", ".json"):
            target = target.with_suffix(".yaml")
        return self._write(target)

    def _write(self, path: Path) -> bool:
        w = self._w()
        try:
            path.write_text(dump_grid(self.config, as_json=path.suffix.lower() == ".json"), encoding="utf-8")
        except OSError as exc:
            w.show_message(f"Could not write {path}: {exc.strerror}. Pick another folder.", "error")
            return False
        w.path = path
        self._set_dirty(False)
        w.show_message(f"Saved {path.name}.", "ok")
        return True

    def export_current(self, path: str | Path | None = None) -> bool:
        """Export the grid on screen (JSON, CSV or HTML by the file name)."""
        return self._export(self._w().runner, path)

    def _export(self, runner: Any, path: str | Path | None) -> bool:
        w = self._w()
        if path is None:
            path, _ = QFileDialog.getSaveFileName(w.window(), "Export run", str(Path.home() / "results.html"),
                                                  "HTML report (*.html);;JSON (*.json);;CSV (*.csv)")  # fmt: skip
            if not path:
                return False
        review = w.current_review() if runner is w.runner else w.store.load_review(runner.run_id)
        try:
            write_export(runner, Path(path), review)
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return False
        w.show_message(f"Exported to {path}.", "ok")
        return True

    # -- models ---------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Fill the model picker (in a task)."""
        w = self._w()
        if w.host is not None and w.host.backend is not None:
            w.picker.set_current(w.host.backend.current_model(), w.host.backend.current_endpoint())

        async def fill() -> None:
            listing = await w.services.list_all_models()
            w.picker.set_listing(listing)
            w.variant_editor.set_models(sorted({str(m.ref) for m in listing.models}))

        self._spawn(fill())

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        w = self._w()
        task = spawn(coro, lambda msg: w.show_message(msg, "error"))
        w._tasks.add(task)
        task.add_done_callback(w._tasks.discard)
        return task

    def _on_table_menu(self, pos: Any) -> None:
        w = self._w()
        index = w.table.indexAt(pos)
        if not index.isValid() or w.model.variant_of(index.column()) is None or w.model.is_footer(index.row()):
            return
        menu = QMenu(w.window())
        menu.addAction("Rerun this cell").triggered.connect(w.rerun_selected)
        menu.addAction("Send to chat").triggered.connect(w.send_selected_to_chat)
        for label, language in (("Copy as Python (openai)", "python"), ("Copy as curl", "curl"),
                                ("Copy as Python (transformers)", "transformers")):  # fmt: skip
            menu.addAction(label).triggered.connect(lambda _c=False, lang=language: w.copy_selected_code(lang))
        menu.popup(w.table.viewport().mapToGlobal(pos))

    # -- code -----------------------------------------------------------------------------------
    def _one_cell(self) -> Any:
        w = self._w()
        keys = w.selected_cells()
        cell = w.runner.cell(*keys[0]) if keys else None
        if cell is None:
            w.show_message("Select a cell first.", "warning")
        return cell

    def copy_selected_code(self, language: str | None = None) -> str | None:
        """Copy the selected cell's request as a program (python / curl / transformers)."""
        from app.providers.code_targets import code_for

        w = self._w()
        cell = self._one_cell()
        if cell is None or self._blind_refusal():
            return None
        if cell.request is None:
            w.show_message(cell.error or "This cell cannot be sent.", "error")
            return None
        lang = language or ("transformers" if cell.request.model.in_process else w.code.current_language())
        if lang == "python" and cell.request.model.in_process:
            lang = "transformers"
        try:
            code = code_for(w.services, cell.request, lang)
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return None
        w.code.set_language(lang)
        w.code.show_code(code)
        QGuiApplication.clipboard().setText(code)
        w.show_message("Copied the cell's request as code (the key is read from an environment variable).", "ok")
        return code

    def _show_code(self) -> None:
        from app.providers.code_targets import code_for

        w = self._w()
        keys = w.selected_cells()
        cell = w.runner.cell(*keys[0]) if keys else None
        if w.blind:
            return
        if cell is None or cell.request is None:
            w.code.show_code("Select a cell to see its request as code.")
            return
        try:
            w.code.show_code(code_for(w.services, cell.request, w.code.current_language()))
        except AppError as exc:
            w.code.show_code(f"# {exc.user_message()}")

    def send_selected_to_chat(self) -> str | None:
        """Open the selected cell in the main window as a conversation."""
        from app.ui.workbench.chat_bridge import send_to_chat

        w = self._w()
        cell = self._one_cell()
        if cell is None or w.host is None or self._blind_refusal():
            return None
        row = w.model.rows[cell.row]
        title = f"{self.config.description or 'Workbench'} · {row.label}"
        try:
            return send_to_chat(w.host, cell, self.config.variants[cell.col], title)
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return None

    # -- dialogs --------------------------------------------------------------------------------
    async def confirm(self, title: str, text: str) -> bool:
        """Ask Yes/Cancel with a non-blocking dialog (``open()`` + a future)."""
        w = self._w()
        box = QMessageBox(QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, w.window())  # fmt: skip
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        def on_finished(_result: int) -> None:
            if not fut.done():
                fut.set_result(box.clickedButton() is box.button(QMessageBox.StandardButton.Yes))

        box.finished.connect(on_finished)
        w.confirm_box = box
        box.open()
        w.confirming.emit(box)
        try:
            return await fut
        finally:
            w.confirm_box = None
            box.deleteLater()

    def budget(self) -> Decimal:
        """The setting above which a run asks first (USD)."""
        return Decimal(str(self._w().services.settings.workbench_budget_usd))


