"""Tests of app/serve/routes.py: the key check, the body limit and how a stream's tokens are
gathered into chunks, through the real server and the ``openai`` SDK."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from app.core.errors import ConfigError
from app.serve.routes import parse_origins
from tests.serve.conftest import ServerThread
from tests.serve.test_server import HELLO


def test_wrong_or_missing_key_is_401_and_never_echoed(served: ServerThread) -> None:
    assert served.key and served.key.startswith("sk-local-")
    for key in ("wrong-key-123", ""):
        with pytest.raises(openai.AuthenticationError) as info:
            served.sdk(api_key=key or "x").chat.completions.create(model="mock:echo", messages=HELLO)
        assert info.value.status_code == 401 and "--show-key" in info.value.message
    request = urllib.request.Request(served.url + "/models")
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=10)
    raw.value.close()
    assert raw.value.code == 401
    assert served.key not in json.dumps([repr(f) for f in served.figures])


def test_huge_body_is_413(served: ServerThread) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        served.sdk().chat.completions.create(model="mock:echo", messages=[{"role": "user", "content": "x" * 9_000_000}])
    assert info.value.status_code == 413 and "larger than" in info.value.message


def _pieces(served: ServerThread, model: str) -> list[str]:
    stream = served.sdk().chat.completions.create(model=model, messages=HELLO, stream=True)
    return [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]


def test_a_slow_producer_s_tokens_go_out_one_by_one_and_a_fast_one_s_together(served: ServerThread) -> None:
    """Gathering never holds a token back while the producer pauses: a model that makes one
    token every 10 ms reaches the client token by token (not two to a chunk, as a fixed
    pacing longer than the gap would do); tokens that come faster share a few chunks."""
    slow = _pieces(served, "mock:tokens?n=30&rate=100")
    assert "".join(slow) == " ".join(f"tok{i}" for i in range(30))
    assert len(slow) >= 24  # one by one (a loop held up on a busy machine may join a few)
    fast = _pieces(served, "mock:tokens?n=10000")
    assert "".join(fast).endswith(" tok9999") and len(fast) < 60  # not one per token, nor per loop turn


def test_origins_are_read_from_what_a_user_writes_and_a_bad_one_is_named() -> None:
    assert parse_origins("") == ()
    assert parse_origins(" http://localhost:3000/, https://app.example  http://localhost:3000 *") == (
        "http://localhost:3000", "https://app.example", "*")  # fmt: skip
    for bad in ("localhost:3000", "ftp://host", "http://", "http://host/path", "https://host?x=1"):
        with pytest.raises(ConfigError, match="is not a web origin") as info:
            parse_origins(f"http://ok.example, {bad}")
        assert f"'{bad}'" in info.value.message and info.value.hint
