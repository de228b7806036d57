"""An in-memory keyring backend for tests and ``--demo`` (also as ``app.core.secrets.MemoryKeyring``).

Its own module so that :mod:`app.core.secrets` does not import keyring at every start.
"""

from __future__ import annotations

import keyring.backend
import keyring.errors
from keyring.compat import properties


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-memory keyring backend for tests. Never picked automatically by ``keyring``."""

    @properties.classproperty
    def priority(cls) -> float:  # noqa: N805 - a class property
        """Not viable for auto-selection: this backend is only ever passed in explicitly."""
        raise RuntimeError("MemoryKeyring is for tests and is only used when passed explicitly")

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def __str__(self) -> str:
        return "app.core.secrets.MemoryKeyring (in memory)"

    def get_password(self, service: str, username: str) -> str | None:
        """The stored password, or None."""
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store a password."""
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        """Delete a password; raise PasswordDeleteError when absent (like real backends)."""
        try:
            del self.entries[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("not found") from None
