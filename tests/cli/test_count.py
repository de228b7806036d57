"""``python -m app count``: exact tiktoken counts for OpenAI models, labelled estimates otherwise."""

from __future__ import annotations

import io
import json
import sys

import pytest

from app.cli import main

TEXT = "Grüße aus München: 日本語のテキスト"


@pytest.mark.parametrize(
    ("model", "chat", "expected"),
    [
        ("openai:gpt-4o", False, "12 tokens (exact, o200k_base)"),
        ("openai:gpt-4", False, "14 tokens (exact, cl100k_base)"),
        # chat: + 3 per message + 1 for the role "user" + 3 reply priming
        ("openai:gpt-4o", True, "19 tokens (exact, o200k_base)"),
        ("openai:gpt-4", True, "21 tokens (exact, cl100k_base)"),
        ("openai:llama3.2:1b", False, "14 tokens (estimate, cl100k_base)"),
    ],
)
def test_count_openai_models(
    capsys: pytest.CaptureFixture[str], model: str, chat: bool, expected: str
) -> None:
    argv = ["count", "-m", model, TEXT] + (["--chat"] if chat else [])
    assert main(argv) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_count_json_and_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello, world!"))
    assert main(["count", "-m", "openai:gpt-4o-mini", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {
        "model": "openai:gpt-4o-mini",
        "tokens": 4,
        "exact": True,
        "method": "o200k_base",
        "chat": False,
    }


def test_count_in_process_provider_uses_its_tokenizer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", "-m", "mock:echo", "one two three four"]) == 0
    assert capsys.readouterr().out == "4 tokens (exact, mock-words)\n"
    assert main(["count", "-m", "mock:echo", "--chat", "one two three four"]) == 0
    assert capsys.readouterr().out == "7 tokens (exact, mock-words)\n"


def test_count_bad_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", "-m", "gpt-4o", "hi"]) == 2
    assert "is not a model id" in capsys.readouterr().err


def test_short_text_is_never_estimated_at_zero_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    """Without the model's tokenizer (a folder that is not there) the estimate rounds down;
    a non-empty text still counts at least one token."""
    assert main(["count", "-m", "local:/nonexistent/model", "--json", "abc"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["exact"] is False and payload["tokens"] == 1
