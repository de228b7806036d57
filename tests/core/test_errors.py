"""The one error tree: messages say what to do, keys never show, and the fields a retry needs
are declared on the errors themselves."""

from __future__ import annotations

import inspect

import pytest

from app.core import errors as errors_mod
from app.core.errors import (
    AppError,
    AuthError,
    ContextTooLong,
    ModelNotFound,
    NoKeyringError,
    ProviderError,
    RateLimited,
    RetryAfterTooLong,
    ServerError,
    StreamInterrupted,
    Unreachable,
    redact,
    register_secret,
)


@pytest.mark.parametrize(
    "text",
    [
        "key sk-proj-abcdefghijklmnop1234 was refused",
        "Authorization: Bearer abcdefghijklmnop",
        'api_key="abcdefghijklmnop"',
        "apiKey: abcdefghijklmnop",
    ],
)
def test_anything_that_looks_like_a_key_is_redacted(text: str) -> None:
    out = redact(text)
    assert "abcdefghijklmnop" not in out and "***" in out


def test_a_registered_secret_is_redacted_wherever_it_appears() -> None:
    register_secret("hunter2-local-token")
    err = AuthError("the server said hunter2-local-token is wrong", hint="not hunter2-local-token")
    assert "hunter2" not in err.message and "hunter2" not in err.hint and "hunter2" not in str(err)
    register_secret("ab")  # too short to be a secret: never blanks ordinary text
    assert redact("abc") == "abc"


def test_a_secret_inside_a_longer_one_leaves_nothing_of_the_longer_one() -> None:
    """The longer secret goes whole, whatever the order the set of secrets has in this run:
    replacing a short one inside it first would leave the rest of the longer one readable."""
    longs = [f"zz-{tag}-0123456789-abcdefghij-tail" for tag in ("one", "two", "three")]
    for secret in longs:  # each with 11 secrets inside it: one comes first in almost any order
        register_secret(secret)
        for start in range(3, 25, 2):
            register_secret(secret[start:start + 6])
    assert redact(" ".join(longs)) == "*** *** ***"


def test_every_error_says_what_to_do() -> None:
    err = ModelNotFound("The server has no model 'x'.")
    assert err.user_message() == f"{err.message} {err.default_hint}" and "python -m app models" in err.hint
    assert AppError("plain").user_message() == "plain"
    assert "session only" in NoKeyringError("No keyring.").user_message()
    custom = ContextTooLong("Too long.", hint="Shorten it.")
    assert str(custom) == "Too long. Shorten it."


@pytest.mark.parametrize(("message", "hint", "expected"), [
    ("Rate limit reached", "Wait a moment.", "Rate limit reached. Wait a moment."),
    ("Rate limit reached.", "Wait a moment.", "Rate limit reached. Wait a moment."),
    ("Is it on?", "Check.", "Is it on? Check."),
    ('It said "no."', "Check.", 'It said "no." Check.'),
    ("The model (gpt-5)", "", "The model (gpt-5)"),
])  # fmt: skip
def test_message_and_hint_are_joined_as_sentences(message: str, hint: str, expected: str) -> None:
    assert RateLimited(message, hint=hint).user_message() == expected


def test_every_app_error_class_has_a_docstring_and_provider_errors_a_retry_default() -> None:
    classes = [c for _, c in inspect.getmembers(errors_mod, inspect.isclass) if issubclass(c, AppError)]
    assert len(classes) >= 15
    for cls in classes:
        assert cls.__doc__, cls
        if issubclass(cls, ProviderError):
            assert isinstance(cls.default_retryable, bool), cls


def test_retryable_and_retry_after_are_declared_fields() -> None:
    assert RateLimited("slow").retryable and Unreachable("down").retryable and ServerError("500").retryable
    assert not AuthError("no").retryable and not ModelNotFound("x").retryable
    quota = RateLimited("quota used up", retryable=False, retry_after=30.0)
    assert not quota.retryable and quota.retry_after == 30.0
    assert Unreachable("silent", retryable=False).retryable is False
    assert ServerError("busy", retry_after=3.0).retry_after == 3.0
    assert ServerError("plain").retry_after is None
    too_long = RetryAfterTooLong("asked for an hour", retry_after=3600.0)
    assert isinstance(too_long, RateLimited) and not too_long.retryable


def test_an_interrupted_stream_keeps_its_partial_text() -> None:
    err = StreamInterrupted("cut", partial_text="Hello wor")
    assert err.partial_text == "Hello wor" and "kept" in err.hint
    assert StreamInterrupted("cut").partial_text == ""
