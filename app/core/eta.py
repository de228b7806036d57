"""How a time left reads, for the CLI's bar and the window's status line alike."""

from __future__ import annotations


def format_eta(seconds: float) -> str:
    """``under 1 s left`` / ``about 12 s left`` / ``about 3 min left``."""
    if seconds < 1.0:
        return "under 1 s left"
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    return f"about {seconds / 60:.0f} min left"
