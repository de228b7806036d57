"""The main window: toolbar with the model picker, history sidebar, streaming transcript,
prompt editor, and docks for the live dashboard and the LoRA panel. Talks only to the
:class:`BackendManager`; conversation persistence lives in :class:`ChatSession`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AppError
from app.providers.bundled import default_temperature
from app.ui import theme as theme_mod
from app.ui.window_actions import WindowActions
from app.ui.window_models import WindowModels
from app.ui.wiring import connect_slots

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.core.events import Progress
    from app.core.exchange import ConversationState
    from app.core.services import Services
    from app.ui.backend_manager import BackendManager
    from app.ui.session import ChatSession
    from app.ui.widgets.dashboard import DashboardDock
    from app.ui.widgets.history_sidebar import HistorySidebar
    from app.ui.widgets.lora_panel import LoraPanel

log = logging.getLogger(__name__)
SIDEBAR_MIN_WIDTH = 170
HISTORY_PENDING = ("Saving to history is pending (the history is busy in another program)... The answer is kept "
                   "and written as soon as it is free, or at the next start.")


class MainWindow(QMainWindow, WindowActions, WindowModels):
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
        self.lora_panel: LoraPanel | None = None
        self._dialogs: dict[str, Any] = {}
        self._built = False
        self._hint = ""
        """The status message that goes at the next action (see :meth:`show_hint`)."""
        self._loading: tuple[str, Progress] | None = None
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
        from app.ui.widgets.find_bar import FindBar

        self.find_bar = FindBar(self.transcript, self)
        self.find_bar.closed.connect(lambda: self.editor.message_edit.setFocus())
        lay.addWidget(self.transcript, 1)
        lay.addWidget(self.find_bar)
        lay.addWidget(self.editor)
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
        self.picker.set_current(self.backend.current_model(), self.backend.current_endpoint())
        self.editor.suggest_temperature(default_temperature(self.backend.current_model()))
        self._build_docks()
        self._wire()
        self.editor.set_presets(services.settings.presets)
        self.editor.set_counter(self._count_request)
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
    def _action(self, text: str, slot: Callable[[], object], shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
                tip: str = "") -> QAction:
        act = QAction(text, self)
        act.triggered.connect(slot)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setToolTip(tip)
        return act

    def _build_actions(self) -> None:
        self.new_action = self._action("New chat", self.new_conversation, QKeySequence.StandardKey.New,
                                       "Start a new conversation (Ctrl+N)")
        self.regen_action = self._action("Regenerate", self.regenerate, "Ctrl+R", "Answer the last message again")
        self.find_action = self._action("Find in conversation…", self.find_in_conversation, QKeySequence.StandardKey.Find,
                                        "Find text in the open conversation (Ctrl+F)")  # fmt: skip
        self.find_next_action = self._action("Find next", lambda: self.find_bar.step(1), QKeySequence.StandardKey.FindNext)
        self.stop_action = self._action("Stop", self.stop, None, "Stop the answer (Esc)")
        self.stop_action.setEnabled(False)
        self.export_md_action = self._action("Export Markdown…", self.export_markdown)
        self.export_json_action = self._action("Export JSON…", self.export_json)
        self.keys_action = self._action("API keys…", self.show_keys)
        self.settings_action = self._action("Settings…", self.show_settings, QKeySequence.StandardKey.Preferences)
        self.open_model_action = self._action("Open model file/folder…", self.open_model_file)
        self.add_endpoint_action = self._action("Add endpoint…", self.add_endpoint)
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
        self.probabilities_action = self._action("Show probabilities", lambda: None, "Ctrl+Shift+P",
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
        self.status_label = QLabel("")
        self.progress = QProgressBar(self)
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

    def _build_docks(self) -> None:
        """B's widgets (history, dashboard, LoRA) as docks; each is optional at import time."""
        try:
            from app.ui.widgets.history_sidebar import HistorySidebar

            self.sidebar = HistorySidebar(self.services.history, self)
            self.sidebar.setMinimumWidth(SIDEBAR_MIN_WIDTH)  # room for the editor and the Usage dock at 1024 px
            self._dock("History", self.sidebar, Qt.DockWidgetArea.LeftDockWidgetArea)
        except ImportError as exc:
            log.warning("history sidebar unavailable: %s", exc)
        try:
            from app.ui.widgets.dashboard import DashboardDock

            self.dashboard = DashboardDock(self.backend, self)
            self.dashboard.setObjectName("dashboardDock")
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dashboard)
            self.view_menu.addAction(self.dashboard.toggleViewAction())
        except ImportError as exc:
            log.warning("dashboard unavailable: %s", exc)
        try:
            from app.ui.widgets.lora_panel import LoraPanel

            self.lora_panel = LoraPanel(self.backend, self)
            dock = self._dock("LoRA adapters", self.lora_panel, Qt.DockWidgetArea.RightDockWidgetArea)
            if self.dashboard is not None:
                self.tabifyDockWidget(dock, self.dashboard)
                self.dashboard.raise_()
            if hasattr(self.lora_panel, "compare_requested"):
                self.lora_panel.compare_requested.connect(self.show_compare)
        except ImportError as exc:
            log.warning("LoRA panel unavailable: %s", exc)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "") + "Dock")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        self.view_menu.addAction(dock.toggleViewAction())
        return dock

    def _wire(self) -> None:
        b = self.backend
        self.editor.send_requested.connect(self.send)
        self.editor.stop_requested.connect(self.stop)
        self.editor.preset_saved.connect(self._on_preset_saved)
        self.editor.preset_deleted.connect(self._on_preset_deleted)
        self.transcript.regenerate_requested.connect(self.regenerate)
        self.transcript.edit_requested.connect(self.edit_message)
        self.transcript.branch_requested.connect(self.switch_branch)
        self.transcript.fork_requested.connect(self.fork_from)
        self.editor.message_edit.textChanged.connect(lambda: self.session.note_draft(self.editor.message()))
        self.transcript.copied.connect(lambda _t: self.show_hint("Copied to the clipboard."))
        self.transcript.copy_code_requested.connect(self._on_copy_code)
        self.transcript.token_branch_requested.connect(self.branch_from_token)
        self.transcript.regenerate_message_requested.connect(self.regenerate_message)
        self.probabilities_action.setChecked(self.services.settings.show_probabilities)
        self.set_probabilities(self.services.settings.show_probabilities, save=False)
        self.probabilities_action.toggled.connect(self.set_probabilities)
        self.picker.model_selected.connect(self._on_model_selected)
        self.picker.add_endpoint_requested.connect(self.add_endpoint)
        self.picker.open_model_requested.connect(self.open_model_file)
        connect_slots(b, self, "_on_backend_")  # the _on_backend_<signal> methods below
        b.models_listed.connect(self.picker.set_listing)
        self.session.conversation_changed.connect(self._on_conversation_changed)
        self.session.branch_changed.connect(self.apply_state)
        self.session.history_pending.connect(self._on_history_pending)
        for moved_on in (self.session.conversation_changed, self.session.branch_changed, b.generation_started):
            moved_on.connect(self._drop_hint)
        if self.sidebar is not None:
            self.sidebar.conversation_selected.connect(self.open_conversation)
            self.sidebar.new_conversation_requested.connect(self.new_conversation)
            self.sidebar.conversation_deleted.connect(self._on_conversation_deleted)
            self.sidebar.conversation_renamed.connect(self._on_conversation_renamed)
            self.sidebar.conversation_forked.connect(self._on_forked)
            self.session.answer_done.connect(lambda _g, _s: self.sidebar.refresh() if self.sidebar else None)

    def show_workbench(self) -> None:
        """Open the Workbench (View > Workbench)."""
        from app.ui.workbench import open_workbench

        open_workbench(self)

    def _on_copy_code(self, message_id: int, language: str) -> None:
        from app.ui.workbench.chat_bridge import copy_message_code

        copy_message_code(self, message_id, language)

    # -- conversation ---------------------------------------------------------------------------
    def send(self) -> str | None:
        """Send the editor's message; return the generation id (None when nothing was sent)."""
        text = self.editor.message()
        if not text.strip() or self.backend.is_busy():
            return None
        try:
            params = self.editor.params()
        except AppError as exc:
            self.show_status(exc.user_message(), error=True)
            return None
        gen_id = self.session.send(text, params, self.editor.system_prompt())
        self.editor.set_message("")  # only now: when saving the message fails, the text stays
        model = self.backend.current_model()
        if gen_id is not None and self.backend.selection.loading == model:  # the answer waits for the load
            self.show_status(self._waiting_text(model))
        return gen_id

    def find_in_conversation(self) -> None:
        """Ctrl+F: the find bar, searching the open conversation."""
        self.find_bar.open_bar()

    def stop(self) -> None:
        """Stop the running answer (the partial text is kept)."""
        self.backend.stop()

    def regenerate(self) -> str | None:
        """Answer the last user message again."""
        return self.regenerate_message(None)

    def regenerate_message(self, message_id: int | None) -> str | None:
        """A new answer beside the answer ``message_id`` (None: the last one)."""
        try:
            params = self.editor.params()
        except AppError as exc:
            self.show_status(exc.user_message(), error=True)
            return None
        return self.session.regenerate(params, self.editor.system_prompt(), message_id=message_id)

    def set_probabilities(self, on: bool, *, save: bool = True) -> None:
        """View > Show probabilities: answers ask for their tokens' probabilities (K alternatives,
        a setting) and show them; off: Markdown, and requests do not ask."""
        settings = self.services.settings
        self.session.lens_k = settings.probabilities_top_k if on else None
        self.transcript.set_probabilities(on)
        if save and settings.show_probabilities != on:
            settings.show_probabilities = on
            self._save_settings()

    def branch_from_token(self, message_id: int, index: int, text: str) -> str | None:
        """A sibling answer that says ``text`` instead of token ``index`` and goes on from there."""
        if self.backend.is_busy():
            self.show_status("Stop the answer first (Esc or Stop), then branch from a token.", error=True)
            return None
        try:
            gen_id = self.session.branch_from_token(message_id, index, text)
        except AppError as exc:
            self.show_status(exc.user_message(), error=True)
            return None
        if gen_id is not None:
            self.show_status("Branching: a new answer continues from the token you chose (‹ › switches back).")
        return gen_id

    def edit_message(self, message_id: int) -> None:
        """Put a user message in the editor; sending it makes a new branch beside the old one."""
        if self.backend.is_busy():  # the Edit buttons stay clickable while an answer streams
            self.show_status("Stop the answer first (Esc or Stop), then edit the message.", error=True)
            return
        typed = self.editor.message()
        text = self.session.edit(message_id)
        if text is None:
            return
        note = ""
        if typed.strip() and typed != text:  # replaced undoably: what was typed is never lost
            cursor = self.editor.message_edit.textCursor()
            cursor.select(cursor.SelectionType.Document)
            cursor.insertText(text)
            self.editor.message_edit.setTextCursor(cursor)
            self.editor.message_edit.setFocus()
            note = " Ctrl+Z brings back what you had typed."
        else:
            self.editor.set_message(text)
        self.show_hint("Edit the message and send it: a new branch is made, the old one stays "
                       "(\u2039 \u203a on the message switches back)." + note)

    def switch_branch(self, message_id: int, step: int) -> None:
        """Show another version of a message (``‹ k/n ›``) and the branch below it."""
        if not self.session.switch_branch(message_id, step):
            self.show_status("Stop the answer first (Esc or Stop), then switch branches.", error=True)

    def fork_from(self, message_id: int) -> None:
        """Open a new conversation holding the path up to ``message_id``."""
        try:
            new_id = self.session.fork(message_id)
        except AppError as exc:  # e.g. the history is busy in another program
            self.show_status(f"Could not fork: {exc.user_message()}", error=True)
            return
        if new_id is not None:
            self._on_forked(new_id)

    def _on_history_pending(self, pending: bool) -> None:
        if pending:
            self.show_status(HISTORY_PENDING)
        else:
            self.show_status("Saved to history: the other program released it.")

    def _on_forked(self, conversation_id: str) -> None:
        self.open_conversation(conversation_id)
        conv = self.services.history.get_conversation(conversation_id)
        if conv is not None:
            self.show_hint(f"Forked: \u201c{conv.title}\u201d holds the messages up to the one you chose.")

    def new_conversation(self) -> None:
        """Start an empty conversation (a running comparison goes on in its own window)."""
        if self.session.is_streaming():
            self.backend.stop()
        self.session.open(None)
        self.editor.set_message(self.session.new_draft)
        self.editor.message_edit.setFocus()

    def open_conversation(self, conversation_id: str) -> None:
        """Show a saved conversation with its draft, and bring back what its shown branch was
        made with: system prompt, parameters, model, endpoint and adapters."""
        if self.session.is_streaming():
            self.backend.stop()
        conv = self.session.open(conversation_id)
        if conv is None:
            return
        self.editor.set_message(conv.draft)
        self.apply_state(self.session.state())

    def apply_state(self, state: ConversationState | None) -> None:
        """Show ``state``'s system prompt and parameters and restore its model and adapters
        (the backend says when an adapter is missing or changed)."""
        if state is None:
            return
        if state.system_prompt is not None:
            self.editor.set_system_prompt(state.system_prompt)
        if state.params:
            try:
                from app.core.types import GenerationParams

                self.editor.set_params(GenerationParams.from_dict(state.params))
            except (TypeError, ValueError):
                log.debug("stored params not usable", exc_info=True)
        if state.model:
            self.backend.restore(state.model, state.endpoint, state.adapters)

    def _on_backend_state_restored(self, notes: list[str]) -> None:
        if notes:
            self.show_status(" ".join(notes), error=True)

    def _on_conversation_changed(self, conversation_id: str | None) -> None:
        self.services.settings.last_conversation_id = conversation_id
        self._save_settings()
        title = "LLM Playground"
        if conversation_id:
            conv = self.services.history.get_conversation(conversation_id)
            if conv is not None:
                title = f"{conv.title} — LLM Playground"
        self.setWindowTitle(title)
        if self.dashboard is not None:
            self.dashboard.set_conversation(conversation_id)
        if self.sidebar is not None:
            self.sidebar.refresh()
            self.sidebar.select(conversation_id)
        if self.find_bar.isVisible():  # its matches were in the cards just replaced
            self.find_bar.search(self.find_bar.edit.text())
        self.editor.schedule_count()

    def _on_conversation_renamed(self, conversation_id: str, title: str) -> None:
        if conversation_id == self.session.conversation_id:
            self.setWindowTitle(f"{title} — LLM Playground")

    def _on_conversation_deleted(self, conversation_id: str) -> None:
        if self.session.is_streaming(conversation_id):  # no answer keeps running (and costing) for nothing
            self.backend.stop()
        if conversation_id == self.session.conversation_id:
            self.session.open(None)

    def recover(self) -> None:
        """After an unexpected error: never stay in a "generating" state."""
        if self.session is None:
            return
        self.session.recover()
        self._on_backend_busy_changed(self.backend.is_busy())
        self.progress.setVisible(False)

    def _on_settings_changed(self) -> None:
        """Settings saved: the models are listed again, the appearance follows at once."""
        WindowActions._on_settings_changed(self)
        self.apply_appearance()

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
            self.stop()
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
            self._save_settings()
        super().closeEvent(event)
        self.closed.emit()
