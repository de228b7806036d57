"""Entry point of ``python -m app`` and the ``llm-playground`` console script.

Dispatches to the headless CLI, the self-test or the GUI. Each is imported lazily, so the
CLI never imports PySide6 (nor torch, unless a local model is used).
"""

from __future__ import annotations

import sys

CLI_COMMANDS: tuple[str, ...] = ("ask", "models", "count", "keys", "usage", "grid")

USAGE = """\
usage: python -m app [--demo] [--screenshot PATH]      open the window
       python -m app --self-test [...]                 check the installation, headless
       python -m app COMMAND [options]                 headless commands
       python -m app --version | -h

Window options:
  --demo               start with the mock provider and a demo conversation (no key needed)
  --screenshot PATH    render the main window offscreen to PATH (PNG) and exit
  --self-test          run the built-in checks without a window and exit (0 = all passed)

Commands:
  ask      stream one answer:      python -m app ask -m mock:echo "hello"
  models   list models:            python -m app models [--base-url URL]
  count    count tokens:           python -m app count -m openai:gpt-4o "some text"
  keys     manage API keys:        python -m app keys set|delete|list [openai|ENDPOINT]
  usage    usage and cost totals:  python -m app usage [--by model|day]
  grid     run a grid file:        python -m app grid FILE [--json] [-o results.html]

Run 'python -m app COMMAND -h' for a command's options.
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the arguments; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in CLI_COMMANDS:
        from app.cli import main as cli_main

        return cli_main(args)
    if args and not args[0].startswith("-"):  # a typo or a bare prompt must not open the window
        import difflib

        close = difflib.get_close_matches(args[0], CLI_COMMANDS, n=1)
        hint = f"Did you mean '{close[0]}'? " if close else ""
        sys.stderr.write(
            f"error: unknown command '{args[0]}'. {hint}Commands: {', '.join(CLI_COMMANDS)} "
            "(e.g. python -m app ask \"your prompt\"); run 'python -m app -h' for help.\n"
        )
        return 2
    if "--version" in args:
        from app import __version__

        sys.stdout.write(f"llm-playground {__version__}\n")
        return 0
    if "-h" in args or "--help" in args:
        sys.stdout.write(USAGE)
        return 0
    if "--self-test" in args:
        from app.selftest import main as selftest_main

        return int(selftest_main(args))
    problem = display_problem(args)
    if problem:
        sys.stderr.write(problem)
        return 2
    from app.ui.launch import main as gui_main

    return int(gui_main(args))


def display_problem(args: list[str], environ: dict[str, str] | None = None, platform: str | None = None) -> str:
    """Why the window cannot open here ('' when it can): Qt aborts the process without one."""
    import os

    env = os.environ if environ is None else environ
    if not (platform or sys.platform).startswith("linux") or "--screenshot" in args:
        return ""
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM"):
        return ""
    if env.get("LLM_PLAYGROUND_STARTUP_PROBE"):  # benchmarks: launch renders offscreen
        return ""
    return (
        "error: no display found (DISPLAY and WAYLAND_DISPLAY are not set), so the window cannot open.\n"
        "Run it in a desktop session, or on a virtual display: xvfb-run -a python -m app\n"
        "Without a display: python -m app ask \"your prompt\" (the headless CLI), "
        "python -m app --screenshot out.png --demo, or python -m app --self-test.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
