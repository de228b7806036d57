"""Prompt and completion tokens the app reports for a server that sends no usage when
streaming, against that server's own count of the same request (unstreamed, which reports
usage), with the old local estimate (tiktoken) for comparison.

Run against llama-cpp-python serving the bundled model::

    .venv/bin/python -m llama_cpp.server --model "$(.venv/bin/python -c 'from app.providers.bundled import bundled_gguf_path; print(bundled_gguf_path())')" --port 8000 &
    .venv/bin/python -m benchmarks.check_server_tokens http://127.0.0.1:8000/v1

(llama-cpp-python is not a dependency of the app: install it into a virtual environment of
its own, or this one, to run the check.)
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from app.core.events import Finished, TextDelta, UsageReport
from app.core.paths import AppPaths
from app.core.provider import ProviderContext
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.settings import EndpointConfig, RetryPolicy, Settings
from app.core.tokens import count_chat, count_text
from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.providers.openai import OpenAIProvider

CASES: list[list[tuple[str, str]]] = [
    [("user", "What is the capital of France?")],
    [("system", "Be brief."), ("user", "What is the capital of France?")],
    [("user", "Write a haiku about the sea."),
     ("assistant", "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time."),
     ("user", "Now one about mountains, please.")],
    [("system", "You are a careful assistant who answers in French."),
     ("user", "Explain in two sentences why the sky is blue, and mention Rayleigh scattering.")],
    [("user", "def add(a, b):\n    return a + b\n\nWhat does this Python function do? Answer briefly.")],
]  # fmt: skip


def unstreamed(base_url: str, messages: list[tuple[str, str]], max_tokens: int) -> dict[str, object]:
    """The server's own answer and usage for the request, not streamed."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=300)
    body = {"model": "m", "messages": [{"role": r, "content": t} for r, t in messages], "max_tokens": max_tokens,
            "temperature": 0, "top_p": 1.0, "seed": 1}  # fmt: skip  (the app sends top_p too)
    conn.request("POST", parts.path.rstrip("/") + "/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})  # fmt: skip
    answer: dict[str, object] = json.loads(conn.getresponse().read())
    conn.close()
    return answer


async def streamed(provider: OpenAIProvider, messages: list[tuple[str, str]],
                   max_tokens: int) -> tuple[str, UsageReport, str]:  # fmt: skip
    """Text, usage and finish reason as the app gets them (streamed, no usage from the server)."""
    req = GenerationRequest(ModelRef("openai", "m"), tuple(ChatMessage(r, t) for r, t in messages),
                            GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=1), endpoint="server")  # fmt: skip
    text, usage, finish = "", UsageReport(0, 0), ""
    async for event in provider.stream(req):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, UsageReport):
            usage = event
        elif isinstance(event, Finished):
            finish = event.reason
    return text, usage, finish


async def main(base_url: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="check-tokens-"))
    settings = Settings(endpoints=[EndpointConfig(name="server", base_url=base_url)], retry=RetryPolicy(max_attempts=1))
    context = ProviderContext(settings=settings, secrets=SecretStore(MemoryKeyring(), environ={}),
                              paths=AppPaths.under(home))  # fmt: skip
    provider = OpenAIProvider(context)
    worst, exact = 0.0, 0
    try:
        for max_tokens in (8, 200):
            for case in CASES:
                raw = unstreamed(base_url, case, max_tokens)
                text, usage, finish = await streamed(provider, case, max_tokens)
                counted = raw["usage"]  # type: ignore[index]
                server_prompt, server_completion = counted["prompt_tokens"], counted["completion_tokens"]  # type: ignore[index]
                msgs = [ChatMessage(r, t) for r, t in case]
                same = text == raw["choices"][0]["message"]["content"]  # type: ignore[index]
                error = abs(usage.prompt_tokens - server_prompt) / server_prompt
                worst, exact = max(worst, error), exact + (usage.prompt_tokens == server_prompt)
                print(f"max_tokens={max_tokens:3d} finish={finish:6s} same text={same!s:5s}  prompt: server "
                      f"{server_prompt:3d} app {usage.prompt_tokens:3d} (tiktoken {count_chat('m', msgs).tokens:3d})  "
                      f"completion: server {server_completion:3d} app {usage.completion_tokens:3d} "
                      f"(tiktoken {count_text('m', text).tokens:3d})")  # fmt: skip
    finally:
        await provider.aclose()
    print(f"prompt tokens equal in {exact} of {2 * len(CASES)}; worst error {worst * 100:.1f}% "
          f"(counted by: {provider.tokens.method(base_url)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("base_url", help="the server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    asyncio.run(main(parser.parse_args().base_url))
