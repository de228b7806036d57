"""The arguments of an MCP prompt (or the variables of a resource template), asked before its
server fills it in (or reads the resource).

One line per argument (a required one is marked ``*``; its description is the placeholder and
the tooltip); Insert stays disabled until every required argument has a value. Opened with
``open()`` (never ``exec()`` on the qasync loop, see PITFALLS); ``accepted`` then says to go on.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.tools.mcp_library import McpFillable, McpResourceTemplate


class McpPromptDialog(QDialog):
    """Asks for ``prompt``'s arguments (see the module doc)."""

    def __init__(self, prompt: McpFillable, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt = prompt
        template = prompt.uri_template if isinstance(prompt, McpResourceTemplate) else ""
        self.setWindowTitle(f"MCP {'resource' if template else 'prompt'}: {prompt.label}")
        lay = QVBoxLayout(self)
        head = QLabel(f"<b>{html.escape(prompt.label)}</b> from the MCP server <b>{html.escape(prompt.server)}</b>"
                      + (f"<br><code>{html.escape(template)}</code>" if template else "")
                      + (f"<br>{html.escape(prompt.description)}" if prompt.description else ""), self)  # fmt: skip
        head.setWordWrap(True)
        lay.addWidget(head)
        form = QFormLayout()
        self.fields: dict[str, QLineEdit] = {}
        for arg in prompt.arguments:
            edit = QLineEdit(self)
            edit.setObjectName(f"arg_{arg.name}")
            edit.setPlaceholderText(arg.description or ("required" if arg.required else "optional"))
            edit.setToolTip(arg.description or arg.name)
            edit.textChanged.connect(self._check)
            label = QLabel(arg.name + (" *" if arg.required else ""), self)
            label.setToolTip(arg.description or arg.name)
            form.addRow(label, edit)
            self.fields[arg.name] = edit
        lay.addLayout(form)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, parent=self)
        self.insert_button = self.buttons.addButton("Insert", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.setMinimumWidth(360)
        self._check()

    def values(self) -> dict[str, str]:
        """The arguments as typed."""
        return {name: edit.text() for name, edit in self.fields.items()}

    def _check(self) -> None:
        missing = self.prompt.missing(self.values())
        self.insert_button.setEnabled(not missing)
        self.insert_button.setToolTip(f"Fill in: {', '.join(missing)}" if missing else "")
