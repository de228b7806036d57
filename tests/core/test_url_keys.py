"""Base URLs split once at entry into a clean URL and a key kept in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.errors import ConfigError, redact
from app.core.grid.model import Variant
from app.core.settings import EndpointConfig, Settings, env_base_url
from app.core.types import ChatMessage, GenerationRequest, ModelRef
from app.core.url_keys import (
    UrlKey,
    accept_base_url,
    accept_endpoint,
    api_url,
    forget_url_keys,
    sdk_base,
    split_base_url,
    url_key,
)

KEY = "sk-inurl-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_url_keys()
    yield
    forget_url_keys()


@pytest.mark.parametrize(
    ("raw", "clean", "key"),
    [
        (f"http://user:{KEY}@h:8080/v1", "http://h:8080/v1", UrlKey(bearer=KEY)),
        (f"https://{KEY}@h/v1/", "https://h/v1", UrlKey(bearer=KEY)),
        ("http://user:sk%2Fab%40cd@h/v1", "http://h/v1", UrlKey(bearer="sk/ab@cd")),
        (f"http://h/v1?api_key={KEY}&region=eu", "http://h/v1?region=eu", UrlKey(query=(("api_key", KEY),))),
        (f"HTTP://h/v1/?key={KEY}#frag", "http://h/v1", UrlKey(query=(("key", KEY),))),
        ("http://h/v1?api_key=***", "http://h/v1", None),  # as history stores it: no key
        ("http://admin@h/v1", "http://h/v1", None),  # a short user name is not a key
        ("http://localhost:11434/v1", "http://localhost:11434/v1", None),
    ],
)
def test_split_gives_the_clean_url_and_the_key(raw: str, clean: str, key: UrlKey | None) -> None:
    split = split_base_url(raw)
    assert (split.url, split.key) == (clean, key)
    assert split_base_url(split.url).url == split.url  # clean URLs pass unchanged


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("http://[bad/v1", "IPv6"),
        (f"http://u:{KEY}@127.0.0.1:99999/v1", "port"),
        (f"http://127.0.0.1:abc/v1?api_key={KEY}", "port"),
        ("http://127.0.0.1:0/v1", "port"),
        ("http:///v1", "no host"),
        ("http://h/v 1", "spaces"),
        ("ftp://h/v1", "http://"),
    ],
)
def test_a_malformed_url_is_a_config_error_naming_it_without_its_key(raw: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        accept_base_url(raw)
    assert KEY not in info.value.user_message() and "base URL" in info.value.message
    assert url_key(raw) is None


def test_accepting_remembers_the_key_by_clean_url_and_redacts_it() -> None:
    assert accept_base_url(f"http://u:{KEY}@h/v1") == "http://h/v1"
    assert url_key("http://h/v1") == UrlKey(bearer=KEY) and url_key("http://h/v1/") == UrlKey(bearer=KEY)
    assert redact(f"oops {KEY}") == "oops ***"
    accept_base_url("http://h/v1")  # the clean URL again keeps the key
    assert url_key("http://h/v1") == UrlKey(bearer=KEY)
    assert accept_endpoint("Ollama") == "Ollama" and accept_endpoint(None) is None


def test_query_keys_go_on_the_real_request_url_never_in_the_path() -> None:
    clean = accept_base_url(f"http://h:1/v1?api_key={KEY}&region=eu")
    assert sdk_base(clean) == ("http://h:1/v1", {"region": "eu", "api_key": KEY})
    assert api_url(clean, "models") == f"http://h:1/v1/models?region=eu&api_key={KEY}"
    assert api_url("http://other/v1", "/models") == "http://other/v1/models"


def test_every_entry_holds_only_the_clean_url(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = f"http://u:{KEY}@h:9/v1"
    request = GenerationRequest(ModelRef("openai", "m"), (ChatMessage("user", "hi"),), endpoint=raw)
    assert request.endpoint == "http://h:9/v1"
    assert Variant("openai:m", endpoint=raw).endpoint == "http://h:9/v1"
    assert Variant("openai:m", endpoint="http://[bad/v1").endpoint == "http://[bad/v1"  # fails when run
    assert EndpointConfig(name="x", base_url=raw).base_url == "http://h:9/v1"
    with pytest.raises(ValueError, match="port"):
        EndpointConfig(name="x", base_url="http://h:99999/v1")
    assert Settings().resolve_endpoint(f"http://h:9/v1?api_key={KEY}").base_url == "http://h:9/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://h:7/v1?token={KEY}")
    assert env_base_url() == "http://h:7/v1" and url_key("http://h:7/v1") == UrlKey(query=(("token", KEY),))
    assert Settings().resolve_endpoint(None).base_url == "http://h:7/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://h:abc/v1")
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        env_base_url()
