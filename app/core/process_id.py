"""Who wrote a row, in a form that survives pid reuse: ``"<pid>:<marker>"``.

The marker is the process's start time as the OS tells it (Linux: the boot id and the start
tick from ``/proc``; Windows: the creation time). A row's writer is gone when no process has
that pid, or the process with that pid started at another time (the pid was reused, or the
machine rebooted). Where the OS gives no start time, the marker is a random token and only
"is the pid alive" is checked, so a live process's rows are never taken for dead ones.
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from pathlib import Path


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return ""


def _linux_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces or ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _windows_start(pid: int) -> str | None:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return "?" if kernel32.GetLastError() == 5 else None  # access denied: alive
    try:
        code = wintypes.DWORD()
        if kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) and code.value != 259:
            return None  # exited (259 is STILL_ACTIVE)
        times = [wintypes.FILETIME() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
            return "?"
        return f"{times[0].dwHighDateTime:x}{times[0].dwLowDateTime:08x}"
    finally:
        kernel32.CloseHandle(handle)


def start_marker(pid: int) -> str | None:
    """A text that changes when ``pid`` names another process; None when no process has
    that pid; ``"?"`` when the process exists but its start time cannot be read."""
    if sys.platform.startswith("linux"):
        start = _linux_start(pid)
        return None if start is None else f"linux-{_boot_id()}-{start}"
    if sys.platform == "win32":  # pragma: no cover - Windows only
        start = _windows_start(pid)
        return None if start is None else (start if start == "?" else f"win-{start}")
    return "?" if _pid_alive(pid) else None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # POSIX only: signal 0 checks existence (on Windows it would kill)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


@functools.cache
def _own_marker() -> str:
    marker = start_marker(os.getpid())
    return marker if marker and marker != "?" else f"rand-{uuid.uuid4().hex[:16]}"


def current_writer() -> str:
    """This process as a writer id: ``"<pid>:<marker>"``."""
    pid = os.getpid()
    marker = start_marker(pid)
    if marker and marker != "?":
        return f"{pid}:{marker}"
    return f"{pid}:{_own_marker()}"


def writer_alive(writer: str | None) -> bool:
    """True when the process that wrote ``writer`` may still run (unknown forms count as
    alive: a row is never taken from a live process by mistake)."""
    if not writer:
        return False
    pid_text, _, marker = writer.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if writer == current_writer():
        return True
    now = start_marker(pid)
    if now is None:
        return False  # no such process
    if marker.startswith("rand-") or now == "?":
        return True  # no start time to compare: the pid is alive, so assume it is the writer
    return now == marker
