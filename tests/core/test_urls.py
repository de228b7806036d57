"""URLs without credentials: userinfo and secret query values never stored, always redacted."""

from __future__ import annotations

import pytest

from app.core.errors import AuthError, redact
from app.core.urls import clean_url, is_secret_param, url_secrets


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("http://u:sk-abcdef1234567890@host:8080/v1", "http://host:8080/v1"),
        ("https://TOKENabcdef123456@api.example.com/v1/", "https://api.example.com/v1/"),
        ("https://host/v1?api_key=zzz999888777&model=x", "https://host/v1?api_key=***&model=x"),
        ("https://host/v1?Access_Token=tok12345&key=abcd1234", "https://host/v1?Access_Token=***&key=***"),
        ("https://host/v1?x-api-key=abcd1234#token=frag5678", "https://host/v1?x-api-key=***"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
        ("HTTP://User:pw123456@Host/v1", "http://Host/v1"),
        ("HTTP://Host/v1", "HTTP://Host/v1"),
        ("OpenAI", "OpenAI"),
    ],
)
def test_clean_url(url: str, clean: str) -> None:
    assert clean_url(url) == clean


def test_none_stays_none() -> None:
    assert clean_url(None) is None


def test_removed_values_are_registered_for_redaction() -> None:
    url = "http://me:pw-Very-Secret-42@host/v1?token=tok%2Fabc%2Bdef99"
    assert set(url_secrets(url)) >= {"pw-Very-Secret-42", "tok/abc+def99", "tok%2Fabc%2Bdef99"}
    clean_url(url)
    assert "pw-Very-Secret-42" not in redact(f"could not connect to {url}")
    assert "tok%2Fabc%2Bdef99" not in redact(f"could not connect to {url}")
    err = AuthError(f"Incorrect key for {url}")
    assert "pw-Very-Secret-42" not in str(err) and "tok%2Fabc" not in str(err)


def test_a_plain_user_name_is_not_a_secret() -> None:
    assert url_secrets("http://bob:pw123456@host/v1") == ["pw123456"]
    assert url_secrets("http://bob@host/v1") == []  # short: a name, not a token


@pytest.mark.parametrize("name", ["api_key", "API-KEY", "token", "access_token", "openai_api_key", "sig"])
def test_secret_param_names(name: str) -> None:
    assert is_secret_param(name)


@pytest.mark.parametrize("name", ["model", "version", "api-version", "x"])
def test_plain_param_names(name: str) -> None:
    assert not is_secret_param(name)
