"""SecretStore against a real Secret Service (gnome-keyring under dbus-run-session).

Run by CI with LLM_PLAYGROUND_REAL_KEYRING=1, e.g.:
  dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets \
    >/dev/null; LLM_PLAYGROUND_REAL_KEYRING=1 python -m pytest tests/core/test_secrets_real.py'
"""

from __future__ import annotations

import os
import uuid

import pytest

from app.core.secrets import SERVICE, SecretStore

pytestmark = [
    pytest.mark.keyring_real,
    pytest.mark.skipif(
        os.environ.get("LLM_PLAYGROUND_REAL_KEYRING") != "1",
        reason="needs a real Secret Service: set LLM_PLAYGROUND_REAL_KEYRING=1 and run under "
        "dbus-run-session with an unlocked gnome-keyring-daemon (see .ci/run)",
    ),
]


def test_secret_service_roundtrip() -> None:
    from keyring.backends.SecretService import Keyring

    backend = Keyring()
    store = SecretStore(backend, environ={})
    assert store.available(), store.backend_name()
    name = f"endpoint:test-{uuid.uuid4().hex[:8]}"
    value = f"sk-real-{uuid.uuid4().hex}"
    try:
        store.set(name, value)
        assert backend.get_password(SERVICE, name) == value  # really in the Secret Service
        assert SecretStore(Keyring(), environ={}).get(name) == value  # a fresh store reads it
        assert name in store.names()
        assert store.source(name) == "keyring"
    finally:
        store.delete(name)
    assert store.get(name) is None
    assert name not in store.names()
