"""The main window: toolbar with the model picker, history sidebar, streaming transcript,
prompt editor, and docks for the live dashboard and the LoRA panel. Talks only to the
:class:`BackendManager`; conversation persistence lives in :class:`ChatSession`.

The window builds the widgets and composes small controllers (:mod:`app.ui.controllers`) that
hold the logic: the model, the chat, the open conversation, the dialogs, the request counter.
:meth:`MainWindow._wire` connects them all in one place. The Workbench sees the window only as
its :class:`~app.ui.workbench.host.WorkbenchHost`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QSize, Qt, Signal, SignalInstance
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.providers.bundled import default_temperature
from app.ui import theme as theme_mod
from app.ui.wiring import connect_slots

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.controllers.chat import ChatController
    from app.ui.controllers.conversations import ConversationController
    from app.ui.controllers.counter import RequestCounter
    from app.ui.controllers.dialogs import DialogController
    from app.ui.controllers.models import ModelController
    from app.ui.controllers.server import ServerController
    from app.ui.controllers.tools import ToolsController
    from app.ui.session import ChatSession
    from app.ui.widgets.dashboard import DashboardDock
    from app.ui.widgets.find_bar import FindBar
    from app.ui.widgets.history_sidebar import HistorySidebar
    from app.ui.widgets.lora_panel import LoraPanel
    from app.ui.widgets.server_panel import ServerPanel
    from app.ui.widgets.tools_panel import ToolsPanel
    from app.ui.window_docks import LazyDock


class MainWindow(QMainWindow):
    """The app window. ``restore`` reopens the last conversation.

    Signals:
        closed(): the window was closed (launch then shuts the services down).
    """

    closed = Signal()

    @staticmethod
    def _default_size() -> QSize:
        """1480 x 900, or the screen's free area when that is smaller (a laptop)."""
        from app.ui.widgets.common import fit_to_screen

        return fit_to_screen(QSize(1480, 900))

    @staticmethod
    def screen_is_small() -> bool:
        """True when the screen's free area is smaller than the default size (then the window
        opens maximized: with its frame it would not fit)."""
        screen = QGuiApplication.primaryScreen()
        if screen is None or QGuiApplication.platformName() == "offscreen":
            return False
        free = screen.availableGeometry().size()
        return free.width() < 1480 or free.height() < 900

    def __init__(self, services: Services | None = None, *, backend: BackendManager | None = None,
                 restore: bool = True, build: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme_mod.current()
        self.setWindowTitle("LLM Playground")
        self.resize(self._default_size())
        self.services: Services = None  # type: ignore[assignment]  # set by attach()
        self.backend: BackendManager = None  # type: ignore[assignment]
        self.session: ChatSession = None  # type: ignore[assignment]
        self.dashboard: DashboardDock | None = None
        self.sidebar: HistorySidebar | None = None
        self.lora_dock: LazyDock | None = None
        self.tools_dock: LazyDock | None = None
        self.server_dock: LazyDock | None = None
        self.tools: ToolsController = None  # type: ignore[assignment]
        self.chat: ChatController = None  # type: ignore[assignment]  # the controllers: made by attach()
        self.conversations: ConversationController = None  # type: ignore[assignment]
        self.models: ModelController = None  # type: ignore[assignment]
        self.dialog_control: DialogController = None  # type: ignore[assignment]
        self.counter: RequestCounter = None  # type: ignore[assignment]
        self.server_control: ServerController = None  # type: ignore[assignment]
        self.dialogs: dict[str, Any] = {}
        """The open dialogs and side windows by name ("keys", "settings", "compare", "workbench")."""
        self._built = False
        self._find_bar: FindBar | None = None
        self._hint = ""
        """The status message that goes at the next action (see :meth:`show_hint`)."""
        if build or services is not None:
            self.build()
        if services is not None:
            self.attach(services, backend=backend, restore=restore)

    def build(self) -> None:
        """Create the widgets (launch shows the bare frame first and builds right after)."""
        if self._built:
            return
        self._built = True
        from app.ui.widgets.model_picker import ModelPicker
        from app.ui.widgets.prompt_editor import PromptEditor
        from app.ui.widgets.transcript import TranscriptView

        self.transcript = TranscriptView(self, self.theme.code)
        self.editor = PromptEditor(self)
        central = QWidget(self)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.transcript, 1)  # the find bar goes between them when first asked for
        lay.addWidget(self.editor)
        self._column = lay
        self.setCentralWidget(central)
        self.picker = ModelPicker(self)
        self._build_actions()
        self._build_status()
        if self.services is None:  # until attach(): visible but not clickable
            central.setEnabled(False)
            self.picker.setEnabled(False)
            for act in self._service_actions:
                act.setEnabled(False)
            self.show_status("Starting…")

    def attach(self, services: Services, *, backend: BackendManager | None = None, restore: bool = True) -> None:
        """Connect the window to the services (the shell is usable from here on)."""
        self.build()
        from app.ui.backend_manager import BackendManager
        from app.ui.session import ChatSession

        self.services = services
        if backend is None:
            model, endpoint = services.start_model()  # the one used last: no keyring at start
            backend = BackendManager(services, self, model_id=model)
            backend.selection.endpoint = endpoint
            services.settings.last_model = services.settings.last_model or model  # saved on close
        self.backend = backend
        self.session = ChatSession(self.backend, self.transcript, self)
        self._build_controllers()
        self.picker.set_current(self.backend.current_model(), self.backend.current_endpoint())
        self.editor.suggest_temperature(default_temperature(self.backend.current_model()))
        from app.ui.window_docks import build_docks

        docks = build_docks(self, self.view_menu, services, self.backend, self.server_control)
        self.sidebar, self.dashboard, self.lora_dock = docks.sidebar, docks.dashboard, docks.lora_dock
        self.tools_dock, self.server_dock = docks.tools_dock, docks.server_dock
        self._wire()
        self.editor.set_presets(services.settings.presets)
        self.editor.set_counter(self.counter)  # once wired: its first count starts from here
        self.editor.set_enter_sends(services.settings.ui.enter_sends)
        central = self.centralWidget()
        if central is not None:
            central.setEnabled(True)
        self.picker.setEnabled(True)
        for act in self._service_actions:
            act.setEnabled(act is not self.stop_action)
        self.show_status("")
        if restore and services.settings.last_conversation_id:
            self.open_conversation(services.settings.last_conversation_id)

    # -- building -------------------------------------------------------------------------------
    def _build_controllers(self) -> None:
        from app.ui.controllers.chat import ChatController
        from app.ui.controllers.conversations import ConversationController
        from app.ui.controllers.counter import RequestCounter
        from app.ui.controllers.dialogs import DialogController
        from app.ui.controllers.models import ModelController

        services, backend, session, editor = self.services, self.backend, self.session, self.editor
        self.chat = ChatController(services, backend, session, editor, self.transcript, self)
        self.conversations = ConversationController(services, backend, session, editor, self)
        self.models = ModelController(services, backend, session, self.picker, self.progress, self)
        self.dialog_control = DialogController(services, backend, session, editor, self.dialogs, self)
        self.counter = RequestCounter(services, backend, session)
        from app.ui.controllers.tools import ToolsController

        self.tools = ToolsController(services, session, editor, self)
        from app.ui.controllers.server import ServerController

        self.server_control = ServerController(services, backend, self)
        # (a later concern adds its controller here)

    def _action(self, text: str, slot: Callable[[], object] | None = None,
                shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None, tip: str = "") -> QAction:
        """A window action; one that needs the services gets its slot in :meth:`_wire`."""
        act = QAction(text, self)
        if slot is not None:
            act.triggered.connect(slot)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setToolTip(tip)
        return act

    def _build_actions(self) -> None:
        self.new_action = self._action("New chat", None, QKeySequence.StandardKey.New, "Start a new conversation (Ctrl+N)")
        self.regen_action = self._action("Regenerate", None, "Ctrl+R", "Answer the last message again")
        self.find_action = self._action("Find in conversation…", lambda: self.find_bar.open_bar(),
                                        QKeySequence.StandardKey.Find, "Find text in the open conversation (Ctrl+F)")
        self.find_next_action = self._action("Find next", lambda: self.find_bar.step(1), QKeySequence.StandardKey.FindNext)
        self.stop_action = self._action("Stop", None, None, "Stop the answer (Esc)")
        self.stop_action.setEnabled(False)
        self.export_md_action = self._action("Export Markdown…")
        self.export_json_action = self._action("Export JSON…")
        self.keys_action = self._action("API keys…")
        self.settings_action = self._action("Settings…", None, QKeySequence.StandardKey.Preferences)
        self.open_model_action = self._action("Open model file/folder…")
        self.add_endpoint_action = self._action("Add endpoint…")
        self.refresh_action = self._action("Refresh models", lambda: self.backend.refresh_models(), "F5")
        self.workbench_action = self._action("Workbench", self.show_workbench, "Ctrl+Shift+W",
                                             "Compare models, adapters and parameters side by side (Ctrl+Shift+W)")
        quit_action = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self._service_actions = [self.new_action, self.regen_action, self.stop_action, self.export_md_action,
                                 self.export_json_action, self.keys_action, self.settings_action,
                                 self.open_model_action, self.add_endpoint_action, self.refresh_action,
                                 self.workbench_action]

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for a in (self.new_action, None, self.export_md_action, self.export_json_action, None, quit_action):
            file_menu.addSeparator() if a is None else file_menu.addAction(a)
        model_menu = bar.addMenu("&Model")
        for a in (self.refresh_action, self.open_model_action, self.add_endpoint_action, None, self.keys_action,
                  self.settings_action):
            model_menu.addSeparator() if a is None else model_menu.addAction(a)
        chat_menu = bar.addMenu("&Chat")
        chat_menu.addAction(self.regen_action)
        chat_menu.addAction(self.stop_action)
        chat_menu.addSeparator()
        chat_menu.addAction(self.find_action)
        chat_menu.addAction(self.find_next_action)
        self.view_menu = bar.addMenu("&View")
        self.view_menu.addAction(self.workbench_action)
        self.probabilities_action = self._action("Show probabilities", None, "Ctrl+Shift+P",
                                                 "Ask answers for their tokens' probabilities and shade each "
                                                 "token by it; hover or click a token for its alternatives")
        self.probabilities_action.setCheckable(True)
        self.view_menu.addAction(self.probabilities_action)
        self._service_actions.append(self.probabilities_action)
        self.view_menu.addSeparator()

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.addAction(self.new_action)
        tb.addSeparator()
        model_label = QLabel(" Model ")
        tb.addWidget(model_label)
        tb.addWidget(self.picker)
        tb.addWidget(self.picker.state_label)
        tb.addSeparator()
        tb.addAction(self.regen_action)
        tb.addAction(self.stop_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        tb.addAction(self.keys_action)
        tb.addAction(self.settings_action)
        self.toolbar = tb

    def _build_status(self) -> None:
        from app.ui.widgets.common import ElidedLabel

        self.status_label = ElidedLabel("", min_width=120)  # a long model id elides; whole in the tooltip
        self.progress = QProgressBar(self)
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

    def _wire(self) -> None:
        """Every connection of the window, its widgets and its controllers, in one place."""
        b, session, editor, transcript = self.backend, self.session, self.editor, self.transcript
        chat, conversations, models, dialogs = self.chat, self.conversations, self.models, self.dialog_control
        for controller in (chat, conversations, models, dialogs):
            controller.status.connect(self._on_controller_status)
            controller.hint.connect(self.show_hint)
        # the menus and the toolbar
        for action, slot in ((self.new_action, conversations.new_conversation), (self.regen_action, chat.regenerate),
                             (self.stop_action, chat.stop), (self.export_md_action, conversations.export_markdown),
                             (self.export_json_action, conversations.export_json), (self.keys_action, dialogs.show_keys),
                             (self.settings_action, dialogs.show_settings), (self.open_model_action, models.open_model_file),
                             (self.add_endpoint_action, dialogs.add_endpoint)):  # fmt: skip
            action.triggered.connect(slot)
        # the editor and the transcript: talking; the model: picked, loading, loaded, failed, the
        # backend's notices; the open conversation (slots named _on_<source>_<signal> by name)
        connect_slots(editor, chat, "_on_editor_")
        connect_slots(self.picker, models, "_on_picker_")
        connect_slots(b, models, "_on_backend_")
        connect_slots(chat, models, "_on_chat_")
        connect_slots(session, conversations, "_on_session_")
        pairs: tuple[tuple[SignalInstance, Callable[..., object]], ...] = (
            (editor.send_requested, chat.send), (editor.stop_requested, chat.stop),
            (editor.message_edit.textChanged, chat._on_editor_draft_changed),
            (transcript.regenerate_requested, chat.regenerate),
            (transcript.regenerate_message_requested, chat.regenerate_message),
            (transcript.edit_requested, chat.edit_message), (transcript.branch_requested, chat.switch_branch),
            (transcript.token_branch_requested, chat.branch_from_token),
            (transcript.fork_requested, conversations.fork_from),
            (transcript.copied, lambda _t: self.show_hint("Copied to the clipboard.")),
            (transcript.copy_code_requested, self._on_transcript_copy_code),
            (self.picker.add_endpoint_requested, dialogs.add_endpoint),
            (self.picker.open_model_requested, models.open_model_file),
            (b.models_listed, self.picker.set_listing), (b.busy_changed, self._on_backend_busy_changed),
            (b.busy_changed, lambda busy: self._drop_hint() if busy else None),  # an answer starts
            (models.model_switched, self._on_models_model_switched),
            (session.conversation_changed, self._on_session_conversation_changed),
            (session.branch_changed, conversations.apply_state), (session.conversation_changed, self._drop_hint),
            (session.branch_changed, self._drop_hint))  # fmt: skip
        for signal, receiver in pairs:
            signal.connect(receiver)
        self.probabilities_action.setChecked(self.services.settings.show_probabilities)
        chat.set_probabilities(self.services.settings.show_probabilities, save=False)
        self.probabilities_action.toggled.connect(chat.set_probabilities)
        conversations.title_changed.connect(self.setWindowTitle)
        if self.sidebar is not None:
            self.sidebar.conversation_selected.connect(conversations.open_conversation)
            self.sidebar.new_conversation_requested.connect(conversations.new_conversation)
            connect_slots(self.sidebar, conversations, "_on_sidebar_")
            session.answer_done.connect(lambda _g, _s: self.refresh_sidebar())
        # dialogs
        dialogs.settings_changed.connect(self.apply_appearance)
        if self.lora_dock is not None:  # its panel is made when first shown, or when an adapter fails first
            self.lora_dock.on_built.append(lambda panel: cast("LoraPanel", panel).compare_requested.connect(
                dialogs.show_compare))  # fmt: skip
            b.adapter_failed.connect(self._on_backend_adapter_failed)
        # the Tools panel (made when its dock is first shown): each send's tools, MCP servers,
        # presets and conversations keep them, re-running from an edited result
        tools = self.tools
        tools.status.connect(self._on_controller_status)
        tools.connect_sources()
        if self.tools_dock is not None:
            self.tools_dock.on_built.append(lambda panel: tools.attach(cast("ToolsPanel", panel)))
            tools.make_panel = self.tools_dock.content
        transcript.tool_rerun_requested.connect(chat.rerun_tool_result)
        # the local server: its panel (in the docks), the LoRA dock's adapters, the status-bar indicator
        from app.ui.widgets.server_indicator import ServerIndicator

        server = self.server_control
        server.status.connect(self._on_controller_status)
        server.hint.connect(self.show_hint)
        b.adapters_changed.connect(server.set_adapters)
        server.set_adapters(b.adapters())
        self.server_indicator = ServerIndicator(server, self.statusBar())
        if self.server_dock is not None:  # its panel, made when first shown, sees each start
            server_dock = self.server_dock
            server.state_changed.connect(lambda running: server_dock.content() if running else None)
        # (a later panel wires its controller here the same way)

    @property
    def find_bar(self) -> FindBar:
        """The find bar over the prompt editor (Ctrl+F), made the first time it is asked for."""
        if self._find_bar is None:
            from app.ui.widgets.find_bar import FindBar

            self._find_bar = FindBar(self.transcript, self)
            self._find_bar.closed.connect(lambda: self.editor.message_edit.setFocus())
            self._column.insertWidget(self._column.indexOf(self.editor), self._find_bar)
        return self._find_bar

    @property
    def lora_panel(self) -> LoraPanel | None:
        """The LoRA adapters panel, made now if its dock was never shown (None: none in this build)."""
        return cast("LoraPanel", self.lora_dock.content()) if self.lora_dock is not None else None

    def _on_backend_adapter_failed(self, message: str) -> None:
        """The LoRA panel shows a failed adapter: made now if it was not, it missed this one."""
        if self.lora_dock is not None and not self.lora_dock.built:
            panel = cast("LoraPanel", self.lora_dock.content())
            panel._on_backend_adapter_failed(message)

    @property
    def tools_panel(self) -> ToolsPanel | None:
        """The Tools panel, made now if its dock was never shown (None: none in this build)."""
        return cast("ToolsPanel", self.tools_dock.content()) if self.tools_dock is not None else None

    @property
    def server_panel(self) -> ServerPanel | None:
        """The Server panel, made now if its dock was never shown (None: none in this build)."""
        return cast("ServerPanel", self.server_dock.content()) if self.server_dock is not None else None

    # -- the Workbench's host (app.ui.workbench.host.WorkbenchHost) ----------------------------
    def show_workbench(self) -> None:
        """Open the Workbench (View > Workbench)."""
        from app.ui.workbench import open_workbench

        open_workbench(self, self)

    def open_conversation(self, conversation_id: str) -> None:
        """Show a saved conversation (see :meth:`ConversationController.open_conversation`)."""
        self.conversations.open_conversation(conversation_id)

    def refresh_sidebar(self, select: str | None = None) -> None:
        """List the conversations again (and select ``select``)."""
        if self.sidebar is not None:
            self.sidebar.refresh()
            if select is not None:
                self.sidebar.select(select)

    def bring_to_front(self) -> None:
        """Raise and activate the window."""
        self.raise_()
        self.activateWindow()

    # -- slots ----------------------------------------------------------------------------------
    def _on_transcript_copy_code(self, message_id: int, language: str) -> None:
        from app.ui.workbench.chat_bridge import copy_message_code

        copy_message_code(self, self.session.conversation_id, message_id, language)

    def _on_controller_status(self, message: str, error: bool) -> None:
        self.show_status(message, error=error)

    def _on_models_model_switched(self, model_id: str) -> None:
        self.editor.suggest_temperature(default_temperature(model_id))
        self.editor.schedule_count()

    def _on_backend_busy_changed(self, busy: bool) -> None:
        self.editor.set_busy(busy)
        self.stop_action.setEnabled(busy)
        self.regen_action.setEnabled(not busy)
        self.picker.setEnabled(True)
        if not busy:
            self.editor.schedule_count()

    def _on_session_conversation_changed(self, conversation_id: str | None) -> None:
        if self.dashboard is not None:
            self.dashboard.set_conversation(conversation_id)
        self.refresh_sidebar()
        if self.sidebar is not None:
            self.sidebar.select(conversation_id)
        if self._find_bar is not None and self._find_bar.isVisible():  # its matches were in the cards just replaced
            self.find_bar.search(self.find_bar.edit.text())
        self.editor.schedule_count()

    def recover(self) -> None:
        """After an unexpected error: never stay in a "generating" state."""
        if self.session is None:
            return
        self.session.recover()
        self._on_backend_busy_changed(self.backend.is_busy())
        self.models.reset()

    def apply_appearance(self) -> None:
        """Theme, font size and the key that sends, from the settings."""
        from PySide6.QtWidgets import QApplication

        ui = self.services.settings.ui
        app = QApplication.instance()
        if isinstance(app, QApplication):
            self.set_theme(theme_mod.apply(app, ui.theme, ui.font_size))
        self.editor.set_enter_sends(ui.enter_sends)

    def set_theme(self, theme: theme_mod.Theme) -> None:
        """The OS switched light/dark: new cards and status colours follow (launch applies the
        palette and stylesheet app-wide)."""
        self.theme = theme
        if self._built:
            self.transcript.set_code_style(theme.code)

    def show_status(self, message: str, *, error: bool = False) -> None:
        """Show a message in the status bar (errors in the theme's error colour)."""
        self.status_label.setStyleSheet(f"color: {self.theme.error};" if error else "")
        self.status_label.setText(message)
        self.status_label.setToolTip(message)

    def show_hint(self, message: str) -> None:
        """A status message about what was just done: it goes at the next action (an answer
        starts, another branch or conversation is shown) unless something replaced it."""
        self.show_status(message)
        self._hint = message

    def _drop_hint(self, *_args: object) -> None:
        if self._hint and self.status_label.text() == self._hint:
            self.show_status("")
        self._hint = ""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        """Esc stops the answer wherever the focus is (widgets that use Esc themselves, such as
        an open editor or popup, keep it)."""
        if event.key() == Qt.Key.Key_Escape and self.backend is not None and self.backend.is_busy():
            self.chat.stop()
            event.accept()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Stop streaming (the partial answer is saved), stop the counter thread, save settings
        (an edited, unsaved Workbench grid is asked about first)."""
        from app.ui.workbench import asks_before_quitting

        if asks_before_quitting(self):
            event.ignore()
            return
        if self._built:
            self.editor.shutdown()
        if self.session is not None:
            self.backend.stop()
            self.session.save_partials()
            self.session.save_draft()
            self.dialog_control.save_settings()
            self.server_control.close()  # launch awaits it (server_control.aclose) before closing the services
        super().closeEvent(event)
        self.closed.emit()
