"""Shared fixtures. Qt runs offscreen; every test gets its own app home (settings, DBs)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

pytest_plugins = ["tests.support.openai_server"]


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private LLM_PLAYGROUND_HOME per test; OPENAI_API_KEY removed from the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("LLM_PLAYGROUND_HOME", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return home


@pytest.fixture(autouse=True)
def isolated_keyring(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never touch the OS keyring: an in-memory backend in-process and in subprocesses.

    Only tests marked ``keyring_real`` talk to the real Secret Service (under scripts/test.sh).
    """
    if request.node.get_closest_marker("keyring_real"):
        yield
        return
    import keyring

    from app.core.secrets import MemoryKeyring

    before = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "app.core.secrets.MemoryKeyring")
    try:
        yield
    finally:
        keyring.set_keyring(before)


@pytest.fixture
def run() -> Callable[..., Any]:
    """Run a coroutine to completion on a fresh asyncio loop, with a timeout (default 30 s)."""

    def _run(coro: Awaitable[T], timeout: float = 30.0) -> T:
        async def _wrapped() -> T:
            return await asyncio.wait_for(coro, timeout)

        return asyncio.run(_wrapped())

    return _run


@pytest.fixture(scope="session")
def qapp(qapp: Any) -> Any:
    """pytest-qt's QApplication, set up like the app's (launch.py): it does not quit when its
    last window closes. Otherwise a shown widget an earlier test left behind, freed by the
    garbage collector while a later test runs the qasync loop, ends that loop ("Event loop
    stopped before Future completed")."""
    qapp.setQuitOnLastWindowClosed(False)
    return qapp


@pytest.fixture
def qloop(qapp: Any) -> Iterator[Any]:
    """A qasync loop on the test QApplication, set as the current loop.

    Use ``qloop.run_until_complete(asyncio.wait_for(scenario(), timeout))`` to drive a whole
    UI scenario (click, then await a signal via a future). Errors from tasks fail the test.
    """
    import PySide6  # noqa: F401  (import PySide6 before qasync)
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=False)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        asyncio.set_event_loop(None)
        loop.close()
    if errors:
        pytest.fail(f"asyncio errors during the test: {errors!r}")


class SignalWaiter:
    """Listens to one or more Qt signals from the moment it is made (so an emission during the
    action that follows is not missed); ``await waiter.wait(timeout)`` gives the arguments of
    the first ``count`` emissions that ``where`` accepts, in order."""

    def __init__(self, *signals: Any, count: int = 1, where: Callable[..., bool] | None = None) -> None:
        self.count = count
        self.where = where
        self.seen: list[tuple[Any, ...]] = []
        self._fut: asyncio.Future[list[tuple[Any, ...]]] = asyncio.get_event_loop().create_future()
        self._signals = signals
        for signal in signals:
            signal.connect(self._slot)

    def _slot(self, *args: Any) -> None:
        if self._fut.done() or (self.where is not None and not self.where(*args)):
            return
        self.seen.append(args)
        if len(self.seen) >= self.count:
            self._fut.set_result(list(self.seen))

    async def wait(self, timeout: float = 10.0) -> list[tuple[Any, ...]]:
        """The emissions (waits at most ``timeout`` seconds; then TimeoutError)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._fut), timeout)
        finally:
            for signal in self._signals:
                try:
                    signal.disconnect(self._slot)
                except (RuntimeError, TypeError):
                    pass


def expect_signal(*signals: Any, count: int = 1, where: Callable[..., bool] | None = None) -> SignalWaiter:
    """Start listening now, await later: ``w = expect_signal(sig); click(); await w.wait(5)``."""
    return SignalWaiter(*signals, count=count, where=where)


async def wait_signal(signal: Any, timeout: float = 10.0) -> tuple[Any, ...]:
    """Await the next emission of a Qt signal (inside a qasync-driven coroutine)."""
    return (await SignalWaiter(signal).wait(timeout))[0]


def expect_run_event(backend: Any, *kinds: type, count: int = 1,
                     where: Callable[[Any], bool] | None = None) -> SignalWaiter:
    """Listen to ``backend.run_event`` and ``backend.run_delta`` for events of ``kinds`` (any
    when none given) that ``where`` accepts; each emission's arguments are ``(event,)``."""

    def accept(event: Any) -> bool:
        return (not kinds or isinstance(event, kinds)) and (where is None or where(event))

    return SignalWaiter(backend.run_event, backend.run_delta, count=count, where=accept)


async def wait_run_event(backend: Any, *kinds: type, timeout: float = 10.0) -> Any:
    """Await the backend's next run event of ``kinds`` (see :func:`expect_run_event`)."""
    return (await expect_run_event(backend, *kinds).wait(timeout))[0][0]


def collect_run_events(backend: Any) -> list[Any]:
    """Every run event ``backend`` emits from now on, in order."""
    seen: list[Any] = []
    backend.run_event.connect(seen.append)
    backend.run_delta.connect(seen.append)
    return seen
