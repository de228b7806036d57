"""GUI entry point: QApplication -> qasync loop -> Services -> MainWindow.

``python -m app [--demo] [--screenshot PATH]``. The window is shown before any heavy library
(torch, transformers, peft, openai) is imported; the model list loads in a task after show.
With ``LLM_PLAYGROUND_STARTUP_PROBE=1`` the process prints ``STARTUP_SHOWN <unix time>``
and the heavy modules already imported once the window is shown, then exits (benchmarks);
with ``=idle`` it first lets the model listing run for 3 s and prints the idle RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tempfile
    from collections.abc import Callable

    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QWidget

    from app.core.services import Services
    from app.ui.main_window import MainWindow

HEAVY_MODULES = ("torch", "transformers", "peft", "openai", "httpx", "tiktoken", "jinja2", "pygments", "pydantic",
                 "PySide6.QtCharts", "keyring", "app.core.run_events", "app.core.tool_loop")
"""Loaded on first use, never before the window is usable (tests/ui/test_launch.py checks);
keyring only on a first start, to choose the automatic model (later starts reopen the last);
the run events and the tool loop (~30 dataclasses) with the first send."""
PROBE_ENV = "LLM_PLAYGROUND_STARTUP_PROBE"
DEMO_TURNS = (
    ("What can this playground do?",
     "It streams answers from **OpenAI**, any OpenAI-compatible server (Ollama, LM Studio, vLLM, "
     "llama.cpp) and models running **in-process** with optional LoRA adapters.\n\n"
     "Every answer shows its tokens, cost, time to first token and speed, and the dashboard "
     "keeps the totals per model."),
    ("Show me a small Python function, please.", None),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The window's options (unknown ones are ignored so Qt options pass through)."""
    if not argv:  # the usual start: no parser to build (~3 ms of regular expressions)
        return argparse.Namespace(screenshot=None, demo=False)
    p = argparse.ArgumentParser(prog="llm-playground", add_help=False)
    p.add_argument("--screenshot", metavar="PATH")
    p.add_argument("--demo", action="store_true")
    args, _ = p.parse_known_args(argv)
    return args


def create_main_window(services: Services, *, restore: bool = True) -> MainWindow:
    """Build the main window on ``services`` (a QApplication must exist)."""
    from app.ui.main_window import MainWindow

    return MainWindow(services, restore=restore)


def _app_icon() -> QIcon:
    from PySide6.QtGui import QIcon

    from app.core.paths import resources_dir

    icon = QIcon()
    folder = resources_dir() / "icons"
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        png = folder / f"llm-playground-{size}.png"
        if png.exists():
            icon.addFile(str(png))
    return icon


async def play_demo(window: MainWindow, timeout: float = 20.0) -> None:
    """A short scripted conversation on the mock model (Markdown and a code block)."""
    import asyncio

    from app.providers.mock import DEMO_MARKDOWN, MockScript

    mock = window.services.registry.get("mock")
    window.backend.set_model("mock:markdown")
    window.editor.set_system_prompt("You are a concise, friendly assistant.")
    for question, answer in DEMO_TURNS:
        mock.enqueue([MockScript(answer or DEMO_MARKDOWN, rate=300)])  # type: ignore[attr-defined]
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def _on_done(_gen: str, status: str, fut: asyncio.Future[str] = done) -> None:
            if not fut.done():
                fut.set_result(status)

        window.session.answer_done.connect(_on_done)
        try:
            window.editor.set_message(question)
            if window.chat.send() is None:
                return
            await asyncio.wait_for(done, timeout)
        finally:
            window.session.answer_done.disconnect(_on_done)
    window.editor.set_message("Can you explain how the cost is computed?")
    await asyncio.sleep(0.3)  # let the debounced counter and the dashboard catch up for the picture


def _rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _heavy_loaded() -> list[str]:
    return [m for m in HEAVY_MODULES if m in sys.modules]


def main(argv: list[str] | None = None) -> int:
    """Run the GUI; return the exit code."""
    import gc

    gc_was_enabled = gc.isenabled()
    gc.disable()  # no collections while ~330 modules import (~75 passes); GuiThreadCollector settles it
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    probe = os.environ.get(PROBE_ENV) in ("1", "idle")
    demo_home: tempfile.TemporaryDirectory[str] | None = None
    if args.screenshot or probe:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.demo:  # a throwaway home: the demo never touches the user's history or settings
        import tempfile

        demo_home = tempfile.TemporaryDirectory(prefix="llm-playground-demo-")
        os.environ["LLM_PLAYGROUND_HOME"] = demo_home.name

    from PySide6.QtWidgets import QApplication

    from app.ui import pyside_imports

    pyside_imports.install()  # before the ~330 modules the window imports after Qt
    from app.ui import theme
    from app.ui.main_window import MainWindow
    from app.ui.qt_platform import watch_platform_start

    with watch_platform_start():  # a missing X11 library is named, not blamed on xcb-cursor0
        app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("LLM Playground")
    app.setOrganizationName("llm-playground")
    app.setDesktopFileName("llm-playground")
    app.setWindowIcon(_app_icon())
    app.setQuitOnLastWindowClosed(False)
    theme.apply(app)
    window = MainWindow(build=False)
    small_screen = window.screen_is_small()
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: _follow_system_scheme(app, window))  # the frame shows at once; widgets and services follow
    if small_screen and not (args.screenshot or probe):
        window.showMaximized()  # the title bar and the status bar stay on a 1024 x 700 screen
    else:
        window.show()
    if probe:
        app.processEvents()
        shown_at = time.time()
    window.build()
    if probe:
        app.processEvents()
        built_at = time.time()

    import asyncio

    import qasync  # after PySide6, so qasync picks it

    from app.core.services import Services
    from app.ui.excepthook import ErrorReporter, setup_logging

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    secrets = None
    if args.demo:
        from app.core.secrets import MemoryKeyring, SecretStore

        secrets = SecretStore(backend=MemoryKeyring())
    headless = probe or bool(args.screenshot)
    services = start_services(window, lambda: Services.create(secrets=secrets),
                              ask=None if headless else (lambda message: ask_retry(window, message)))  # fmt: skip
    if services is None:  # another instance holds a database, and the user chose not to wait
        window.close()
        loop.close()
        if gc_was_enabled:
            gc.enable()
        return 1
    setup_logging(services.paths.log_file)
    services.probe_local_servers = True  # Ollama, LM Studio, llama.cpp, vLLM found running are listed
    ui = services.settings.ui
    window.set_theme(theme.apply(app, ui.theme, ui.font_size))
    reporter = ErrorReporter(app)
    reporter.install(loop)
    from app.ui.gc_guard import GuiThreadCollector

    collector = GuiThreadCollector(parent=app, was_enabled=gc_was_enabled)  # no gc on the model worker thread
    collector.freeze_start()
    window.attach(services, restore=not args.demo)
    collector.busy = window.backend.is_busy  # no full collection mid-stream (bounded wait)
    reporter.add_recovery(window.recover)
    reporter.error_reported.connect(lambda msg: window.show_status(msg, error=True))
    show_start_warnings(window, services)

    if probe:
        app.processEvents()
        heavy = ",".join(_heavy_loaded()) or "-"
        sys.stdout.write(f"STARTUP_SHOWN {shown_at:.6f}\nBUILT {built_at:.6f}\nREADY {time.time():.6f}\n"
                         f"HEAVY {heavy}\n")
        sys.stdout.flush()

        async def idle() -> None:  # "idle": let the background listing run, then report memory
            if os.environ.get(PROBE_ENV) == "idle":
                window.backend.refresh_models()
                await asyncio.sleep(3.0)
                sys.stdout.write(f"IDLE_RSS_MB {_rss_mb():.1f}\nIDLE_HEAVY {','.join(_heavy_loaded()) or '-'}\n")
            window.close()
            await _shutdown(window, services)

        with loop:
            loop.run_until_complete(idle())
        collector.stop()
        return 0

    async def run() -> int:
        closed: asyncio.Future[None] = loop.create_future()
        def on_closed() -> None:
            if not closed.done():
                closed.set_result(None)

        window.closed.connect(on_closed)
        app.aboutToQuit.connect(on_closed)  # logout / system quit: shut down cleanly too
        window.backend.refresh_models()
        code = 0
        if args.demo:
            await play_demo(window)
        if args.screenshot:
            await asyncio.sleep(0.2)
            app.processEvents()
            ok = window.grab().save(str(Path(args.screenshot)), "PNG")
            sys.stdout.write(f"screenshot {'saved to' if ok else 'FAILED:'} {args.screenshot}\n")
            code = 0 if ok else 1
            window.close()
        else:
            await closed
        await _shutdown(window, services)
        return code

    try:
        with loop:
            return loop.run_until_complete(run())
    finally:
        collector.stop()
        reporter.uninstall()
        if demo_home is not None:
            demo_home.cleanup()


def start_services(window: MainWindow, create: Callable[[], Services],
                   ask: Callable[[str], bool] | None) -> Services | None:  # fmt: skip
    """``create()`` the services; when another program holds a database (busy, never damaged)
    or a storage error stops the start, say so in the window and on stderr, and try again
    while ``ask(message)`` says so (None: never ask, e.g. headless). None when given up."""
    from app.core.errors import StorageBusy, StorageError

    while True:
        try:
            return create()
        except StorageBusy as exc:
            message = exc.user_message()
        except StorageError as exc:
            message = exc.user_message()
        window.show_status(message, error=True)
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        if ask is None or not ask(message):
            return None


def ask_retry(parent: QWidget, message: str) -> bool:
    """Ask whether to try again (before the event loop runs: no nested loop in a coroutine)."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Warning, "LLM Playground cannot start yet", message,
                      QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Close, parent)  # fmt: skip
    box.setInformativeText("Try again once the other instance is closed, or close this one.")
    box.setDefaultButton(QMessageBox.StandardButton.Retry)
    return box.exec() == QMessageBox.StandardButton.Retry


def show_start_warnings(window: MainWindow, services: Services) -> None:
    """Problems found at start (settings, prices, the usage ledger, the history), in the status bar."""
    found = list(dict.fromkeys(services.warnings()))
    if found:
        window.show_status("  \u2502  ".join(found), error=True)


def _follow_system_scheme(app: QApplication, window: MainWindow) -> None:
    """The OS switched light/dark: follow it unless the settings chose a theme."""
    from app.ui import theme

    services = window.services
    ui = services.settings.ui if services is not None else None
    if ui is None or ui.theme == "system":
        window.set_theme(theme.apply(app, "system", ui.font_size if ui is not None else None))


async def _shutdown(window: MainWindow, services: Services) -> None:
    """Cancel running work, close providers and databases."""
    import asyncio

    try:
        if window.server_control is not None:
            await window.server_control.aclose()  # bounded; the served runs are cancelled first
        await asyncio.wait_for(window.backend.aclose(), 10)
        if window.tools is not None:  # the MCP servers' processes end
            await asyncio.wait_for(window.tools.aclose(), 15)
    finally:
        window.session.save_partials()
        await services.aclose()
