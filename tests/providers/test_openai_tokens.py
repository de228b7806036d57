"""Token counts by a server's own tokenizer when it sends no usage (vLLM, llama.cpp,
llama-cpp-python), against the loopback server's counting routes; the way that works is
remembered per server; ``length`` means exactly max_tokens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.events import UsageReport
from app.core.tokens import count_chat, count_text
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.chat_templates import render
from app.providers.openai import OpenAIProvider
from app.providers.openai_tokens import LLAMA_CPP_PYTHON, LLAMACPP, VLLM
from tests.support.openai_server import OpenAIServer, chatml, count_tokens, provider_context, text

Run = Callable[..., Any]
MESSAGES = (ChatMessage("user", "What is the capital of France?"),)
ANSWER = ("The", " capital", " of", " France", " is", " Paris", ".")
SMOL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _provider(server: OpenAIServer, **endpoint: Any) -> OpenAIProvider:
    return OpenAIProvider(provider_context([server.endpoint(**endpoint)]))


def _request(model: str = "served-model", **params: Any) -> GenerationRequest:
    return GenerationRequest(ModelRef("openai", model), MESSAGES, GenerationParams(**params), endpoint="Loopback")


async def _usage(provider: OpenAIProvider, req: GenerationRequest) -> UsageReport:
    events = [e async for e in provider.stream(req)]
    usage = events[-2]
    assert isinstance(usage, UsageReport)
    return usage


def _counting_requests(server: OpenAIServer) -> list[str]:
    return [r.path for r in server.requests if r.path in ("/tokenize", "/apply-template", "/extras/tokenize")]


def _metadata_gguf(path: Path, template: str = SMOL_TEMPLATE) -> Path:
    """A GGUF file with only a tokenizer's metadata (what a chat template needs)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_token_list(["<unk>", "<|im_start|>", "<|im_end|>", "a", "b"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("kind", [VLLM, LLAMACPP])
def test_a_server_that_sends_no_usage_is_asked_to_count(kind: str, run: Run) -> None:
    with OpenAIServer(send_usage=False, tokenizer=kind, models=["served-model"]) as server:
        server.enqueue(text(*ANSWER), text(*ANSWER))
        provider = _provider(server)

        async def twice() -> tuple[UsageReport, UsageReport]:
            try:
                return await _usage(provider, _request()), await _usage(provider, _request())
            finally:
                await provider.aclose()

        first, second = run(twice())
        probes = _counting_requests(server)
    prompt = count_tokens(chatml([{"role": "user", "content": MESSAGES[0].content}]))
    if kind == LLAMACPP:
        prompt += 1  # its /tokenize adds the BOS when asked to, as its chat completions do
    assert first == second == UsageReport(prompt, count_tokens("".join(ANSWER)), estimated=True)
    assert provider.tokens.method(server.base_url) == kind
    # the way that works is found once: later counts go straight to it
    per_count = {VLLM: 2, LLAMACPP: 3}[kind]  # vLLM: prompt + answer; llama.cpp: template, prompt, answer
    first_run = len(probes) - per_count
    assert first_run >= per_count
    assert probes[first_run:] == probes[first_run - per_count:first_run]


def test_llama_cpp_python_counts_with_the_gguf_template(tmp_path: Path, run: Run) -> None:
    """llama-cpp-python names the GGUF it serves; its template adds a default system prompt
    (37 tokens where the text alone is 14, as measured against the real server)."""
    gguf_file = _metadata_gguf(tmp_path / "SmolLM2-mini.gguf")
    with OpenAIServer(send_usage=False, tokenizer=LLAMA_CPP_PYTHON, tokenize_bos=True,
                      models=[str(gguf_file)]) as server:  # fmt: skip
        server.enqueue(text(*ANSWER))
        provider = _provider(server)

        async def once() -> UsageReport:
            try:
                return await _usage(provider, _request("anything"))  # any name: it serves its one model
            finally:
                await provider.aclose()

        usage = run(once())
    rendered = render(SMOL_TEMPLATE, MESSAGES, special_tokens={"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})
    assert "You are a helpful AI assistant named SmolLM" in rendered
    # the BOS its tokenize route adds is not counted (its chat handler adds none)
    assert usage == UsageReport(count_tokens(rendered), count_tokens("".join(ANSWER)), estimated=True)
    assert usage.prompt_tokens > count_chat("anything", MESSAGES).tokens + 10


def test_llama_cpp_python_without_the_file_adds_the_template_overhead(run: Run) -> None:
    with OpenAIServer(send_usage=False, tokenizer=LLAMA_CPP_PYTHON, models=["/not/on/this/machine.gguf"]) as server:
        server.enqueue(text(*ANSWER))
        provider = _provider(server)

        async def once() -> UsageReport:
            try:
                return await _usage(provider, _request())
            finally:
                await provider.aclose()

        usage = run(once())
    content = count_tokens(f"user\n{MESSAGES[0].content}")
    assert usage.prompt_tokens == content + 4 + 3 and usage.estimated


def test_finish_length_means_exactly_max_tokens(run: Run) -> None:
    with OpenAIServer(send_usage=False) as server:  # counts nothing itself
        server.enqueue(text("one two", " three four five", finish_reason="length"))
        provider = _provider(server)

        async def once() -> UsageReport:
            try:
                return await _usage(provider, _request("gpt-4o-mini", max_tokens=7))
            finally:
                await provider.aclose()

        usage = run(once())
    assert usage.completion_tokens == 7 and usage.estimated
    assert usage.prompt_tokens == count_chat("gpt-4o-mini", MESSAGES).tokens


def test_a_server_that_cannot_count_is_asked_once(run: Run) -> None:
    with OpenAIServer(send_usage=False) as server:
        server.enqueue(text(*ANSWER), text(*ANSWER))
        provider = _provider(server)

        async def twice() -> list[UsageReport]:
            try:
                return [await _usage(provider, _request("gpt-4o-mini")) for _ in range(2)]
            finally:
                await provider.aclose()

        first, second = run(twice())
        unknown_paths = [r.path for r in server.requests if not r.path.endswith("/chat/completions")]
    expected = UsageReport(count_chat("gpt-4o-mini", MESSAGES).tokens, count_text("gpt-4o-mini", "".join(ANSWER)).tokens,
                           estimated=True)  # fmt: skip
    assert first == second == expected
    assert provider.tokens.known(server.base_url) and provider.tokens.method(server.base_url) is None
    # three ways tried (404 each) after the first answer, none after the second
    assert unknown_paths == ["/apply-template", "/tokenize", "/extras/tokenize"]


def test_the_before_sending_count_asks_the_server(run: Run) -> None:
    with OpenAIServer(tokenizer=VLLM) as server:
        provider = _provider(server)
        count = provider.count_request("Loopback", "served-model", list(MESSAGES))
    assert count is not None and count.exact
    assert count.tokens == count_tokens(chatml([{"role": "user", "content": MESSAGES[0].content}]))


def test_an_unreachable_server_is_not_asked_on_every_keystroke() -> None:
    from app.core.settings import EndpointConfig

    provider = OpenAIProvider(provider_context([EndpointConfig(name="Gone", base_url="http://127.0.0.1:9/v1")]))
    assert provider.count_request("Gone", "m", list(MESSAGES)) is None
    assert not provider.tokens.known("http://127.0.0.1:9/v1")  # not cached as "cannot count"...
    assert provider.tokens._target(provider.endpoint("Gone"), None) is None  # ...but left alone a while
