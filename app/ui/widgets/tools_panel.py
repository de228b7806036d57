"""The Tools panel (a dock tabbed with LoRA adapters and Usage): what a send offers the model
and what shape it asks for, in three tabs that fit a 1024 x 700 window:

- **Functions**: the list (each on or off), Add / Remove, the selected function's definition
  in a JSON editor checked as you type (:func:`~app.core.tool_setup.check_function`: an
  inline error naming the tool and the JSON path), its stub result, ``tool_choice`` (auto /
  none / required / a function) and the step limit;
- **MCP**: "Offer the MCP servers' tools" and the servers from the settings with their
  state (starting, ready with N tools, failed: why), their tools, prompts and resources; a
  prompt or resource goes into the message being written with "Insert into message" (or a
  double-click);
- **Schema**: the response schema (a JSON Schema, checked as you type) or JSON mode.

Its content is a :class:`~app.core.tool_setup.ToolSetup` (:meth:`ToolsPanel.setup`,
:meth:`ToolsPanel.set_setup`).

Signals:
    changed(): the content changed (typed text included).
    mcp_toggled(bool on): "Offer the MCP servers' tools" was switched.
    insert_prompt(McpPrompt prompt), insert_resource(McpResource resource),
        insert_template(McpResourceTemplate template): the user asked to put it into the message.
    start_requested(): "Start servers" was clicked (start them without offering their tools).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError
from app.core.tool_setup import (
    NEW_FUNCTION,
    FunctionEntry,
    ToolSetup,
    check_function,
    check_response_schema,
)
from app.core.tools import TOOL_CHOICES
from app.tools.mcp_library import McpPrompt, McpResource, McpResourceTemplate
from app.ui.widgets.tool_card import ERROR_STYLE, OK_STYLE

SCHEMA_EXAMPLE = ('{\n  "type": "object",\n  "properties": {"answer": {"type": "string"}},\n'
                  '  "required": ["answer"]\n}')  # fmt: skip


def _editor(parent: QWidget, placeholder: str, lines: int) -> QPlainTextEdit:
    edit = QPlainTextEdit(parent)
    edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    edit.setPlaceholderText(placeholder)
    edit.setTabChangesFocus(True)
    edit.setMinimumHeight(edit.fontMetrics().lineSpacing() * lines + 10)
    return edit


def _verdict_label(page: QWidget, lay: QVBoxLayout, name: str) -> QLabel:
    """A wrapping label named ``name`` at the end of ``lay``, for :func:`_verdict`."""
    label = QLabel(page)
    label.setObjectName(name)
    label.setWordWrap(True)
    lay.addWidget(label)
    return label


def _verdict(label: QLabel, error: str | None, ok: str) -> None:
    label.setText(error or ok)
    label.setStyleSheet(ERROR_STYLE if error else OK_STYLE)
    label.setVisible(bool(error or ok))


class ToolsPanel(QWidget):
    """Functions, stub results, MCP servers and the response schema (see the module doc)."""

    changed = Signal()
    mcp_toggled = Signal(bool)
    insert_prompt = Signal(object)
    insert_resource = Signal(object)
    insert_template = Signal(object)
    start_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolsPanel")
        self._entries: list[FunctionEntry] = []
        self._loading = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        lay.addWidget(self.tabs)
        self.tabs.addTab(self._build_functions(), "Functions")
        self.tabs.addTab(self._build_mcp(), "MCP")
        self.tabs.addTab(self._build_schema(), "Schema")
        self._show_entry()

    # -- building -----------------------------------------------------------------------------
    def _build_functions(self) -> QWidget:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.setSpacing(4)
        self.function_list = QListWidget(page)
        self.function_list.setMaximumHeight(86)
        self.function_list.setToolTip("The functions the model may call; unchecked ones are not offered")
        self.function_list.currentRowChanged.connect(lambda _r: self._show_entry())
        self.function_list.itemChanged.connect(self._on_item_changed)
        lay.addWidget(self.function_list)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add", page)
        self.add_button.setToolTip("A new function in OpenAI's format (edit its JSON below)")
        self.add_button.clicked.connect(lambda: self.add_function())
        self.remove_button = QPushButton("Remove", page)
        self.remove_button.clicked.connect(lambda: self.remove_function())
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.function_edit = _editor(page, 'Select or add a function: {"type": "function", "function": {...}}', 5)
        self.function_edit.textChanged.connect(self._on_function_text)
        lay.addWidget(self.function_edit, 3)
        self.function_error = _verdict_label(page, lay, "functionError")
        stub_label = QLabel("Stub result (sent back for every call of this function):", page)
        stub_label.setWordWrap(True)
        lay.addWidget(stub_label)
        self.stub_edit = _editor(page, "Text or JSON, e.g. {\"temp\": 21}; empty: an MCP server answers, "
                                 "or the run stops at the call", 2)  # fmt: skip
        self.stub_edit.textChanged.connect(self._on_stub_text)
        lay.addWidget(self.stub_edit, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Tool choice", page))
        self.choice_box = QComboBox(page)
        self.choice_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.choice_box.setMinimumContentsLength(6)
        self.choice_box.setToolTip("auto: the model decides; none: no calls; required: some call; "
                                   "a function: that one (the first step only)")
        self.choice_box.currentTextChanged.connect(lambda _t: self._emit())
        row.addWidget(self.choice_box, 1)
        row.addWidget(QLabel("Steps", page))
        self.steps_box = QSpinBox(page)
        self.steps_box.setRange(0, 100)
        self.steps_box.setSpecialValueText("default")
        self.steps_box.setToolTip("Model requests per answer at most (default: the max_tool_steps setting)")
        self.steps_box.valueChanged.connect(lambda _v: self._emit())
        row.addWidget(self.steps_box)
        lay.addLayout(row)
        self._fill_choices()
        return page

    def _page(self, check: str, tip: str, slot: Callable[[bool], object]) -> tuple[QWidget, QVBoxLayout, QCheckBox]:
        """A tab's page, its layout and the check box that heads it."""
        page = QWidget(self)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(2, 4, 2, 2)
        box = QCheckBox(check, page)
        box.setToolTip(tip)
        box.toggled.connect(slot)
        lay.addWidget(box)
        return page, lay, box

    def _build_mcp(self) -> QWidget:
        page, lay, self.mcp_check = self._page(
            "Offer the MCP servers' tools", "Start the MCP servers of the settings (mcp_servers) and offer their "
            "tools; a server that is not trusted asks before each call", self._on_mcp_toggled)
        self.server_tree = QTreeWidget(page)
        self.server_tree.setHeaderLabels(["Server / tool", "State"])
        self.server_tree.setRootIsDecorated(True)
        self.server_tree.setColumnWidth(0, 150)
        self.server_tree.currentItemChanged.connect(lambda _now, _before: self._on_server_item())
        self.server_tree.itemDoubleClicked.connect(lambda item, _col: self._insert(item))
        lay.addWidget(self.server_tree, 1)
        row = QHBoxLayout()
        self.insert_button = QPushButton("Insert into message", page)
        self.insert_button.setToolTip("Put the selected prompt (filled in by its server) or resource into the "
                                      "message you are writing, at the cursor")  # fmt: skip
        self.insert_button.setEnabled(False)
        self.insert_button.clicked.connect(lambda: self._insert(self.server_tree.currentItem()))
        row.addWidget(self.insert_button)
        row.addStretch(1)
        self.start_button = QPushButton("Start servers", page)
        self.start_button.setToolTip("Start the MCP servers to use their prompts and resources, without offering "
                                     "their tools to the model")  # fmt: skip
        self.start_button.clicked.connect(self.start_requested)
        self.start_button.setVisible(False)  # shown by set_servers while there are servers to start
        row.addWidget(self.start_button)
        lay.addLayout(row)
        self.mcp_note = QLabel(page)
        self.mcp_note.setWordWrap(True)
        lay.addWidget(self.mcp_note)
        return page

    def _build_schema(self) -> QWidget:
        page, lay, self.schema_check = self._page(
            "Ask for structured output", "The answer must be JSON that follows the schema below (checked: a "
            "valid / invalid badge on the answer)", lambda _on: self._on_schema_changed())
        self.json_mode_check = QCheckBox("JSON mode (any JSON object, no schema)", page)
        self.json_mode_check.toggled.connect(self._on_schema_changed)
        lay.addWidget(self.json_mode_check)
        self.schema_edit = _editor(page, SCHEMA_EXAMPLE, 6)
        self.schema_edit.textChanged.connect(self._on_schema_changed)
        lay.addWidget(self.schema_edit, 1)
        self.schema_error = _verdict_label(page, lay, "schemaError")
        return page

    # -- the content ----------------------------------------------------------------------------
    def setup(self) -> ToolSetup:
        """What the panel holds now."""
        choice = self.choice_box.currentText() or "auto"
        return ToolSetup(tuple(self._entries), choice, self.steps_box.value() or None, self.schema_check.isChecked(),
                         self.schema_edit.toPlainText(), self.json_mode_check.isChecked(),
                         self.mcp_check.isChecked())  # fmt: skip

    def set_setup(self, setup: ToolSetup) -> None:
        """Show ``setup`` (a preset's, a reopened conversation's)."""
        self._loading = True
        try:
            self._entries = list(setup.functions)
            self.function_list.clear()
            for entry in self._entries:
                self.function_list.addItem(self._item(entry))
            self.function_list.setCurrentRow(0 if self._entries else -1)
            self.steps_box.setValue(setup.max_steps or 0)
            self.schema_check.setChecked(setup.schema_on)
            self.json_mode_check.setChecked(setup.json_mode)
            self.schema_edit.setPlainText(setup.schema_text)
            self.mcp_check.setChecked(setup.use_mcp)
            self._fill_choices(setup.tool_choice)
        finally:
            self._loading = False
        self._show_entry()
        self._on_schema_changed()
        self._emit()

    def add_function(self, text: str = NEW_FUNCTION) -> None:
        """Add a function (``text``: its definition) and select it for editing."""
        entry = FunctionEntry(text)
        self._entries.append(entry)
        self.function_list.addItem(self._item(entry))
        self.function_list.setCurrentRow(len(self._entries) - 1)
        self._fill_choices()
        self._emit()

    def remove_function(self) -> None:
        """Remove the selected function."""
        row = self.function_list.currentRow()
        if 0 <= row < len(self._entries):
            del self._entries[row]
            self.function_list.takeItem(row)
            self._fill_choices()
            self._show_entry()
            self._emit()

    def set_servers(self, rows: Sequence[tuple[str, str, Sequence[tuple[str, str]]]], note: str = "",
                    prompts: Sequence[McpPrompt] = (), resources: Sequence[McpResource] = (),
                    templates: Sequence[McpResourceTemplate] = (), startable: bool = False) -> None:  # fmt: skip
        """The MCP servers: (name, state, [(tool, description)]) each, with the ``prompts``,
        ``resources`` and resource ``templates`` they offer under them; ``note`` below;
        ``startable``: they are not started yet (Start servers is shown)."""
        self.start_button.setVisible(startable)
        self.server_tree.clear()
        for name, state, tools in rows:
            item = QTreeWidgetItem([name, state])
            item.setToolTip(1, state)
            if state.startswith("failed"):
                item.setForeground(1, self.palette().brush(self.foregroundRole()).color().fromRgb(0xC6, 0x28, 0x28))
            for tool, description in tools:
                child = QTreeWidgetItem([tool, ""])
                child.setToolTip(0, description or tool)
                item.addChild(child)
            self._add_group(item, "Prompts", [p for p in prompts if p.server == name])
            self._add_group(item, "Resources", [r for r in resources if r.server == name])
            self._add_group(item, "Templates", [t for t in templates if t.server == name])
            self.server_tree.addTopLevelItem(item)
            item.setExpanded(True)
            for i in range(item.childCount()):  # the groups (expanding works once in the tree)
                group = item.child(i)
                if group is not None:
                    group.setExpanded(group.childCount() > 0)
        self._on_server_item()
        if not rows:
            note = note or "No MCP servers in the settings (mcp_servers in settings.json)."
        self.mcp_note.setText(note)

    # -- internals ------------------------------------------------------------------------------
    def _add_group(self, server: QTreeWidgetItem, title: str,
                   entries: Sequence[McpPrompt | McpResource | McpResourceTemplate]) -> None:  # fmt: skip
        """A "Prompts", "Resources" or "Templates" (resource templates) branch under ``server``
        (none when it offers none)."""
        if not entries:
            return
        group = QTreeWidgetItem([f"{title} ({len(entries)})", ""])
        if title == "Templates":
            group.setToolTip(0, "Resource templates: URIs with variables, asked for before the resource is read")
        for entry in entries:
            if isinstance(entry, McpPrompt):
                args = ", ".join(a.name + ("*" if a.required else "") for a in entry.arguments)
                child = QTreeWidgetItem([entry.label, "prompt"])
                tip = "\n".join(t for t in (entry.description, f"Arguments: {args}" if args else "") if t)
            elif isinstance(entry, McpResourceTemplate):
                child = QTreeWidgetItem([entry.label, "template"])
                tip = "\n".join(t for t in (entry.uri_template, entry.description) if t)
            else:
                child = QTreeWidgetItem([entry.label, entry.mime_type or "resource"])
                tip = "\n".join(t for t in (entry.uri, entry.description) if t)
            child.setToolTip(0, tip or child.text(0))
            child.setData(0, Qt.ItemDataRole.UserRole, entry)
            group.addChild(child)
        server.addChild(group)

    @staticmethod
    def _entry(item: QTreeWidgetItem | None) -> Any:
        """The prompt or resource behind a tree item (None for a server, tool or group)."""
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def _on_server_item(self) -> None:
        entry = self._entry(self.server_tree.currentItem())
        self.insert_button.setEnabled(isinstance(entry, McpPrompt | McpResource | McpResourceTemplate))

    def _insert(self, item: QTreeWidgetItem | None) -> None:
        entry = self._entry(item)
        if isinstance(entry, McpPrompt):
            self.insert_prompt.emit(entry)
        elif isinstance(entry, McpResource):
            self.insert_resource.emit(entry)
        elif isinstance(entry, McpResourceTemplate):
            self.insert_template.emit(entry)

    def _item(self, entry: FunctionEntry) -> QListWidgetItem:
        item = QListWidgetItem(entry.name())
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if entry.enabled else Qt.CheckState.Unchecked)
        return item

    def _fill_choices(self, choice: str | None = None) -> None:
        current = choice or self.choice_box.currentText() or "auto"
        names = [e.name() for e in self._entries if e.name() != "?"]
        self.choice_box.blockSignals(True)
        self.choice_box.clear()
        self.choice_box.addItems([*TOOL_CHOICES, *names])
        self.choice_box.setCurrentText(current if current in (*TOOL_CHOICES, *names) else "auto")
        self.choice_box.blockSignals(False)

    def _current(self) -> int:
        row = self.function_list.currentRow()
        return row if 0 <= row < len(self._entries) else -1

    def _show_entry(self) -> None:
        row = self._current()
        entry = self._entries[row] if row >= 0 else None
        for edit, text in ((self.function_edit, entry.text if entry else ""), (self.stub_edit, entry.stub if entry else "")):
            edit.blockSignals(True)
            edit.setPlainText(text)
            edit.blockSignals(False)
            edit.setEnabled(entry is not None)
        self.remove_button.setEnabled(entry is not None)
        self._check_function()

    def _check_function(self) -> None:
        row = self._current()
        if row < 0:
            _verdict(self.function_error, None, "")
            return
        try:
            spec = check_function(self._entries[row].text, f"function {row + 1}")
        except AppError as exc:
            _verdict(self.function_error, exc.message, "")
        else:
            _verdict(self.function_error, None, f"\u2713 '{spec.name}' is a valid function")

    def _on_function_text(self) -> None:
        row = self._current()
        if row < 0:
            return
        self._entries[row] = FunctionEntry(self.function_edit.toPlainText(), self._entries[row].enabled,
                                           self._entries[row].stub)  # fmt: skip
        item = self.function_list.item(row)
        self.function_list.blockSignals(True)
        item.setText(self._entries[row].name())
        self.function_list.blockSignals(False)
        self._check_function()
        self._fill_choices()
        self._emit()

    def _on_stub_text(self) -> None:
        row = self._current()
        if row >= 0:
            e = self._entries[row]
            self._entries[row] = FunctionEntry(e.text, e.enabled, self.stub_edit.toPlainText())
            self._emit()

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        row = self.function_list.row(item)
        if 0 <= row < len(self._entries):
            e = self._entries[row]
            self._entries[row] = FunctionEntry(e.text, item.checkState() == Qt.CheckState.Checked, e.stub)
            self._emit()

    def _on_schema_changed(self) -> None:
        on, json_mode = self.schema_check.isChecked(), self.json_mode_check.isChecked()
        self.json_mode_check.setEnabled(on)
        self.schema_edit.setEnabled(on and not json_mode)
        if not on or json_mode:
            _verdict(self.schema_error, None, "JSON mode: the answer must be a JSON object." if on else "")
        elif not self.schema_edit.toPlainText().strip():
            _verdict(self.schema_error, "response schema: empty; write a JSON Schema or turn on JSON mode.", "")
        else:
            try:
                check_response_schema(self.schema_edit.toPlainText())
            except AppError as exc:
                _verdict(self.schema_error, exc.message, "")
            else:
                _verdict(self.schema_error, None, "\u2713 a valid JSON Schema")
        self._emit()

    def _on_mcp_toggled(self, on: bool) -> None:
        self._emit()
        if not self._loading:
            self.mcp_toggled.emit(on)

    def _emit(self) -> None:
        if not self._loading:
            self.changed.emit()
