"""Pure helpers of the openai provider (app/providers/openai_support.py): model facts, the
models list in any server's shape, reasoning fields, Retry-After, and the SDK's own exception
types turned into the app's errors (keys never in them)."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx2 as httpx
import openai
import pytest

from app.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ModelNotFound,
    RateLimited,
    ServerError,
    Unreachable,
)
from app.core.settings import EndpointConfig
from app.providers.openai_support import (
    context_length,
    is_reasoning_model,
    model_ids,
    parse_retry_after,
    reasoning_text,
    server_message,
    translate,
)

LOCAL = EndpointConfig(name="Local", base_url="http://127.0.0.1:9/v1")
REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def status_error(status: int, body: Any, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    """The SDK's own exception for an HTTP answer, as its client makes it."""
    response = httpx.Response(status, json=body, headers=headers, request=REQUEST)
    inner = body.get("error") if isinstance(body, dict) else body
    message = str(inner.get("message", "") if isinstance(inner, dict) else inner)
    client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    return client._make_status_error(message, body=body, response=response)


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_retry_after_as_an_http_date_in_the_future() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert parse_retry_after({"retry-after": when}) == pytest.approx(30, abs=2)
    assert parse_retry_after(None) is None
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "2"}) == 2.0


def test_model_facts() -> None:
    assert context_length("gpt-4o-mini-2024-07-18") == 128_000
    assert context_length("ft:gpt-4.1-mini:org::id") == 1_047_576  # fine-tunes keep their base's window
    assert context_length("gpt-5-chat-latest") == 128_000  # the longest prefix wins
    assert context_length("llama3") is None
    assert is_reasoning_model("o3-mini") and is_reasoning_model("gpt-5") and is_reasoning_model("O1")
    assert not is_reasoning_model("gpt-5-chat-latest") and not is_reasoning_model("gpt-4o") and not is_reasoning_model("o1x")


def test_models_lists_in_every_servers_shape() -> None:
    assert model_ids({"data": [{"id": "b"}, {"id": "a"}, {"id": "a"}]}) == ["a", "b"]
    assert model_ids({"data": None}) == []  # Ollama with no models
    assert model_ids({"models": [{"name": "llama3.2:1b"}, {"model": "qwen"}, {"name": " "}]}) == ["llama3.2:1b", "qwen"]
    assert model_ids(["x", {"id": "y"}, 3]) == ["x", "y"]
    assert model_ids({"id": "single", "object": "model"}) == ["single"]
    assert model_ids({"error": "nope"}) is None and model_ids("text") is None


def test_reasoning_is_read_from_either_field() -> None:
    assert reasoning_text({"reasoning_content": "because"}) == "because"
    assert reasoning_text({"reasoning": "hmm", "reasoning_content": ""}) == "hmm"
    assert reasoning_text({"reasoning": 3}) is None and reasoning_text(None) is None


def test_server_messages_come_from_the_body_in_any_shape() -> None:
    assert server_message(status_error(400, {"error": {"message": "bad thing"}})) == "bad thing"
    assert server_message(status_error(400, {"error": "plain text"})) == "plain text"
    assert len(server_message(status_error(400, {"error": {"message": "x" * 1000}}))) == 400


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (401, {"error": {"message": "Incorrect API key"}}, AuthError, "Local (http://127.0.0.1:9/v1) refused the request (401)"),
        (404, {"error": {"message": "no such model", "code": "model_not_found"}}, ModelNotFound, "has no model 'gpt-x'"),
        (400, {"error": {"message": "This model's maximum context length is 8192"}}, ContextTooLong, "does not fit the context window of gpt-x"),
        (400, {"error": {"message": "too big", "type": "exceed_context_size_error"}}, ContextTooLong, "context window"),
        (422, {"error": {"message": "bad field"}}, BadRequest, "rejected the request (422): bad field"),
        (500, {"error": {"message": "boom"}}, ServerError, "failed (500): boom"),
    ],
)
def test_http_errors_become_the_apps_errors(status: int, body: Any, kind: type, words: str) -> None:
    error = translate(status_error(status, body), LOCAL, "gpt-x")
    assert type(error) is kind and words in error.message


def test_rate_limits_carry_retry_after_and_a_spent_quota_is_not_retried() -> None:
    limited = translate(status_error(429, {"error": {"message": "slow down"}}, {"retry-after": "7"}), LOCAL, "m")
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0 and limited.retryable
    quota = translate(status_error(429, {"error": {"message": "quota", "code": "insufficient_quota"}}), LOCAL, "m")
    assert isinstance(quota, RateLimited) and not quota.retryable and "billing" in quota.hint
    busy = translate(status_error(503, {"error": {"message": "overloaded"}}, {"retry-after": "3"}), LOCAL, "m")
    assert isinstance(busy, ServerError) and busy.retry_after == 3.0


def test_the_keys_hint_names_the_endpoints_keyring_entry() -> None:
    error = translate(status_error(401, {"error": {"message": "no"}}), LOCAL, "m")
    assert f"python -m app keys set {LOCAL.secret_name}" in error.hint


def raised_from(error: openai.APIConnectionError, cause: BaseException) -> openai.APIConnectionError:
    """``error`` raised from ``cause``, as the SDK raises it over an httpx failure."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise error from inner
    except openai.APIConnectionError as exc:
        return exc


def connection_error(cause: BaseException) -> openai.APIConnectionError:
    return raised_from(openai.APIConnectionError(request=REQUEST), cause)


def timeout(cause: BaseException) -> openai.APIConnectionError:
    return raised_from(openai.APITimeoutError(request=REQUEST), cause)


def test_connection_failures_tell_a_refused_connect_from_a_dropped_one() -> None:
    refused = translate(connection_error(httpx.ConnectError("Connection refused")), LOCAL)
    assert isinstance(refused, Unreachable) and "Could not connect to Local" in refused.message
    assert "Connection refused" in refused.message and "ends in /v1" in refused.hint
    dropped = translate(connection_error(httpx.RemoteProtocolError("peer closed connection")), LOCAL)
    assert isinstance(dropped, Unreachable) and "was dropped" in dropped.message


def test_timeouts_before_and_after_the_server_took_the_request() -> None:
    adhoc = EndpointConfig(name="http://127.0.0.1:9/v1", base_url="http://127.0.0.1:9/v1", timeout_s=30)
    connect = translate(timeout(httpx.ConnectTimeout("slow")), adhoc)
    assert isinstance(connect, Unreachable) and connect.retryable
    assert connect.message.startswith("Could not connect to http://127.0.0.1:9/v1 within 10 s")  # named once
    silent = translate(timeout(httpx.ReadTimeout("quiet")), adhoc)
    assert isinstance(silent, Unreachable) and not silent.retryable and "did not answer within 30 s" in silent.message


def test_anything_else_is_a_server_error_naming_its_type() -> None:
    error = translate(RuntimeError("odd"), LOCAL)
    assert isinstance(error, ServerError) and "RuntimeError: odd" in error.message
