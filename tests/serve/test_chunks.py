"""Tests of app/serve/chunks.py: a streamed text chunk (made from a template once per answer)
is exactly OpenAI's ``chat.completion.chunk``, whatever its text and model id."""

from __future__ import annotations

import json

from app.serve.chunks import ChunkWriter


def _openai_chunk(model: str, text: str, created: int, usage: bool) -> dict[str, object]:
    chunk: dict[str, object] = {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created, "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}],
    }  # fmt: skip
    if usage:
        chunk["usage"] = None
    return chunk


def test_a_text_chunk_is_openai_s_chunk_exactly() -> None:
    for model in ("mock:echo", 'a "model" with \\ and "\x00text\x00'):  # (its JSON holds the template's mark)
        for usage in (False, True):
            writer = ChunkWriter("chatcmpl-1", model, include_usage=usage, logprobs=False)
            for text in ("hello", ' a "quote", a \\ and ünïcode ✓\n\t', "", "\x00text\x00"):
                data = writer.text(text)
                assert data.startswith(b"data: ") and data.endswith(b"\n\n") and data.count(b"\n\n") == 1
                body = json.loads(data[len(b"data: ") :])
                expected = _openai_chunk(model, text, body["created"], usage)
                assert body == expected and list(body) == list(expected)  # the same keys in OpenAI's order
                assert data == b"data: " + json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def test_a_text_chunk_with_log_probabilities_carries_them() -> None:
    from app.core.events import TokenChoice, TokenLogprob

    writer = ChunkWriter("chatcmpl-1", "mock:echo", include_usage=False, logprobs=True)
    body = json.loads(writer.text(" hi", (TokenLogprob(" hi", -0.5, (TokenChoice(" hi", -0.5),)),))[len(b"data: ") :])
    choice = body["choices"][0]
    assert choice["delta"] == {"content": " hi"}
    assert [t["token"] for t in choice["logprobs"]["content"]] == [" hi"]
