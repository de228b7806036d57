"""SecretStore with an in-memory keyring, the fail backend, session-only and the env fallback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import pytest

from app.core.errors import NoKeyringError, SecretsError, redact
from app.core.secrets import INDEX_ENTRY, SERVICE, MemoryKeyring, SecretStore

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-1234567890abcdefTESTKEY"
OTHER = "zz-other-secret-value-42"


@pytest.fixture
def backend() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def store(backend: MemoryKeyring) -> SecretStore:
    return SecretStore(backend, environ={})


class BrokenKeyring(MemoryKeyring):
    """A keyring that fails on every call, with the key in its own error text."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked(f"locked while handling {OTHER}")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"cannot store {password}")


def test_memory_keyring_is_never_auto_selected() -> None:
    assert MemoryKeyring.viable is False
    # (tests/conftest.py sets it explicitly for every test; auto-detection must never pick it)
    assert not any(isinstance(k, MemoryKeyring) for k in keyring.backend.get_all_keyring())


def test_set_get_delete_roundtrip(store: SecretStore, backend: MemoryKeyring) -> None:
    assert store.available()
    assert store.get("openai") is None
    assert store.source("openai") == "none"
    store.set("openai", f"  {KEY}\n")
    assert store.get("openai") == KEY
    assert store.source("openai") == "keyring"
    assert backend.entries[(SERVICE, "openai")] == KEY
    store.set("endpoint:vLLM", OTHER)
    assert store.names() == ["endpoint:vLLM", "openai"]
    store.delete("openai")
    assert store.get("openai") is None
    assert store.names() == ["endpoint:vLLM"]
    store.delete("openai")  # deleting twice is fine
    store.delete("endpoint:vLLM")
    assert store.names() == []
    assert backend.entries == {}  # the index entry is removed with the last key


def test_names_come_from_the_index_in_the_keyring(backend: MemoryKeyring) -> None:
    SecretStore(backend, environ={}).set("endpoint:a", OTHER)
    assert (SERVICE, INDEX_ENTRY) in backend.entries
    assert SecretStore(backend, environ={}).names() == ["endpoint:a"]  # a new store sees it


def test_bad_names_and_empty_values(store: SecretStore) -> None:
    with pytest.raises(SecretsError):
        store.set(INDEX_ENTRY, "x" * 10)
    with pytest.raises(SecretsError):
        store.get("  ")
    with pytest.raises(SecretsError, match="empty"):
        store.set("openai", "   ")


def test_registered_for_redaction(store: SecretStore) -> None:
    value = "plain-value-without-prefix-981"
    store.set("endpoint:x", value)
    assert redact(f"failed with {value}") == "failed with ***"


def test_env_fallback_is_read_only(backend: MemoryKeyring) -> None:
    env = {"OPENAI_API_KEY": KEY}
    store = SecretStore(backend, environ=env)
    assert store.get("openai") == KEY
    assert store.source("openai") == "environment"
    assert store.names() == []
    assert backend.entries == {}  # never written to the keyring
    assert store.get("endpoint:other") is None  # only openai has an env fallback
    store.set("openai", OTHER)
    assert store.get("openai") == OTHER  # keyring first
    assert store.source("openai") == "keyring"
    store.delete("openai")
    assert env == {"OPENAI_API_KEY": KEY}  # delete leaves the environment alone
    assert store.get("openai") == KEY


def test_real_environment_is_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    store = SecretStore(MemoryKeyring())
    assert store.get("openai") == KEY


@pytest.mark.parametrize("cls", [keyring.backends.fail.Keyring, keyring.backends.null.Keyring])
def test_no_secure_backend(cls: type) -> None:
    store = SecretStore(cls(), environ={})
    assert not store.available()
    with pytest.raises(NoKeyringError) as info:
        store.set("openai", KEY)
    msg = str(info.value)
    assert "session only" in msg and "gnome-keyring" in msg
    assert KEY not in msg
    with pytest.raises(NoKeyringError):
        store.get("openai")
    assert store.source("openai") == "none"


def test_no_keyring_still_reads_the_environment() -> None:
    store = SecretStore(keyring.backends.fail.Keyring(), environ={"OPENAI_API_KEY": KEY})
    assert store.get("openai") == KEY
    assert store.source("openai") == "environment"


def test_session_only_after_no_keyring() -> None:
    store = SecretStore(keyring.backends.fail.Keyring(), environ={})
    store.use_session_only()
    assert store.session_only
    assert "session only" in store.backend_name()
    store.set("openai", KEY)
    assert store.get("openai") == KEY
    assert store.source("openai") == "session"
    assert store.names() == ["openai"]
    store.delete("openai")
    assert store.get("openai") is None
    assert SecretStore(keyring.backends.fail.Keyring(), session_only=True, environ={}).get("openai") is None


def test_session_only_never_touches_the_keyring(backend: MemoryKeyring) -> None:
    store = SecretStore(backend, session_only=True, environ={})
    store.set("openai", KEY)
    assert backend.entries == {}


def test_keyring_errors_never_carry_the_key() -> None:
    store = SecretStore(BrokenKeyring(), environ={})
    with pytest.raises(SecretsError) as info:
        store.set("openai", KEY)
    assert KEY not in str(info.value) and info.value.__cause__ is None
    with pytest.raises(SecretsError, match="Unlock") as info2:
        store.get("openai")
    assert OTHER not in str(info2.value)
    assert store.source("openai") == "none"


def test_resolves_the_default_backend_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    mem = MemoryKeyring()
    calls: list[int] = []

    def fake_get_keyring() -> MemoryKeyring:
        calls.append(1)
        return mem

    monkeypatch.setattr(keyring, "get_keyring", fake_get_keyring)
    store = SecretStore(environ={})
    assert calls == []
    store.set("openai", KEY)
    assert mem.entries[(SERVICE, "openai")] == KEY
    assert calls == [1]


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the macOS backend is the real one")
def test_backend_detection_looks_for_no_apple_libraries_off_macos(tmp_path: Path) -> None:
    """Importing keyring's macOS backend runs ctypes.util.find_library (ldconfig, gcc and ld
    in subprocesses) for three Apple frameworks: 50-150 ms of every start on Linux. Off macOS
    that import is skipped, and the backend chosen is still keyring's own choice."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path / 'no-bus'}"  # no OS keyring is touched
    spy = (
        "import ctypes.util, sys\n"
        "searched = []\n"
        "real = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: searched.append(name) or real(name)\n"
    )
    ours = spy + (
        "from app.core.secrets import SecretStore\n"
        "b = SecretStore(environ={}).backend\n"
        "print(type(b).__module__ + '.' + type(b).__name__, searched)\n"
    )
    theirs = "import keyring\nb = keyring.get_keyring()\nprint(type(b).__module__ + '.' + type(b).__name__)\n"
    got = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60) for code in (ours, theirs)]  # fmt: skip
    assert all(out.returncode == 0 for out in got), [out.stderr for out in got]
    chosen, searched = got[0].stdout.strip().split(" ", 1)
    assert searched == "[]", f"looked for Apple libraries: {searched}"
    assert chosen == got[1].stdout.strip()
