"""The Workbench grid as a Qt table model: rows are the test cases (one per prompt x case),
the first columns are the cases' variables and assertions (edited in place), then one
column per variant, whose cells show the runner's :class:`~app.core.grid.cells.Cell`.
:class:`FooterModel` is the one-row table under it (kept in view) with the column footers:
total cost, mean and p95 latency, pass rate.

Streamed changes are coalesced: the runner's listener only marks cells dirty, and one timer
(50 ms) tells the view which cells to repaint, so many streaming cells never flood the GUI.

Signals:
    config_edited(object config): a case's variables or assertions were edited.
    edit_failed(str message): an edit was refused (e.g. an unknown assertion type).
    cells_flushed(object keys): the cells ``{(row, col), ...}`` just repainted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QFont

from app.core.errors import AppError
from app.core.grid.cases import assertion_line, parse_assertion_lines
from app.core.grid.cells import Cell
from app.core.grid.model import GridConfig, Prompt, Row, TestCase, template_vars, var_text
from app.core.grid.review import CellReview, RunReview, blind_label, blind_order
from app.core.grid.runner import GridRunner

CELL_ROLE = Qt.ItemDataRole.UserRole + 1
REVIEW_ROLE = Qt.ItemDataRole.UserRole + 2
"""A variant cell's :class:`~app.core.grid.review.CellReview` (None: not reviewed)."""
BLIND_TIP = "Hidden in blind mode (Review > Reveal shows the variants)"
FLUSH_MS = 50
Index = QModelIndex | QPersistentModelIndex


def variable_names(config: GridConfig) -> list[str]:
    """The variables of a grid: those its prompts use first, then those its cases give."""
    names: dict[str, None] = {}
    for prompt in config.prompts:
        for name in template_vars(prompt.template):
            names.setdefault(name.split(".")[0], None)
    for test in config.tests:
        for name in test.vars:
            names.setdefault(name, None)
    return list(names)


class GridTableModel(QAbstractTableModel):
    """See the module doc."""

    config_edited = Signal(object)
    edit_failed = Signal(str)
    cells_flushed = Signal(object)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.config = GridConfig(prompts=(Prompt(""),))
        self.runner: GridRunner | None = None
        self.rows: list[Row] = self.config.rows()
        self.var_names: list[str] = []
        self.editable = True
        self.review_source: Callable[[], RunReview] | None = None
        """The current run's human review (set by the window)."""
        self.blind_seed: int | None = None
        """Blind mode: the seed of the shuffled column order (None: not blind)."""
        self._order: tuple[tuple[int, int], list[int]] | None = None
        self._dirty: set[tuple[int, int]] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)

    # -- layout --------------------------------------------------------------------------------
    @property
    def fixed(self) -> int:
        """Columns before the variants: the variables, then Asserts."""
        return len(self.var_names) + 1

    def order(self) -> list[int] | None:
        """Blind mode's column order (position -> variant), None when not blind."""
        if self.blind_seed is None:
            return None
        key = (len(self.config.variants), self.blind_seed)
        if self._order is None or self._order[0] != key:
            self._order = (key, blind_order(*key))
        return self._order[1]

    def set_blind(self, seed: int | None) -> None:
        """Shuffle the variant columns by ``seed`` and hide their names (None: reveal)."""
        self.beginResetModel()
        self.blind_seed = seed
        self.endResetModel()

    def variant_of(self, column: int) -> int | None:
        """The variant index shown in model column ``column`` (None: a case column)."""
        v = column - self.fixed
        if not 0 <= v < len(self.config.variants):
            return None
        order = self.order()
        return v if order is None else order[v]

    def column_of(self, variant: int) -> int:
        """The model column of variant ``variant``."""
        order = self.order()
        return self.fixed + (variant if order is None else order.index(variant))

    def variant_name(self, variant: int) -> str:
        """A variant's title, or its neutral name in blind mode (``Variant B``)."""
        if self.blind_seed is not None:
            return blind_label(self.column_of(variant) - self.fixed)
        return self.config.variants[variant].title

    def review(self) -> RunReview | None:
        """The current run's human review."""
        return None if self.review_source is None else self.review_source()

    def cell_review(self, row: int, variant: int) -> CellReview | None:
        """A person's review of a cell."""
        review = self.review()
        return None if review is None else review.get(row, variant)

    def is_footer(self, row: int) -> bool:
        """False: the footers are in :class:`FooterModel` (kept for the delegate's checks)."""
        return row >= len(self.rows)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        """One row per case."""
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        """Variables, Asserts, variants."""
        return 0 if parent.isValid() else self.fixed + len(self.config.variants)

    # -- content -------------------------------------------------------------------------------
    def set_config(self, config: GridConfig, runner: GridRunner | None = None) -> None:
        """Show ``config`` (and ``runner``'s cells)."""
        self.beginResetModel()
        self.config = config
        self.rows = config.rows()
        self.var_names = variable_names(config)
        self.runner = runner
        self._dirty.clear()
        self.endResetModel()

    def set_runner(self, runner: GridRunner | None) -> None:
        """Show ``runner``'s cells (its config is the model's)."""
        self.runner = runner
        self._repaint_all()

    def cell(self, row: int, variant: int) -> Cell | None:
        """The cell at case ``row`` and variant ``variant``."""
        return None if self.runner is None else self.runner.cell(row, variant)

    def on_cell(self, cell: Cell, what: str) -> None:
        """The runner's listener: repaint ``cell`` on the next tick."""
        self._dirty.add(cell.key)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Repaint the dirty cells and the footer."""
        keys, self._dirty = self._dirty, set()
        if not keys:
            return
        for r, v in keys:
            index = self.index(r, self.column_of(v))
            self.dataChanged.emit(index, index)
        self.cells_flushed.emit(keys)

    def _repaint_all(self) -> None:
        if self.rowCount() and self.columnCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, self.columnCount() - 1))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Variables and assertions as text; variant cells as their Cell (CELL_ROLE)."""
        if not index.isValid():
            return None
        r, c = index.row(), index.column()
        variant = self.variant_of(c)
        if self.is_footer(r):
            return None
        row = self.rows[r]
        if variant is not None:
            cell = self.cell(r, variant)
            if role == CELL_ROLE:
                return cell
            if role == REVIEW_ROLE:
                return self.cell_review(r, variant)
            if role == Qt.ItemDataRole.DisplayRole:
                return cell.current_text if cell is not None else ""
            if role == Qt.ItemDataRole.ToolTipRole and cell is not None:
                lines = [cell.figures_line(), *(f"{'✔' if a.passed else '✘'} {a.type}: {a.reason}" for a in cell.asserts)]
                if cell.error:
                    lines.append(cell.error)
                mine = self.cell_review(r, variant)
                if mine is not None:
                    lines.append(f"By hand: {mine.badge()}" + (f" · {mine.comment}" if mine.comment.strip() else ""))
                return "\n".join(line for line in lines if line) or None
            return None
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole, Qt.ItemDataRole.ToolTipRole):
            return None
        if c < len(self.var_names):
            found = row.vars.get(self.var_names[c])
            return var_text(found) if found is not None else ""
        own = "\n".join(assertion_line(a) for a in row.test.asserts)
        if role == Qt.ItemDataRole.ToolTipRole and self.config.default_asserts:
            return (own + "\n" if own else "") + "(every case also checks: " + "; ".join(
                assertion_line(a) for a in self.config.default_asserts) + ")"
        return own

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        """Variable names, Asserts and variant titles; case labels down the side."""
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        if orientation == Qt.Orientation.Vertical:
            row = self.rows[section] if section < len(self.rows) else None
            if row is None:
                return None
            label = row.label if len(self.config.prompts) == 1 else f"{row.label} · prompt {row.prompt_index + 1}"
            return label if role == Qt.ItemDataRole.ToolTipRole else f"{section + 1}"
        variant = self.variant_of(section)
        if variant is not None:
            v = self.config.variants[variant]
            if self.blind_seed is not None:
                return self.variant_name(variant) if role == Qt.ItemDataRole.DisplayRole else BLIND_TIP
            return v.title if role == Qt.ItemDataRole.DisplayRole else f"{v.title}\n{v.model}"
        if section < len(self.var_names):
            return self.var_names[section] if role == Qt.ItemDataRole.DisplayRole else f"variable {{{{{self.var_names[section]}}}}}"
        return "Asserts" if role == Qt.ItemDataRole.DisplayRole else "one per line, e.g. icontains: paris"

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Case cells are editable (when no run is going on); variant cells selectable."""
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if not index.isValid() or self.is_footer(index.row()):
            return Qt.ItemFlag.ItemIsEnabled
        if self.variant_of(index.column()) is None and self.editable:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    # -- editing -------------------------------------------------------------------------------
    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        """Edit a case's variable or its assertions (one per line)."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or self.is_footer(index.row()):
            return False
        if self.variant_of(index.column()) is not None:
            return False
        row = self.rows[index.row()]
        tests = list(self.config.tests) or [TestCase()]
        t_index = row.test_index if row.test_index is not None else 0
        test = tests[t_index]
        text = "" if value is None else str(value)
        if index.column() < len(self.var_names):
            name = self.var_names[index.column()]
            if var_text(test.vars.get(name)) == text:
                return False
            test = TestCase({**dict(test.vars), name: text}, test.asserts, test.description)
        else:
            try:
                asserts = parse_assertion_lines(text, f"Case {index.row() + 1}")
            except AppError as exc:
                self.edit_failed.emit(exc.user_message())
                return False
            if asserts == test.asserts:
                return False
            test = TestCase(test.vars, asserts, test.description)
        tests[t_index] = test
        self.config = self.config.with_(tests=tuple(tests))
        self.rows = self.config.rows()  # same shape: only the edited case's rows change
        self._repaint_all()
        self.config_edited.emit(self.config)
        return True


class FooterModel(QAbstractTableModel):
    """The column footers of a :class:`GridTableModel`: one row, the same columns."""

    def __init__(self, grid: GridTableModel) -> None:
        super().__init__(grid)
        self.grid = grid
        grid.modelReset.connect(self._reset)
        grid.cells_flushed.connect(lambda _keys: self.refresh())
        grid.dataChanged.connect(lambda *_: self.refresh())

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def refresh(self) -> None:
        """Recompute the footers."""
        if self.columnCount():
            self.dataChanged.emit(self.index(0, 0), self.index(0, self.columnCount() - 1))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        """One row."""
        return 0 if parent.isValid() else 1

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        """The grid's columns."""
        return 0 if parent.isValid() else self.grid.columnCount()

    def summary(self, variant: int) -> str:
        """The footer of variant ``variant``."""
        runner = self.grid.runner
        if runner is None or not any(c.ended for c in runner.cells.values() if c.col == variant):
            return "not run"
        review = self.grid.review()
        if review is None:
            return runner.column_summary(variant).sentence()
        win = review.win_rates(len(self.grid.config.variants))[variant]
        return review.summarize((c for c in runner.cells.values() if c.col == variant), win).sentence()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """``$0.0012 · mean 0.42 s · p95 0.80 s · 2/3 pass`` under each variant (a person's
        verdicts counting instead of the checks': ``(1 by hand)``, the mean score, the win rate)."""
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        variant = self.grid.variant_of(index.column())
        if variant is None:
            return "Summary" if index.column() == 0 else None
        return self.summary(variant)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        """Σ down the side."""
        return "Σ" if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Vertical else None
