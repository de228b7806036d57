"""The composition root: the model a window starts on asks the keyring only on a first start."""

from __future__ import annotations

from pathlib import Path

from app.core.memory_keyring import MemoryKeyring
from app.core.secrets import SecretStore
from app.core.services import DEFAULT_OPENAI_MODEL, Services
from app.core.settings import EndpointConfig


class CountingKeyring(MemoryKeyring):
    """An in-memory keyring that counts the lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        return super().get_password(service, username)


def _services(ring: CountingKeyring) -> Services:
    return Services.create(secrets=SecretStore(backend=ring, environ={}))


def test_the_first_start_asks_the_keyring_and_later_ones_reopen_the_last_model(app_home: Path) -> None:
    ring = CountingKeyring()
    ring.set_password("llm-playground", "openai", "sk-test-0123456789")
    svc = _services(ring)
    try:
        assert svc.start_model() == (DEFAULT_OPENAI_MODEL, None) and ring.reads == 1  # first start: automatic
        svc.settings.endpoints.append(EndpointConfig(name="box", base_url="http://127.0.0.1:9/v1"))
        svc.settings.last_model, svc.settings.last_endpoint = "openai:llama3", "box"
        assert svc.start_model() == ("openai:llama3", "box") and ring.reads == 1  # remembered: no keyring
        svc.settings.default_model = "mock:echo"  # a default chosen in Settings still comes first
        assert svc.start_model() == ("mock:echo", None)
        svc.settings.default_model = None
        svc.settings.endpoints.pop()  # the endpoint is gone: automatic again
        assert svc.start_model() == (DEFAULT_OPENAI_MODEL, None) and ring.reads == 2
        svc.settings.last_model, svc.settings.last_endpoint = "no colon", None  # hand-edited: automatic
        assert svc.start_model() == (DEFAULT_OPENAI_MODEL, None)
        assert svc.default_model() == DEFAULT_OPENAI_MODEL  # the CLI's default is unchanged
    finally:
        svc.ledger.close()
        svc.history.close()
