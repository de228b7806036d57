"""A model's own chat template without loading the model (app/providers/chat_templates.py):
rendered as transformers renders it, read from a model folder or a GGUF header, and counted
with the folder's tokenizer."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from app.core.types import ChatMessage
from app.providers.chat_templates import (
    count_in_folder,
    custom_tokenizer_code,
    estimate_rendered,
    folder_template,
    folder_tokenizer,
    gguf_metadata,
    gguf_template,
    render,
)
from tests.providers.test_openai_tokens import SMOL_TEMPLATE, _metadata_gguf

MSGS = (ChatMessage("user", "What is the capital of France?"),)


def test_gguf_metadata_reader_matches_the_gguf_package(tmp_path: Path) -> None:
    import gguf

    path = _metadata_gguf(tmp_path / "m.gguf")
    meta = gguf_metadata(path)
    reader = gguf.GGUFReader(str(path))
    assert meta["tokenizer.chat_template"] == reader.fields["tokenizer.chat_template"].contents()
    assert meta["tokenizer.ggml.tokens"] == reader.fields["tokenizer.ggml.tokens"].contents()
    template = gguf_template(path)
    assert template is not None and template.special_tokens == {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}


def test_render_adds_the_generation_prompt_and_the_templates_own_system_prompt() -> None:
    text = render(SMOL_TEMPLATE, MSGS)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert not render(SMOL_TEMPLATE, MSGS, add_generation_prompt=False).endswith("assistant\n")
    with_system = render(SMOL_TEMPLATE, (ChatMessage("system", "Be brief."), *MSGS))
    assert "SmolLM" not in with_system and "Be brief." in with_system


def test_render_has_transformers_helpers_and_fails_with_value_error() -> None:
    assert render("{{ bos_token }}{{ messages | tojson }}", MSGS, special_tokens={"bos_token": "<s>"}) == (
        '<s>[{"role": "user", "content": "What is the capital of France?"}]')  # fmt: skip
    assert render("{{ strftime_now('%Y') }}", MSGS).isdigit()
    with pytest.raises(ValueError, match="only user and assistant"):
        render("{{ raise_exception('only user and assistant') }}", MSGS)
    with pytest.raises(ValueError):
        render("{% for %}", MSGS)
    with pytest.raises(ValueError):  # sandboxed: no reaching into Python
        render("{{ messages.__class__.__mro__[1].__subclasses__() }}", MSGS)


def test_folder_templates_from_the_config_a_jinja_file_or_a_named_list(tmp_path: Path) -> None:
    assert folder_template(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
        "bos_token": {"content": "<s>"}, "eos_token": "</s>", "pad_token": None,
    }))  # fmt: skip
    template = folder_template(tmp_path)
    assert template is not None and template.template == "D"
    assert template.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    (tmp_path / "chat_template.jinja").write_text("J{{ eos_token }}")
    template = folder_template(tmp_path)
    assert template is not None and template.render(MSGS) == "J</s>"
    (tmp_path / "tokenizer_config.json").write_text("{broken")
    (tmp_path / "chat_template.jinja").write_text("  ")
    assert folder_template(tmp_path) is None


def test_counting_in_a_folder_matches_transformers(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tiny_model).apply_chat_template(
        [{"role": "user", "content": MSGS[0].content}], tokenize=True, add_generation_prompt=True)  # fmt: skip
    expected = len(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert count_in_folder(tiny_model, MSGS) == (expected, True)
    assert folder_tokenizer(tiny_model) is folder_tokenizer(tiny_model)  # cached


def test_a_folder_without_a_tokenizer_or_with_custom_code(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages[0].content }}"}))
    assert folder_tokenizer(tmp_path) is None and count_in_folder(tmp_path, MSGS) is None
    assert not custom_tokenizer_code(tmp_path) and not custom_tokenizer_code(tmp_path / "missing")
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": "{{ messages[0].content }}", "auto_map": {"AutoTokenizer": ["tok.Tok", None]}}))  # fmt: skip
    assert custom_tokenizer_code(custom)
    (custom / "tokenizer.json").write_bytes((tiny_model / "tokenizer.json").read_bytes())
    result = count_in_folder(custom, MSGS)
    assert result is not None and result[1] is False  # counted, but not exact: the code is never run


def test_bad_gguf_headers_raise_value_errors_and_give_no_template(tmp_path: Path) -> None:
    not_gguf = tmp_path / "a.gguf"
    not_gguf.write_bytes(b"NOPE" + b"\0" * 20)
    with pytest.raises(ValueError, match="not a GGUF file"):
        gguf_metadata(not_gguf)
    old = tmp_path / "old.gguf"
    old.write_bytes(b"GGUF" + struct.pack("<I", 1))
    with pytest.raises(ValueError, match="version 1"):
        gguf_metadata(old)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(_metadata_gguf(tmp_path / "full.gguf").read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated"):
        gguf_metadata(cut)
    assert gguf_template(cut) is None and gguf_template(tmp_path / "missing.gguf") is None
    assert gguf_template(tmp_path) is None  # a folder


def test_estimates_count_each_inline_special_token_once() -> None:
    plain = estimate_rendered("user\nhello")
    assert estimate_rendered("<|im_start|>user\nhello<|im_end|>") == plain + 2
    assert estimate_rendered("<s></s>") == 2
