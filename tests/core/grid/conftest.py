"""Fixtures for the grid tests: real services (in the test's app home) on a fresh loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def services() -> Iterator[Any]:
    """Services with an in-memory keyring (ledger, history and settings in the test home)."""
    from app.core.secrets import MemoryKeyring, SecretStore
    from app.core.services import Services

    svc = Services.create(secrets=SecretStore(backend=MemoryKeyring()))
    yield svc
    svc.ledger.close()
    svc.history.close()
