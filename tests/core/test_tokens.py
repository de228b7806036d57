"""Offline tiktoken counting: known values, chat overhead, estimates, no network."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.core import tokens
from app.core.errors import ConfigError
from app.core.types import ChatMessage


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a socket fails the test."""

    def _blocked(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("gpt-5.1", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama3.1:8b", None),
        ("o10", None),
        ("gpt-40", None),
        ("", None),
    ],
)
def test_encoding_name_for(model: str, expected: str | None) -> None:
    assert tokens.encoding_name_for(model) == expected


@pytest.mark.parametrize(
    ("encoding", "text", "ids"),
    [
        # Published in tiktoken's own tests and README.
        ("cl100k_base", "hello world", [15339, 1917]),
        ("o200k_base", "hello world", [24912, 2375]),
    ],
)
def test_known_token_ids(encoding: str, text: str, ids: list[int]) -> None:
    enc = tokens.get_encoding(encoding)
    assert enc.encode(text) == ids
    assert enc.decode(ids) == text


@pytest.mark.parametrize(
    ("model", "text", "n"),
    [
        ("gpt-4", "hello world", 2),
        ("gpt-4o", "hello world", 2),
        ("gpt-4", "tiktoken is great!", 6),  # the OpenAI cookbook's example
        ("gpt-4o", "tiktoken is great!", 6),
        ("gpt-4o", "", 0),
        ("gpt-4", "Hello, world! 你好", 7),
        ("gpt-4o", "Hello, world! 你好", 6),
    ],
)
def test_count_text_exact(model: str, text: str, n: int) -> None:
    count = tokens.count_text(model, text)
    assert (count.tokens, count.exact) == (n, True)
    assert count.method == tokens.encoding_name_for(model)


def test_preload_from_threads_builds_each_encoding_once() -> None:
    import threading

    tokens.get_encoding.cache_clear()
    try:
        threads = [threading.Thread(target=tokens.preload) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert tokens._build_encoding.cache_info().misses == len(tokens.ENCODINGS)
        assert tokens.get_encoding("o200k_base") is tokens.get_encoding("o200k_base")
    finally:
        tokens.get_encoding.cache_clear()


def test_special_token_text_is_counted_not_rejected() -> None:
    count = tokens.count_text("gpt-4o", "<|endoftext|>")
    assert count.tokens > 1  # counted as plain text, not as the single special token


def test_unknown_model_is_a_labelled_estimate() -> None:
    count = tokens.count_text("llama3", "hello world")
    assert count.exact is False
    assert count.method == "estimate (cl100k_base)"
    assert count.tokens == 2


def test_count_chat_matches_the_cookbook_formula() -> None:
    msgs = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "hello world")]
    for model, enc_name in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")):
        enc = tokens.get_encoding(enc_name)
        expected = 3 + sum(3 + len(enc.encode(m.role)) + len(enc.encode(m.content)) for m in msgs)
        count = tokens.count_chat(model, msgs)
        assert count.tokens == expected
        assert count.exact and count.method == enc_name
    # role "user"/"system" are one token each: 3 (priming) + (3+1+6) + (3+1+2)
    assert tokens.count_chat("gpt-4o", msgs).tokens == 19


def test_count_chat_empty_and_unknown() -> None:
    assert tokens.count_chat("gpt-4o", []).tokens == 3
    est = tokens.count_chat("mistral-7b", [ChatMessage("user", "hello world")])
    assert (est.tokens, est.exact, est.method) == (3 + 3 + 1 + 2, False, "estimate (cl100k_base)")


def test_patterns_and_special_tokens_match_tiktoken_ext(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our copies of the split patterns/special tokens equal tiktoken_ext.openai_public's."""
    import tiktoken_ext.openai_public as public

    monkeypatch.setattr(public, "load_tiktoken_bpe", lambda *a, **k: {})
    for name in tokens.ENCODINGS:
        spec = getattr(public, name)()
        assert (spec["pat_str"], spec["special_tokens"]) == tokens.ENCODING_SPECS[name]


def test_loading_needs_no_network_and_writes_no_cache(tmp_path: Path, no_network: None, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    tokens.get_encoding.cache_clear()
    try:
        assert tokens.count_text("gpt-4o", "hello world").tokens == 2
        assert tokens.count_text("gpt-4", "hello world").tokens == 2
    finally:
        tokens.get_encoding.cache_clear()
    assert list(cache.iterdir()) == []


def test_fresh_process_without_home_or_network(tmp_path: Path) -> None:
    """A new interpreter with an empty cache dir and sockets disabled still counts."""
    code = (
        "import socket\n"
        "def _no(*a, **k): raise SystemExit('network access attempted')\n"
        "socket.socket.connect = _no; socket.create_connection = _no\n"
        "from app.core.tokens import count_text\n"
        "print(count_text('gpt-4o-mini', 'tiktoken is great!').tokens)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "TIKTOKEN_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6"
    assert list(tmp_path.iterdir()) == []


def test_damaged_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tokens.resources_dir()
    (tmp_path / "tiktoken.SHA256SUMS").write_text((src / "tiktoken.SHA256SUMS").read_text())
    (tmp_path / "cl100k_base.tiktoken").write_bytes(b"aGVsbG8= 0\n")
    monkeypatch.setattr(tokens, "resources_dir", lambda: tmp_path)
    tokens.get_encoding.cache_clear()
    try:
        with pytest.raises(ConfigError, match="damaged") as info:
            tokens.get_encoding("cl100k_base")
        assert "Reinstall" in str(info.value)
        with pytest.raises(ConfigError, match="cannot be read"):
            tokens.get_encoding("o200k_base")
    finally:
        tokens.get_encoding.cache_clear()
