"""``count``: the token count of a text, or of a one-message chat request with its overhead."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from app.cli.common import EXIT_OK, read_text_arg, run_with_services, subcommand
from app.core.types import ChatMessage, ModelRef, TokenCount

if TYPE_CHECKING:
    from app.core.services import Services

def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``count`` subcommand."""
    p = subcommand(sub, "count", "count tokens", "Count the tokens of a text for a model.",
                   run_count, text=("text", "text"))  # fmt: skip
    p.add_argument(
        "--chat",
        action="store_true",
        help="count a one-message user chat request, with its overhead",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def count_for(services: Services, ref: ModelRef, text: str, chat: bool) -> TokenCount:
    """Count with the model's own tokenizer where the app has it, else a labelled estimate
    (each provider's ``count_tokens``; the text alone is the request minus its overhead)."""
    messages = [ChatMessage("user", text)]
    if ref.in_process:
        from app.core.services import local_models_available

        if local_models_available():  # a one-shot command may pay for an exact tokenizer
            import transformers  # noqa: F401
    provider = services.registry.get(ref.provider)
    full = provider.count_tokens(ref.name, messages)
    if chat:
        return full
    # the text alone: the request minus the overhead of an empty message
    empty = provider.count_tokens(ref.name, [ChatMessage("user", "")])
    n = max(0, full.tokens - empty.tokens)
    if text and not full.exact:  # a rounded-down estimate must not call a text 0 tokens
        n = max(1, n)
    return TokenCount(n, full.exact, full.method)


def describe(count: TokenCount) -> str:
    """``N tokens (exact, o200k_base)`` or ``N tokens (estimate, ...)``."""
    unit = "token" if count.tokens == 1 else "tokens"
    method = count.method
    if method.startswith("estimate (") and method.endswith(")"):
        method = method[len("estimate (") : -1]
    label = "exact" if count.exact else "estimate"
    return f"{count.tokens} {unit} ({label}, {method})"


def run_count(args: argparse.Namespace) -> int:
    """Run ``count``; return the exit code."""
    text = read_text_arg(args.text)

    async def body(services: Services) -> tuple[ModelRef, TokenCount]:
        ref = ModelRef.parse(args.model or services.default_model())
        # off the loop: a local model's tokenizer is loaded for an exact count (see _tokenizer_for)
        return ref, await asyncio.to_thread(count_for, services, ref, text, args.chat)

    ref, count = run_with_services(body)
    if args.json:
        payload = {
            "model": str(ref),
            "tokens": count.tokens,
            "exact": count.exact,
            "method": count.method,
            "chat": bool(args.chat),
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        sys.stdout.write(describe(count) + "\n")
    sys.stdout.flush()
    return EXIT_OK
