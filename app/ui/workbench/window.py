"""The Workbench window (View > Workbench, Ctrl+Shift+W): one prompt to many models side by
side. Columns are variants (model + adapters + parameters), rows are test cases; cells stream
live through the run scheduler. Its operations live in :class:`WorkbenchActions`. It reaches
the main window only through :class:`~app.ui.workbench.host.WorkbenchHost`.

Layout (fits 1024 x 700): a toolbar; the description and the prompt template; then the past
runs (left, collapsible) beside the grid over the details tabs (Answer, Diff, Review, Variant,
Code);
a status line at the bottom.

Signals:
    run_finished(str run_id): a run (or a rerun of cells) ended.
    confirming(object box): the budget confirmation (a QMessageBox) was opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.grid.model import GridConfig, Prompt, TestCase, Variant
from app.core.grid.runner import GridRunner
from app.core.grid.store import RunStore, store_path
from app.ui.widgets.common import (
    EscapeClosesWindow,
    MessageLabel,
    fit_to_screen,
    laid_out,
    text_box,
)
from app.ui.widgets.model_picker import ModelPicker
from app.ui.workbench.actions import WorkbenchActions
from app.ui.workbench.cell_delegate import CellDelegate
from app.ui.workbench.details import AnswerView, CodeView, DiffView
from app.ui.workbench.effect import PairEffect
from app.ui.workbench.grid_model import FooterModel, GridTableModel
from app.ui.workbench.review import ReviewPanel
from app.ui.workbench.runs_panel import RunsPanel
from app.ui.workbench.variant_editor import VariantEditor

if TYPE_CHECKING:
    from app.core.grid.review import RunReview
    from app.core.services import Services
    from app.ui.workbench.bench import Bench
    from app.ui.workbench.host import WorkbenchHost

PROMPT_DEBOUNCE_MS = 400
VARIANT_MIN_WIDTH = 200
ROW_HEIGHT = 88
FOOTER_HEIGHT = 44
STARTER = GridConfig(prompts=(Prompt("Explain {{topic}} in one sentence."),), tests=(TestCase({"topic": "the tides"}),))


class WorkbenchWindow(EscapeClosesWindow, WorkbenchActions):
    """See the module doc."""

    run_finished = Signal(str)
    confirming = Signal(object)
    only_failures_action: QAction
    only_differs_action: QAction
    blind_action: QAction
    reveal_action: QAction

    def __init__(self, services: Services, host: WorkbenchHost | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setObjectName("workbench")
        self.setWindowTitle("Workbench — LLM Playground")
        self.resize(fit_to_screen(QSize(1180, 760), QSize(0, 40)))  # room for a title bar
        self.setMinimumSize(800, 560)
        self.services = services
        self.host = host
        """The window it was opened from (its model, Send to chat, Quit); None when standalone."""
        self.store = RunStore(store_path(services.paths.data_dir))
        self.path: Any = None
        self.dirty = False
        self._picked: tuple[str, str | None] | None = None
        self._tasks: set[Any] = set()
        self.run_task: Any = None
        """The task of the last Run / Rerun (tests await it)."""
        self.confirm_box: Any = None
        """The budget confirmation while it is open."""
        self.save_box: Any = None
        """The "save the edited grid?" question while it is open."""
        self.model = GridTableModel(self)
        self._review: RunReview | None = None
        self.model.review_source = self.current_review
        self.runner = self._new_runner(STARTER)
        self._build()
        self._wire()
        starter = STARTER
        if host is not None and host.backend is not None:  # a first column: the chat's model
            starter = STARTER.with_(variants=(Variant(host.backend.current_model(),
                                                      endpoint=host.backend.current_endpoint()),))
        self.load_config(starter, None)
        self.show_message("Add columns with + Add (pick a model first) or the Variants menu, cases with Cases; "
                          "then ▶ Run.")
        self.refresh_models()

    # -- building -------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = laid_out(self, QVBoxLayout, (8, 6, 8, 6), 6)
        lay.addWidget(self._build_toolbar())
        head = QHBoxLayout()
        head.addWidget(QLabel("Description"))
        self.description = QLineEdit()
        self.description.setPlaceholderText("what this grid checks")
        head.addWidget(self.description, 1)
        self.prompt_box = QComboBox()
        self.prompt_box.setToolTip("The grid's prompts (each makes a row per case)")
        head.addWidget(self.prompt_box)
        self.add_prompt_button = QPushButton("+ Prompt")
        self.add_prompt_button.setToolTip("Add another prompt template (its rows come after the first one's)")
        head.addWidget(self.add_prompt_button)
        lay.addLayout(head)
        self.prompt_edit = text_box("The prompt; {{name}} is a variable (a column of the cases).", 48)
        lay.addWidget(self.prompt_edit)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegate(CellDelegate(self.model, self.table))
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.AnyKeyPressed)  # fmt: skip
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.viewport().installEventFilter(self)
        self.table.setWordWrap(True)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.footer_model = FooterModel(self.model)
        self.footer = QTableView()
        self.footer.setModel(self.footer_model)
        self.footer.horizontalHeader().hide()
        self.footer.setFixedHeight(FOOTER_HEIGHT + 2)
        self.footer.verticalHeader().setDefaultSectionSize(FOOTER_HEIGHT)
        self.footer.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.footer.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.footer.setWordWrap(True)
        self.footer.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.footer.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().sectionResized.connect(lambda i, _o, n: self.footer.setColumnWidth(i, n))
        self.table.horizontalScrollBar().valueChanged.connect(self.footer.horizontalScrollBar().setValue)
        grid_box = QWidget()
        grid_lay = QVBoxLayout(grid_box)
        grid_lay.setContentsMargins(0, 0, 0, 0)
        grid_lay.setSpacing(0)
        grid_lay.addWidget(self.table, 1)
        grid_lay.addWidget(self.footer)
        self.answer = AnswerView()
        self.diff = DiffView()
        self.pair_effect = PairEffect(self.diff.effect, self.services.registry)  # adapter effect of a selected pair
        self.variant_editor = VariantEditor()
        self.code = CodeView()
        self.review_panel = ReviewPanel()
        self.tabs = QTabWidget()
        for widget, title in ((self.answer, "Answer"), (self.diff, "Diff"), (self.review_panel, "Review"),
                              (self.variant_editor, "Variant"), (self.code, "Code")):  # fmt: skip
            self.tabs.addTab(widget, title)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(grid_box)
        right.addWidget(self.tabs)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setSizes([420, 230])
        right.setChildrenCollapsible(False)
        self.vsplit = right
        self.runs = RunsPanel(self.store)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.runs)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([210, 900])
        lay.addWidget(self.splitter, 1)
        bottom = QHBoxLayout()
        self.message = MessageLabel()
        self.estimate_label = QLabel("")
        self.estimate_label.setStyleSheet("color: palette(placeholder-text);")
        bottom.addWidget(self.message, 1)
        bottom.addWidget(self.estimate_label)
        lay.addLayout(bottom)
        self._prompt_timer = QTimer(self)
        self._prompt_timer.setSingleShot(True)
        self._prompt_timer.setInterval(PROMPT_DEBOUNCE_MS)

    def _tool(self, bar: QToolBar, text: str, slot: Any, tip: str = "", shortcut: str | None = None) -> QAction:
        act = QAction(text, self)
        act.triggered.connect(lambda _checked=False: slot())
        if tip:
            act.setToolTip(tip)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        bar.addAction(act)
        return act

    def _menu_button(self, bar: QToolBar, text: str, items: list[tuple[str, Any] | None]) -> QMenu:
        button = QToolButton(self)
        button.setText(text)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        for item in items:
            if item is None:
                menu.addSeparator()
            else:
                menu.addAction(item[0]).triggered.connect(lambda _c=False, f=item[1]: f())
        button.setMenu(menu)
        bar.addWidget(button)
        return menu

    def _build_toolbar(self) -> QToolBar:
        bar = QToolBar("Workbench", self)
        bar.setMovable(False)
        self.file_menu = self._menu_button(bar, "File", [
            ("New grid", self.new_grid), ("Open grid file…", self.open_file), ("Save", self.save),
            ("Save as…", self.save_as), None, ("Export this run…", self.export_current)])  # fmt: skip
        bar.addSeparator()
        self.picker = ModelPicker(self)
        self.picker.setObjectName("workbenchPicker")  # not the main toolbar's wide picker style
        self.picker.setToolTip("Pick a model, then Add: a new column")
        self.picker.setSizeAdjustPolicy(self.picker.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.picker.setMinimumContentsLength(12)
        self.picker.setMaximumWidth(220)
        bar.addWidget(self.picker)
        self.add_action = self._tool(bar, "+ Add", self.add_picked, "Add the picked model as a new column")
        self.variants_menu = self._menu_button(bar, "Variants", [
            ("Duplicate the selected column", self.duplicate_variant),
            ("Remove the selected column", self.remove_variant), None,
            ("Base vs adapter", self.base_vs_adapter),
            ("Same model at three temperatures", self.three_temperatures)])  # fmt: skip
        self.cases_menu = self._menu_button(bar, "Cases", [
            ("Add a case", self.add_case), ("Remove the selected case", self.remove_case), None,
            ("Import cases (CSV / JSONL)…", self.import_cases)])  # fmt: skip
        bar.addSeparator()
        self.run_action = self._tool(bar, "▶ Run", self.run, "Run every cell (shows the estimate first)", "Ctrl+Return")
        self.stop_action = self._tool(bar, "■ Stop", self.stop, "Stop every running cell")
        self.rerun_action = self._tool(bar, "↻ Rerun", self.rerun_selected, "Run the selected cell again, alone")
        self.cell_menu = self._menu_button(bar, "Cell", [])
        self.chat_action = self.cell_menu.addAction("Send to chat")
        self.chat_action.setToolTip("Open the selected cell as a conversation in the main window")
        self.chat_action.triggered.connect(lambda _c=False: self.send_selected_to_chat())
        self.code_action = self.cell_menu.addAction("Copy as code")
        self.code_action.setToolTip("Copy the selected cell's request as a program")
        self.code_action.triggered.connect(lambda _c=False: self.copy_selected_code())
        self.cell_menu.addSeparator()
        for label, language in (("Copy as curl", "curl"), ("Copy as Python (transformers + peft)", "transformers")):
            self.cell_menu.addAction(label).triggered.connect(lambda _c=False, lang=language: self.copy_selected_code(lang))
        self.review_menu = self._menu_button(bar, "Review", [])
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        self.runs_action = self._tool(bar, "Runs", self.toggle_runs, "Show or hide the past runs")
        self.close_action = self._tool(bar, "Close", self.close, "Close the Workbench (Esc)")
        self.quit_action = QAction("Quit", self)  # Ctrl+Q here too: the app quits (an edited grid is asked about)
        self.quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        self.quit_action.triggered.connect(lambda _c=False: self.host.close() if self.host else self.close())
        self.addAction(self.quit_action)
        self.toolbar = bar
        return bar

    def _wire(self) -> None:
        self.model.config_edited.connect(self._on_model_config_edited)
        self.model.modelReset.connect(self.size_rows)
        self.model.edit_failed.connect(lambda msg: self.show_message(msg, "error"))
        self.model.cells_flushed.connect(self._on_model_cells_flushed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._on_selection())
        self.table.horizontalHeader().sectionClicked.connect(self._on_header_clicked)
        self.table.customContextMenuRequested.connect(self._on_table_menu)
        self.variant_editor.variant_edited.connect(self._on_variant_edited)
        self.code.language_changed.connect(lambda _l: self._show_code())
        self.picker.model_selected.connect(self._on_picker_selected)
        self.prompt_edit.textChanged.connect(self._prompt_timer.start)
        self._prompt_timer.timeout.connect(self._on_prompt_edited)
        self.prompt_box.activated.connect(self._on_prompt_chosen)
        self.add_prompt_button.clicked.connect(self.add_prompt)
        self.description.editingFinished.connect(self._on_description_edited)
        self.runs.reopen_requested.connect(self.reopen)
        self.runs.rerun_requested.connect(self.rerun_stored)
        self.runs.export_requested.connect(self.export_stored)
        self.runs.delete_requested.connect(self.delete_stored)
        self._fill_review_menu(self.review_menu)

    # -- helpers the actions use ----------------------------------------------------------------
    def _new_runner(self, config: GridConfig, run_id: str | None = None) -> GridRunner:
        from app.providers.bundled import default_temperature

        return GridRunner(self.services.scheduler, config, sink=self.store, run_id=run_id, origin="window",
                          source=str(self.path) if self.path else None, default_temperature=default_temperature,
                          listener=self.model.on_cell)  # fmt: skip

    def size_columns(self) -> None:
        """Case columns narrow, variant columns share the rest (at least 200 px each; the
        grid scrolls sideways beyond); the footer row is short."""
        header = self.table.horizontalHeader()
        fixed = self.model.fixed
        for col in range(fixed):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(col, 110 if col < fixed - 1 else 130)
        variants = len(self.model.config.variants)
        if variants:
            room = self.table.viewport().width() - sum(header.sectionSize(c) for c in range(fixed))
            fits = room >= VARIANT_MIN_WIDTH * variants
            for v in range(variants):
                mode = QHeaderView.ResizeMode.Stretch if fits else QHeaderView.ResizeMode.Interactive
                header.setSectionResizeMode(fixed + v, mode)
                if not fits:
                    header.resizeSection(fixed + v, VARIANT_MIN_WIDTH)
        self._sync_footer()

    def size_rows(self) -> None:
        """Case rows tall enough for a few lines of answer; the footer's columns follow the grid's."""
        for row in range(len(self.model.rows)):
            self.table.setRowHeight(row, ROW_HEIGHT)
        self._sync_footer()

    def _sync_footer(self) -> None:
        header = self.table.horizontalHeader()
        for col in range(self.model.columnCount()):
            self.footer.setColumnWidth(col, header.sectionSize(col))
        self.footer.verticalHeader().setFixedWidth(self.table.verticalHeader().width())
        self.footer.horizontalScrollBar().setValue(self.table.horizontalScrollBar().value())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        """Re-fit the columns when the grid's width changes."""
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            QTimer.singleShot(0, self.size_columns)
        return super().eventFilter(watched, event)

    def show_message(self, text: str, kind: str = "info") -> None:
        """A line at the bottom (errors in red)."""
        self.message.show_message(text, kind)

    def selected_cells(self) -> list[tuple[int, int]]:
        """Selected (case row, variant) pairs, in selection order of rows then columns."""
        out = []
        for index in self.table.selectionModel().selectedIndexes():
            v = self.model.variant_of(index.column())
            if v is not None and not self.model.is_footer(index.row()):
                out.append((index.row(), v))
        return sorted(out)

    def select_cell(self, row: int, variant: int, *, add: bool = False) -> None:
        """Select a cell as a click (or Ctrl+click with ``add``) would."""
        index = self.model.index(row, self.model.column_of(variant))
        flag = QItemSelectionModel.SelectionFlag.Select if add else QItemSelectionModel.SelectionFlag.ClearAndSelect
        self.table.selectionModel().select(index, flag)
        self.table.setCurrentIndex(index) if not add else None

    def selected_variant(self) -> int | None:
        """The variant of the current cell or column (None: none)."""
        index = self.table.currentIndex()
        v = self.model.variant_of(index.column()) if index.isValid() else None
        return v if v is not None else self.variant_editor.column

    def set_running(self, running: bool) -> None:
        """Lock what cannot change while cells run."""
        self.model.editable = not running
        self.run_action.setEnabled(not running)
        self.stop_action.setEnabled(running)
        self.variant_editor.set_editable(not running)
        for w in (self.prompt_edit, self.description, self.prompt_box, self.add_prompt_button):
            w.setEnabled(not running)
        for menu in (self.variants_menu, self.cases_menu):
            menu.setEnabled(not running)
        self.add_action.setEnabled(not running)

    def toggle_runs(self) -> None:
        """Show or hide the past runs."""
        self.runs.setVisible(not self.runs.isVisible())
        if self.runs.isVisible():
            self.runs.refresh()

    def commit_edits(self) -> None:
        """Take in what is typed but not applied yet: the description (applied when its field
        loses focus), the prompt (applied after a short pause) and a review comment still being
        typed (kept with the run a moment after typing stops)."""
        self._on_description_edited()
        self.review_panel.commit()
        if self._prompt_timer.isActive():
            self._prompt_timer.stop()
            self._on_prompt_edited()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """An edited, unsaved grid: ask first (Save / Discard / Cancel), as an editor does."""
        self.commit_edits()
        if self.dirty:
            event.ignore()
            if self.save_box is None:
                self.ask_to_save(self.close)
            return
        super().closeEvent(event)

    async def aclose(self) -> None:
        """Stop the runs and close the store (the main window is closing)."""
        self.runner.stop()
        try:
            await self.runner.wait()
        finally:
            self.store.close()


def _fits(window: WorkbenchWindow) -> Bench:
    """Never called: mypy checks here that the window is what its operations (the mixins) take
    it for."""
    return window
