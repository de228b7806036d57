"""The Tools panel's logic: each send's tools (:meth:`ToolsController.prepare`, the session's
:class:`~app.ui.session_tools.ToolSource`), the MCP servers of the settings (started on the
qasync loop when the panel offers their tools, listed with their state and tools, closed at
quit), the approval of calls to servers that are not trusted (a non-modal dialog: allow once
/ always for this server / deny), the servers' prompts and resources put into the message
being written (a prompt's arguments asked first), and the panel's content kept with presets
and with each conversation (restored on reopen). The panel is made when its dock is first shown: until
then the controller holds its content (:meth:`ToolsController.setup`) and hands it over in
:meth:`ToolsController.attach`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from app.core.errors import ToolError, ToolSchemaError
from app.core.tool_setup import SETUP_KEY, ToolSetup
from app.core.tools import TOOL_CHOICES
from app.ui.controllers.base import Controller
from app.ui.session_tools import ToolRunConfig

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

    from app.core.services import Services
    from app.core.tool_resolvers import Approval
    from app.core.tools import ToolCall
    from app.tools.mcp_client import McpServers, ServerState
    from app.tools.mcp_library import McpFillable, McpPrompt, McpResource, McpResourceTemplate
    from app.ui.session import ChatSession
    from app.ui.widgets.prompt_editor import PromptEditor
    from app.ui.widgets.tools_panel import ToolsPanel

log = logging.getLogger(__name__)
APPROVALS: dict[str, str] = {"once": "allowed once", "always": "always allowed for this server", "deny": "denied"}


class ToolsController(Controller):
    """Between the Tools panel, the session and the MCP servers (see the module doc).

    Signals:
        status(str message, bool error), hint(str message): see :class:`Controller`.
    """

    def __init__(self, services: Services, session: ChatSession, editor: PromptEditor, parent: QWidget) -> None:
        super().__init__(services, parent)
        self.session = session
        self.editor = editor
        self.panel: ToolsPanel | None = None
        self.make_panel: Callable[[], object] | None = None
        """Makes the panel (its dock's content; :meth:`attach` follows) when a send needs it first."""
        self._setup = ToolSetup()
        """The content while there is no panel (a fresh panel shows ``ToolSetup()``)."""
        self.servers: McpServers | None = None
        self.approval_box: QMessageBox | None = None
        """The approval dialog shown now (None: none)."""
        self.prompt_dialog: QWidget | None = None
        """The last dialog that asked for a prompt's arguments."""
        self._approvals: dict[str, str] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        session.tool_source = self

    def connect_sources(self) -> None:
        """Follow the editor's presets and the session's conversations (both keep the tools).
        The owner calls it after the chat controller's slots are connected: a saved preset is
        stored by those first, then this adds its tools."""
        self.editor.preset_box.activated.connect(self._on_editor_preset_chosen)
        self.editor.preset_saved.connect(self._on_editor_preset_saved)
        self.session.conversation_changed.connect(self._on_session_conversation_changed)

    def attach(self, panel: ToolsPanel) -> None:
        """Show and edit the tools in ``panel`` (made now: it takes the content held so far)."""
        self.panel = panel
        if self._setup != panel.setup():
            panel.set_setup(self._setup)
        panel.mcp_toggled.connect(self._on_panel_mcp_toggled)
        panel.insert_prompt.connect(self.insert_prompt)
        panel.insert_resource.connect(self.insert_resource)
        panel.insert_template.connect(self.insert_template)
        panel.start_requested.connect(self._on_panel_start)
        self.refresh_servers()

    def setup(self) -> ToolSetup:
        """The Tools panel's content. Until the panel is made, the content held for it; when
        that is not the default, the panel is made now, so that a send sees what the panel
        shows (it evens out, e.g., a ``tool_choice`` no function has, or a step limit over 100)."""
        if self.panel is None and self._setup != ToolSetup() and self.make_panel is not None:
            self.make_panel()
        return self._shown()

    def _shown(self) -> ToolSetup:
        return self.panel.setup() if self.panel is not None else self._setup

    def set_setup(self, setup: ToolSetup) -> None:
        """Show ``setup`` in the panel (or hold it for the panel until it is made)."""
        if self.panel is not None:
            self.panel.set_setup(setup)
        else:
            self._setup = setup

    # -- each send (the session's ToolSource) --------------------------------------------------
    def prepare(self) -> ToolRunConfig:
        """The next send's tools; raises ToolSchemaError naming the function or schema at fault."""
        setup = self.setup()
        specs = list(setup.specs())
        servers = self.start_servers() if setup.use_mcp else None
        if servers is not None:
            names = {s.name for s in specs}
            specs += [s for s in servers.tools() if s.name not in names]
        choice = setup.tool_choice
        if choice not in TOOL_CHOICES and choice not in {s.name for s in specs}:
            raise ToolSchemaError(f"tool_choice: no offered function is called '{choice}'.",
                                  hint="Pick auto, or a function that is on.")  # fmt: skip
        return ToolRunConfig(tuple(specs), setup.stubs(), choice, setup.max_steps or self.services.settings.max_tool_steps,
                             setup.response_schema(), servers, self.approve, setup.to_json())  # fmt: skip

    def approval_of(self, call_id: str) -> str | None:
        """What the user answered when asked about ``call_id`` (None: not asked)."""
        return self._approvals.get(call_id)

    async def approve(self, call: ToolCall, server: str) -> Approval:
        """Ask whether ``call`` may run on ``server`` (a non-modal dialog; closing it denies)."""
        from PySide6.QtWidgets import QMessageBox  # its type and enums are made on first use

        box = QMessageBox(QMessageBox.Icon.Question, "Run an MCP tool?",
                          f"The model calls <b>{call.name}</b> on the MCP server <b>{server}</b>.",
                          QMessageBox.StandardButton.NoButton, self.widget)  # fmt: skip
        box.setInformativeText(f"Arguments: {call.arguments[:600] or '{}'}")
        buttons: dict[Approval, QPushButton] = {"once": box.addButton("Allow once", QMessageBox.ButtonRole.AcceptRole),
                   "always": box.addButton("Always for this server", QMessageBox.ButtonRole.YesRole),
                   "deny": box.addButton("Deny", QMessageBox.ButtonRole.RejectRole)}  # fmt: skip
        box.setDefaultButton(buttons["deny"])
        box.setEscapeButton(buttons["deny"])
        answered: asyncio.Future[Approval] = asyncio.get_event_loop().create_future()

        def finished(_code: int) -> None:
            clicked = box.clickedButton()
            choice: Approval = "deny"
            for key, button in buttons.items():
                if button is clicked:
                    choice = key
            if not answered.done():
                answered.set_result(choice)

        box.finished.connect(finished)
        self.approval_box = box
        box.open()  # never exec() in a coroutine (PITFALLS: qasync)
        try:
            answer = await answered
        finally:
            self.approval_box = None
            if box.isVisible():  # the run was stopped while asking
                box.close()
            box.deleteLater()
        self._approvals[call.id] = APPROVALS[answer]
        return answer

    # -- MCP servers ------------------------------------------------------------------------------
    def start_servers(self) -> McpServers:
        """The MCP servers of the settings, started (in the background) the first time."""
        if self.servers is None:
            from app.tools.mcp_client import McpServers

            self.servers = McpServers(self.services.settings.mcp_servers, self.services.secrets,
                                      on_state=self._on_server_state)  # fmt: skip
            self._spawn(self._start(self.servers))
        return self.servers

    async def _start(self, servers: McpServers) -> None:
        servers.start()
        await servers.wait_started()
        self.refresh_servers()

    def _spawn(self, coro: Coroutine[object, None, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def refresh_servers(self) -> None:
        """Show each configured server with its state and tools."""
        if self.panel is None:
            return
        configs = [c for c in self.services.settings.mcp_servers if c.enabled]
        if self.servers is None:
            rows: list[tuple[str, str, list[tuple[str, str]]]] = [(c.name, "not started", []) for c in configs]
            self.panel.set_servers(rows, "Start them to use their prompts and resources, or turn on \u201cOffer the "
                                   "MCP servers' tools\u201d to also offer their tools." if configs else "",
                                   startable=bool(configs))  # fmt: skip
            return
        servers = self.servers
        tools = servers.tools()
        rows = [(s.name, str(s), [(t.name, t.description) for t in tools if servers.server_of(t.name) == s.name])
                for s in servers.states()]  # fmt: skip
        self.panel.set_servers(rows, " ".join(servers.notes()), servers.prompts(), servers.resources(),
                               servers.resource_templates())  # fmt: skip

    # -- prompts and resources into the message ---------------------------------------------------
    def insert_prompt(self, prompt: McpPrompt) -> None:
        """Ask for ``prompt``'s arguments (when it has any), have its server fill it in, and put
        the text into the message at the cursor."""

        async def fill(servers: McpServers, values: dict[str, str]) -> tuple[str, str]:
            text, roles = await servers.get_prompt(prompt, values)
            many = f" ({len(roles)} messages: {', '.join(roles)})" if len(roles) > 1 else ""
            return text, f"the prompt '{prompt.name}' from '{prompt.server}'{many}"

        asking = f"Asking the MCP server '{prompt.server}' for the prompt '{prompt.name}'\u2026"
        if not prompt.arguments:
            self._spawn(self._insert(asking, lambda servers: fill(servers, {})))
        else:
            self._ask_then(prompt, asking, fill)

    def insert_resource(self, resource: McpResource) -> None:
        """Have ``resource`` read by its server and put its text into the message at the cursor."""

        async def read(servers: McpServers) -> tuple[str, str]:
            return await servers.read_resource(resource), f"'{resource.uri}' from '{resource.server}'"

        self._spawn(self._insert(f"Reading '{resource.uri}' from the MCP server '{resource.server}'\u2026", read))

    def insert_template(self, template: McpResourceTemplate) -> None:
        """Ask for ``template``'s variables, have its server read that resource, and put the
        text into the message at the cursor."""

        async def read(servers: McpServers, values: dict[str, str]) -> tuple[str, str]:
            uri, text = await servers.read_template(template, values)
            return text, f"'{uri}' from '{template.server}'"

        self._ask_then(template, f"Reading from '{template.uri_template}' on the MCP server '{template.server}'\u2026",
                       read)  # fmt: skip

    def _ask_then(self, offer: McpFillable, asking: str, get: Callable[[McpServers, dict[str, str]], Awaitable[tuple[str, str]]]) -> None:
        """Ask for ``offer``'s arguments in a dialog; on Insert, :meth:`_insert` what ``get`` gives for them."""
        from app.ui.widgets.mcp_prompt_dialog import McpPromptDialog

        dialog = McpPromptDialog(offer, self.widget)
        self.prompt_dialog = dialog

        def accepted() -> None:
            values = dialog.values()  # now: the dialog is gone when the request runs
            self._spawn(self._insert(asking, lambda servers: get(servers, values)))

        dialog.accepted.connect(accepted)
        dialog.finished.connect(lambda _code: dialog.deleteLater())
        dialog.open()  # never exec() on the qasync loop (PITFALLS)

    async def _insert(self, asking: str, get: Callable[[McpServers], Awaitable[tuple[str, str]]]) -> None:
        """Say ``asking``, then put the text of ``get(servers)`` (text, what it is) into the
        message; a ToolError is said instead (the message stays as it was)."""
        servers = self.servers
        if servers is None:
            return
        self.say(asking)
        try:
            text, what = await get(servers)
        except ToolError as exc:
            self.say(exc.user_message(), error=True)
            return
        self._put(text, what)

    def _put(self, text: str, what: str) -> None:
        """Insert ``text`` at the message's cursor, a blank line between it and the text
        around it, cut to MAX_INSERT_CHARS; the status line says what went in."""
        from app.tools.mcp_library import MAX_INSERT_CHARS, bounded

        text, cut = bounded(text)
        edit = self.editor.message_edit
        cursor = edit.textCursor()
        whole = edit.toPlainText()
        before, after = whole[: cursor.position()], whole[cursor.position() :]
        if before and not before.endswith("\n\n"):
            text = ("\n" if before.endswith("\n") else "\n\n") + text
        if after and not after.startswith("\n"):
            text += "\n\n"
        cursor.insertText(text)
        edit.setTextCursor(cursor)
        edit.setFocus()
        if cut:
            self.say(f"Inserted {what}, cut to its first {MAX_INSERT_CHARS:,} characters ({cut:,} more were left "
                     "out).", error=True)  # fmt: skip
        else:
            self.say(f"Inserted {what} into the message.")

    def _on_server_state(self, _state: ServerState) -> None:
        self.refresh_servers()

    async def aclose(self) -> None:
        """Stop the MCP servers (at quit)."""
        if self.approval_box is not None:
            self.approval_box.close()
        servers, self.servers = self.servers, None
        if servers is not None:
            await servers.aclose()

    # -- presets and conversations ----------------------------------------------------------------
    def _on_panel_start(self) -> None:
        self.start_servers()
        self.refresh_servers()

    def _on_panel_mcp_toggled(self, on: bool) -> None:
        if on:
            self.start_servers()
            self.refresh_servers()

    def _on_editor_preset_chosen(self, index: int) -> None:
        if index <= 0:
            return
        name = self.editor.preset_box.itemText(index)
        preset = next((p for p in self.services.settings.presets if p.name == name), None)
        if preset is not None and preset.tools is not None:
            self.set_setup(ToolSetup.from_json(preset.tools))

    def _on_editor_preset_saved(self, name: str, _params: object, _system: str) -> None:
        preset = next((p for p in self.services.settings.presets if p.name == name), None)
        if preset is not None:
            preset.tools = self.setup().to_json()
            self.save_settings()

    def _on_session_conversation_changed(self, conversation_id: str | None) -> None:
        conv = self.services.history.get_conversation(conversation_id) if conversation_id else None
        stored = conv.params.get(SETUP_KEY) if conv is not None else None
        if stored is not None:
            setup = ToolSetup.from_json(stored)
            if setup != self._shown():
                self.set_setup(setup)
                if setup.use_mcp:
                    self.start_servers()
                    self.refresh_servers()
