"""The Workbench window as its operations see it: the mixins of
:class:`~app.ui.workbench.window.WorkbenchWindow` (:mod:`~app.ui.workbench.actions`,
:mod:`~app.ui.workbench.edits`, :mod:`~app.ui.workbench.running`) reach the window's widgets,
its state and each other's operations through this declared interface, so that they do not
import the window that is made of them (window.py checks that it fits, with mypy)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import (
        QComboBox,
        QLabel,
        QLineEdit,
        QPlainTextEdit,
        QTableView,
        QTabWidget,
        QWidget,
    )

    from app.core.grid.model import GridConfig, Variant
    from app.core.grid.review import RunReview
    from app.core.grid.runner import GridRunner
    from app.core.grid.store import RunStore
    from app.core.services import Services
    from app.ui.widgets.common import MessageLabel
    from app.ui.widgets.model_picker import ModelPicker
    from app.ui.workbench.details import AnswerView, CodeView, DiffView
    from app.ui.workbench.effect import PairEffect
    from app.ui.workbench.grid_model import FooterModel, GridTableModel
    from app.ui.workbench.host import WorkbenchHost
    from app.ui.workbench.review import ReviewPanel
    from app.ui.workbench.runs_panel import RunsPanel
    from app.ui.workbench.variant_editor import VariantEditor


class Bench(Protocol):
    """The window's parts (built in window.py) and the operations that call one another
    across the mixins."""

    # -- state --------------------------------------------------------------------------------
    services: Services
    host: WorkbenchHost | None
    store: RunStore
    runner: GridRunner
    path: Any
    dirty: bool
    run_task: Any
    confirm_box: Any
    save_box: Any
    _picked: tuple[str, str | None] | None
    _tasks: set[Any]
    _review: RunReview | None

    # -- widgets ------------------------------------------------------------------------------
    model: GridTableModel
    footer_model: FooterModel
    table: QTableView
    tabs: QTabWidget
    description: QLineEdit
    prompt_box: QComboBox
    prompt_edit: QPlainTextEdit
    picker: ModelPicker
    variant_editor: VariantEditor
    answer: AnswerView
    diff: DiffView
    code: CodeView
    pair_effect: PairEffect
    runs: RunsPanel
    message: MessageLabel
    estimate_label: QLabel
    stop_action: QAction
    review_panel: ReviewPanel
    only_failures_action: QAction
    only_differs_action: QAction
    blind_action: QAction
    reveal_action: QAction

    @property
    def run_finished(self) -> SignalInstance:
        """A run ended (its id)."""
        ...

    @property
    def confirming(self) -> SignalInstance:
        """The budget confirmation opened (the box)."""
        ...

    # -- the window's own ---------------------------------------------------------------------
    def window(self) -> QWidget:
        """The window itself, as the parent of its dialogs and menus (Qt's ``QWidget.window``)."""
        ...

    def setWindowTitle(self, title: str) -> None:  # noqa: N802 (Qt's name)
        """The window's title."""

    def show_message(self, text: str, kind: str = "info") -> None:
        """A line in the status area (info, ok, warning, error)."""

    def selected_cells(self) -> list[tuple[int, int]]:
        """The selected cells as (row, variant)."""
        ...

    def selected_variant(self) -> int | None:
        """The column the selection is in."""
        ...

    def set_running(self, running: bool) -> None:
        """Run / Stop follow whether a run goes on."""

    def size_columns(self) -> None:
        """Fit the columns to the window."""

    def size_rows(self) -> None:
        """The rows' heights."""

    def _new_runner(self, config: GridConfig, run_id: str | None = None) -> GridRunner:
        """A runner for ``config``."""
        ...

    # -- the operations (the mixins) ----------------------------------------------------------
    @property
    def config(self) -> GridConfig:
        """The grid being edited."""
        ...

    def load_config(self, config: GridConfig, path: Path | None, runner: Any = None) -> None:
        """Show ``config``."""

    def set_config(self, config: GridConfig) -> None:
        """Replace the grid after an edit."""

    def _fill_prompts(self, current: int) -> None:
        """The prompt chooser and editor."""

    def _busy(self) -> bool:
        """True (and says so) while a run goes on."""
        ...

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task of the window."""
        ...

    def _export(self, runner: Any, path: str | Path | None) -> bool:
        """Export ``runner``'s grid."""
        ...

    def _show_code(self) -> None:
        """The Code tab for the selected cell."""

    def _variants(self, variants: list[Variant], select: int | None = None) -> None:
        """Replace the columns."""

    def add_variant(self, model_id: str, endpoint: str | None = None, **fields: Any) -> Variant | None:
        """Add a column."""
        ...

    def rerun_selected(self) -> bool:
        """Run the selected cells again."""
        ...

    def send_selected_to_chat(self) -> str | None:
        """Open the selected cell in the main window."""
        ...

    def copy_selected_code(self, language: str | None = None) -> str | None:
        """Copy the selected cell's request as a program."""
        ...

    async def confirm(self, title: str, text: str) -> bool:
        """Ask Yes / Cancel."""
        ...

    @property
    def blind(self) -> bool:
        """True in blind mode."""
        ...

    def variant_name(self, variant: int) -> str:
        """A variant's title (neutral in blind mode)."""
        ...

    def current_review(self) -> RunReview:
        """The human review of the run on screen."""
        ...

    def _review_selection(self) -> None:
        """The Review tab follows the selection."""

    def _title(self, row: int, col: int) -> str:
        """``case × variant`` (neutral in blind mode)."""
        ...

    def budget(self) -> Decimal:
        """The cost above which a run asks first."""
        ...
