"""The provider contract (optional behaviour as declared protocols) and the lazy registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.core import registry
from app.core.errors import InvalidModelId
from app.core.paths import AppPaths
from app.core.provider import (
    EndpointProvider,
    LocalModelProvider,
    Provider,
    ProviderContext,
    ProviderRegistry,
    as_endpoints,
    as_local,
    default_factories,
)
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import Settings
from app.providers.mock import MockProvider


@pytest.fixture
def context() -> ProviderContext:
    return ProviderContext(Settings(), SecretStore(MemoryKeyring(), environ={}), AppPaths.default().ensure())


def test_optional_behaviour_is_a_declared_protocol(context: ProviderContext, run: Callable[..., Any]) -> None:
    built = ProviderRegistry(context)
    for spec in registry.providers():
        provider = built.get(spec.id)
        assert isinstance(provider, Provider) and provider.id == spec.id
        # what a provider declares and what it implements agree
        assert (as_endpoints(provider) is not None) == spec.caps.endpoints
        assert (as_local(provider) is not None) == spec.in_process == spec.caps.adapters
    assert not isinstance(MockProvider(), EndpointProvider | LocalModelProvider)
    assert as_endpoints(None) is None
    openai = as_endpoints(built.get("openai"))
    assert openai is not None and openai.endpoint_errors() == {}
    assert openai.count_request("No such endpoint", "m", []) is None  # an unknown name: the request says so
    run(built.aclose())


def test_the_registry_builds_each_provider_once_from_the_registry(
    context: ProviderContext, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any]
) -> None:
    spec = registry.ProviderSpec("other", "app.providers.mock:MockProvider")
    monkeypatch.setattr(registry, "PROVIDERS", (*registry.PROVIDERS, spec))
    assert default_factories()["other"] == "app.providers.mock:MockProvider"
    built = ProviderRegistry(context)
    assert built.ids == ["openai", "huggingface", "local", "mock", "other"] and built.loaded() == {}
    first = built.get("other")
    assert built.get("other") is first and list(built.loaded()) == ["other"]
    replacement = MockProvider()
    built.register("other", lambda ctx: replacement)
    assert built.get("other") is replacement
    with pytest.raises(InvalidModelId, match="No provider 'gone'") as info:
        built.get("gone")
    assert "other" in (info.value.hint or "")
    run(built.aclose())
    assert built.loaded() == {}
