"""API keys in the OS keyring (never in files), with a session-only fallback.

One keyring service, ``llm-playground``; one entry per provider or endpoint (``openai``,
``endpoint:<name>``; ``mcp:<name>`` and ``env:<VAR>`` for MCP secrets and grid files) plus a reserved index entry listing the stored names (keyring cannot
enumerate). ``OPENAI_API_KEY`` is read as a fallback for ``openai`` and never written.
Every key read or written is registered with :func:`app.core.errors.register_secret`, so it is
redacted from any error message or log line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from app.core.errors import NoKeyringError, SecretsError, register_secret

if TYPE_CHECKING:
    import keyring.backend

    from app.core.memory_keyring import MemoryKeyring as MemoryKeyring

log = logging.getLogger(__name__)

SERVICE = "llm-playground"
INDEX_ENTRY = "__llm_playground_index__"
ENV_FALLBACK: dict[str, str] = {"openai": "OPENAI_API_KEY"}
ENV_KEY_PREFIX = "env:"
"""``env:VAR``: the entry that stands in for a grid file's ``apiKeyEnvar: VAR`` when unset."""
SecretSource = Literal["keyring", "session", "environment", "none"]

# Backends that are not secure storage: failing, no-op, or plaintext files (keyrings.alt).
_INSECURE_MODULE_PREFIXES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")
_INSECURE_CLASS_NAMES = ("PlaintextKeyring", "EncryptedKeyring", "UncryptedFileKeyring")


def __getattr__(name: str) -> Any:
    """``MemoryKeyring`` from :mod:`app.core.memory_keyring`, imported on first use: keyring
    itself (~20-50 ms) is imported only when a key is first looked up, not at every start."""
    if name == "MemoryKeyring":
        from app.core.memory_keyring import MemoryKeyring as MemoryKeyring

        return MemoryKeyring
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def skip_foreign_backends() -> None:
    """Off macOS, keep keyring's backend detection from importing its macOS backend's API.

    That backend is never viable there (its priority says "macOS required"), but importing it
    looks for Apple's frameworks with ``ctypes.util.find_library``, which runs ldconfig, gcc
    and ld for each of three libraries: 50-150 ms of every start on Linux. The import is
    blocked the standard way (``None`` in ``sys.modules``); the backend stays unavailable
    exactly as before, and every other backend is detected as keyring does."""
    if sys.platform != "darwin":
        sys.modules.setdefault("keyring.backends.macOS.api", None)  # type: ignore[arg-type]


def is_secure_backend(backend: keyring.backend.KeyringBackend) -> bool:
    """True when ``backend`` stores secrets securely (not fail/null/plaintext)."""
    chained = getattr(backend, "backends", None)
    if type(backend).__name__ == "ChainerBackend" and chained is not None:
        return any(is_secure_backend(b) for b in chained)
    cls = type(backend)
    if cls.__module__.startswith(_INSECURE_MODULE_PREFIXES) or cls.__name__ in _INSECURE_CLASS_NAMES:
        return False
    return True


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or name == INDEX_ENTRY:
        raise SecretsError(f"'{name}' is not a key name.", hint="Use 'openai' or 'endpoint:<name>'.")
    return name.strip()


class SecretStore:
    """Keys per provider/endpoint in the OS keyring, or in memory when session-only."""

    def __init__(
        self,
        backend: keyring.backend.KeyringBackend | None = None,
        *,
        session_only: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._backend = backend
        self._session_only = session_only
        self._environ = environ if environ is not None else os.environ
        self._session: dict[str, str] = {}
        self._lock = threading.RLock()

    # -- backend -------------------------------------------------------------------------

    @property
    def backend(self) -> keyring.backend.KeyringBackend:
        """The keyring backend (resolved with ``keyring.get_keyring()`` on first use)."""
        if self._backend is None:
            import keyring

            skip_foreign_backends()
            self._backend = keyring.get_keyring()
        return self._backend

    def available(self) -> bool:
        """True when a secure OS keyring exists (not the fail/null/plaintext backends)."""
        try:
            return is_secure_backend(self.backend)
        except Exception:  # a broken backend discovery means: not available
            log.debug("keyring backend discovery failed", exc_info=True)
            return False

    def backend_name(self) -> str:
        """A readable name of where keys are stored now."""
        if self._session_only:
            return "session only (memory, until the app closes)"
        try:
            name = getattr(type(self.backend), "name", None)
            return str(name) if isinstance(name, str) else type(self.backend).__name__
        except Exception:
            return "none"

    @property
    def session_only(self) -> bool:
        """True when keys live in memory only for this process."""
        return self._session_only

    def use_session_only(self) -> None:
        """Keep keys in memory from now on (nothing is written to the keyring)."""
        with self._lock:
            self._session_only = True

    def _require_keyring(self) -> keyring.backend.KeyringBackend:
        if not self.available():
            raise NoKeyringError(f"No secure keyring is available (found: {self.backend_name()}).")
        return self.backend

    # -- keyring access (errors wrapped; values never in messages) ------------------------

    def _kr_get(self, entry: str) -> str | None:
        import keyring.errors  # cheap: a backend means keyring is imported already

        backend = self._require_keyring()
        try:
            return backend.get_password(SERVICE, entry)
        except keyring.errors.NoKeyringError as exc:
            raise NoKeyringError("No secure keyring is available.") from exc
        except keyring.errors.KeyringError as exc:
            raise SecretsError(
                f"The keyring could not be read ({type(exc).__name__}).",
                hint="Unlock your keyring (e.g. log in to the desktop session) and try again.",
            ) from None

    def _kr_set(self, entry: str, value: str) -> None:
        import keyring.errors  # cheap: a backend means keyring is imported already

        backend = self._require_keyring()
        try:
            backend.set_password(SERVICE, entry, value)
        except keyring.errors.KeyringError as exc:
            raise SecretsError(
                f"The keyring refused to store '{entry}' ({type(exc).__name__}).",
                hint="Unlock your keyring and try again, or choose 'session only'.",
            ) from None

    def _kr_delete(self, entry: str) -> None:
        import keyring.errors  # cheap: a backend means keyring is imported already

        backend = self._require_keyring()
        try:
            backend.delete_password(SERVICE, entry)
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise SecretsError(
                f"The keyring could not delete '{entry}' ({type(exc).__name__}).",
                hint="Unlock your keyring and try again.",
            ) from None

    def _index(self) -> list[str]:
        raw = self._kr_get(INDEX_ENTRY)
        if not raw:
            return []
        try:
            names = json.loads(raw)
        except ValueError:
            log.warning("the keyring's key index is damaged; starting a new one")
            return []
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def _write_index(self, names: list[str]) -> None:
        if names:
            self._kr_set(INDEX_ENTRY, json.dumps(sorted(set(names))))
        else:
            self._kr_delete(INDEX_ENTRY)

    # -- public API ----------------------------------------------------------------------

    def _env(self, name: str) -> str | None:
        var = ENV_FALLBACK.get(name)
        value = self._environ.get(var) if var else None
        return value.strip() or None if value else None

    def get(self, name: str) -> str | None:
        """The key for ``name``: keyring (or session memory), then the environment for openai.

        Raises :class:`NoKeyringError` when no secure keyring exists, the store is not
        session-only and no environment fallback is set.
        """
        name = _check_name(name)
        with self._lock:
            if self._session_only:
                value = self._session.get(name)
            else:
                env = self._env(name)
                if env is not None and not self.available():
                    value = None
                else:
                    value = self._kr_get(name)
        if value is None:
            value = self._env(name)
        if value:
            register_secret(value)
        return value or None

    def source(self, name: str) -> SecretSource:
        """Where :meth:`get` would find the key for ``name`` (never raises)."""
        name = _check_name(name)
        with self._lock:
            if self._session_only:
                if self._session.get(name):
                    return "session"
            else:
                try:
                    if self.available() and self._kr_get(name):
                        return "keyring"
                except Exception:
                    log.debug("keyring lookup failed", exc_info=True)
        return "environment" if self._env(name) else "none"

    def set(self, name: str, value: str) -> None:
        """Store ``value`` for ``name`` (keyring, or memory when session-only)."""
        name = _check_name(name)
        value = (value or "").strip()
        if not value:
            raise SecretsError("The key is empty.", hint="Paste the whole key, or use Delete to remove it.")
        register_secret(value)
        with self._lock:
            if self._session_only:
                self._session[name] = value
                return
            self._kr_set(name, value)
            names = self._index()
            if name not in names:
                self._write_index([*names, name])

    def delete(self, name: str) -> None:
        """Forget the stored key for ``name`` (the environment is left alone)."""
        name = _check_name(name)
        with self._lock:
            if self._session_only:
                self._session.pop(name, None)
                return
            self._kr_delete(name)
            names = self._index()
            if name in names:
                self._write_index([n for n in names if n != name])

    def names(self) -> list[str]:
        """Names that have a stored key (keyring or session), sorted."""
        with self._lock:
            if self._session_only:
                return sorted(self._session)
            return sorted(n for n in self._index() if self._kr_get(n))
