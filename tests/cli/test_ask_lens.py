"""``ask --logprobs K`` and ``ask --assistant-prefix TEXT`` end to end (the mock provider and
the loopback server)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from app.cli import main
from tests.support.openai_server import OpenAIServer


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    data: dict[str, Any] = json.loads(out.splitlines()[-1])
    return data


def test_logprobs_tokens_join_to_the_text_and_are_sorted(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["ask", "-m", "mock:lorem?n=20", "--logprobs", "5", "--json", "go"])
    tokens = data["tokens"]
    assert "".join(t["text"] for t in tokens) == data["text"]
    assert len(tokens) == data["usage"]["completion_tokens"] == 20
    for t in tokens:
        assert t["logprob"] <= 0 and len(t["top"]) == 5
        top = [a["logprob"] for a in t["top"]]
        assert top == sorted(top, reverse=True) and all(lp <= 0 for lp in top)
        assert sum(math.exp(lp) for lp in top) <= 1.0 + 1e-9
        assert t["top"][0]["text"] == t["text"]  # the chosen token is the most likely


def test_without_logprobs_the_json_has_no_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert "tokens" not in _json(capsys, ["ask", "-m", "mock:echo", "--json", "hi"])


def test_bad_logprobs_are_refused_before_sending(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "--logprobs", "21", "hi"]) == 2
    assert "logprobs must be a whole number from 0 to 20" in capsys.readouterr().err


def test_the_answer_continues_the_given_start(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["ask", "-m", "mock:lorem?n=4", "--assistant-prefix", "Once upon a", "--json", "go"])
    assert data["text"].startswith("Once upon a ") and len(data["text"].split()) == 3 + 4
    assert data["usage"]["completion_tokens"] == 4  # the given start is not generated


def test_a_server_continues_the_prefix_and_the_text_includes_it(
    capsys: pytest.CaptureFixture[str], openai_server: OpenAIServer
) -> None:
    data = _json(capsys, ["ask", "--base-url", openai_server.base_url, "-m", "test-model",
                          "--assistant-prefix", "Well,", "--json", "go"])  # fmt: skip
    assert data["text"] == "Well,Hello from the loopback server."
    assert openai_server.chat_requests[0].json["messages"][-1] == {"role": "assistant", "content": "Well,"}


def test_a_server_without_logprobs_notes_it_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAIServer(reject_logprobs=True) as server:
        code = main(["ask", "--base-url", server.base_url, "-m", "test-model", "--logprobs", "3", "go"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "Hello from the loopback server.\n"
    assert "note:" in err and "does not give token probabilities" in err
