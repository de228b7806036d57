"""Helpers for tests that start the app in a child process."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` that gives the child the default Ctrl-C handling.

    A shell runs background jobs (``cmd &``, nohup) with SIGINT ignored, and a child inherits
    that; Python then installs no KeyboardInterrupt handler, so a Ctrl-C test would see the
    app run to its end.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
