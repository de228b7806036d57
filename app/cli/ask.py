"""``ask``: stream one answer to stdout through the engine (so it lands in the usage ledger);
with ``--conversation ID|new [--parent MESSAGE_ID]`` the exchange is stored in the history too,
and the conversation's path is sent as context (see :mod:`app.cli.exchange`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.cli import ask_tools
from app.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_PROVIDER,
    exit_code_for,
    print_error,
    read_text_arg,
    resolve_model_id,
    run_with_services,
    silence_stdout,
    subcommand,
)
from app.cli.exchange import AskConversation, check_options
from app.cli.stream_printer import StreamPrinter
from app.core.errors import AppError, InvalidParams, StreamInterrupted
from app.core.run_events import RunEvent
from app.core.tool_events import ToolCallsMade, ToolLoopFinished, ToolResultReady, ToolStepStarted
from app.core.tool_loop import LoopResult
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest

if TYPE_CHECKING:
    from app.core.engine import GenerationResult
    from app.core.services import Services
    from app.core.tool_events import LoopEvent


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``ask`` subcommand."""
    p = subcommand(sub, "ask", "stream one answer to stdout", "Stream one answer to stdout.",
                   run_ask, text=("prompt", "prompt"))  # fmt: skip
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint", metavar="NAME", help="a named OpenAI-compatible endpoint from the settings"
    )
    where.add_argument(
        "--base-url",
        metavar="URL",
        help="an OpenAI-compatible base URL, e.g. http://localhost:11434/v1",
    )
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument(
        "--temperature",
        type=float,
        help="sampling temperature 0-2 (default 0.7; 0, greedy, for the bundled local:smollm2)",
    )
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--stop", metavar="STR", action="append", default=[], help="stop sequence (repeatable)"
    )
    p.add_argument(
        "--lora",
        metavar="PATH[:SCALE]",
        action="append",
        default=[],
        help="LoRA adapter for local models (repeatable)",
    )
    p.add_argument(
        "--logprobs",
        metavar="K",
        type=int,
        help="each token's log-probability and its K most likely alternatives (0-20); in --json as 'tokens'",
    )
    p.add_argument(
        "--assistant-prefix",
        metavar="TEXT",
        default="",
        help="the answer starts with TEXT and the model continues it (the text includes it)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="after the text, print one JSON line with usage, cost and speed (on failure too: "
        "with 'error' and the partial text)",
    )
    p.add_argument(
        "--conversation",
        metavar="ID|new",
        help="store the exchange in this conversation of the history ('new': a new one) and send "
        "its messages as context; --json adds conversation_id, user_message_id and message_id",
    )
    p.add_argument(
        "--parent",
        metavar="MESSAGE_ID",
        type=int,
        help="with --conversation: answer from this message (a new branch) instead of the latest",
    )
    p.add_argument(
        "--show-code",
        choices=("python", "curl", "transformers"),
        metavar="python|curl|transformers",
        help="print a standalone program that sends this request, instead of sending it "
        "(the key is read from an environment variable, never written)",
    )
    ask_tools.add_arguments(p)
    p.set_defaults(json_failure=json_failure)


def parse_lora(spec: str) -> AdapterSpec:
    """``PATH[:SCALE]``; a trailing part that is not a number stays part of the path."""
    path, sep, scale_text = spec.rpartition(":")
    if sep and path:
        try:
            scale = float(scale_text)
        except ValueError:
            return AdapterSpec(spec)
        if not 0.0 <= scale <= 10.0:
            raise InvalidParams(
                f"LoRA scale must be between 0 and 10 (got {scale_text}).",
                hint="Write it as --lora PATH:0.8.",
            )
        return AdapterSpec(path, scale=scale)
    return AdapterSpec(spec)


def build_request(args: argparse.Namespace, model_id: str, prompt: str, *, context: Sequence[ChatMessage] = (),
                  system: str | None = None, endpoint: str | None = None) -> GenerationRequest:
    """Validate everything and build the request (raises before anything is sent): the system
    prompt (``system``, default ``--system``), the ``context`` messages, then the prompt."""
    endpoint = args.endpoint or args.base_url or endpoint
    ref = resolve_model_id(model_id, endpoint)
    temperature = args.temperature
    if temperature is None:
        from app.providers.bundled import default_temperature

        temperature = default_temperature(str(ref))
    params = GenerationParams(
        temperature=temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
        stop=tuple(args.stop),
        logprobs=args.logprobs,
    ).validated()
    if not prompt.strip():
        raise InvalidParams(
            "The prompt is empty.", hint="Give a prompt, or '-' to read it from stdin."
        )
    messages: list[ChatMessage] = []
    system = args.system if system is None else system
    if system:
        messages.append(ChatMessage("system", system))
    messages.extend(context)
    messages.append(ChatMessage("user", prompt))
    adapters = tuple(parse_lora(s) for s in args.lora)
    return GenerationRequest(ref, tuple(messages), params, endpoint=endpoint, adapters=adapters,
                             prefix=args.assistant_prefix, **ask_tools.request_fields(args))


def run_ask(args: argparse.Namespace) -> int:
    """Run ``ask``; return the exit code."""
    out, err = sys.stdout, sys.stderr
    printer = StreamPrinter(out, err)
    stored: list[AskConversation] = []
    try:
        prompt = read_text_arg(args.prompt)
        check_options(args.conversation, args.parent)
        if args.model:  # validate before any service is built: bad input sends nothing
            build_request(args, args.model, prompt)
    except AppError as exc:
        print_error(exc, err)
        _json_failure(args, printer, exc)
        return exit_code_for(exc)

    if getattr(args, "show_code", None):
        return _show_code(args, prompt)

    looping = ask_tools.wanted(args)
    tool_lines = ask_tools.ToolPrinter(err, printer.end_line)

    def on_loop_event(event: RunEvent | LoopEvent) -> None:
        if isinstance(event, ToolCallsMade | ToolResultReady | ToolLoopFinished | ToolStepStarted):
            tool_lines(event)
        else:
            printer(event)

    async def body(services: Services) -> GenerationResult | LoopResult:
        if args.conversation is None:
            request = build_request(args, args.model or services.default_model(), prompt)
            printer.model_id = str(request.model)
            if looping:
                return await ask_tools.run_loop(services, args, request, on_loop_event, err)
            return await services.scheduler.run(request, on_event=printer)
        exchange = AskConversation(services.history, args.conversation, args.parent, services.ledger)  # unknown: exit 2
        stored.append(exchange)
        own_model = args.model or exchange.model
        system = args.system if args.system is not None else exchange.system_prompt
        request = build_request(args, own_model or services.default_model(), prompt, context=exchange.context(),
                                system=system, endpoint=None if args.model else exchange.endpoint)
        printer.model_id = str(request.model)
        request = exchange.begin(prompt, request, system)
        if looping:  # the loop writes every step (calls, results, answers) through the exchange's store
            return await ask_tools.run_loop(services, args, request, on_loop_event, err, exchange)
        answers = exchange.answers

        def on_event(event: RunEvent) -> None:  # the printer first, then the answer's saves
            printer(event)
            answers.on_event(event)

        ids = exchange.ids()
        run = services.scheduler.submit(request, on_event=on_event, conversation_id=ids["conversation_id"],
                                        message_id=ids["message_id"])
        if exchange.answer is not None:
            answers.follow(exchange.answer, run)
        try:
            return await run
        except asyncio.CancelledError:  # Ctrl+C: the answer ends stopped, its partial text kept
            answers.interrupt(run.id, None)
            raise

    try:
        try:
            outcome = run_with_services(body)
        finally:
            printer.end_progress()
            if stored and (note := stored[0].pending_note()) and not printer.closed:
                printer.end_text()  # a busy history: the exchange waits in its journal
                err.write(note + "\n")
                err.flush()
    except KeyboardInterrupt:  # Ctrl+C: the ledger has the run as cancelled; --json still ends with its line
        printer.end_text()
        _json_failure(args, printer, None, stored)
        args.json_done = True  # the dispatcher prints no second line
        raise
    except StreamInterrupted as exc:
        if printer.closed:
            return EXIT_BROKEN_PIPE
        printer.end_text()
        print_error(exc, err)
        if printer.printed_chars:
            err.write(
                f"note: the answer was cut off after {printer.printed_chars} characters; the text above is partial.\n"
            )
        _json_failure(args, printer, exc, stored)
        return EXIT_PROVIDER
    except AppError as exc:
        if printer.closed:
            return EXIT_BROKEN_PIPE
        printer.end_text()
        print_error(exc, err)
        _json_failure(args, printer, exc, stored)
        return exit_code_for(exc)
    printer.end_text()
    loop = outcome if isinstance(outcome, LoopResult) else None
    result = outcome.last if isinstance(outcome, LoopResult) else outcome
    printer.feedback.finish(result)  # "31 tok/s · first token 0.21 s" on a terminal
    if result.finish_reason == "length" and result.reasoning and not result.text:
        err.write(
            f"note: the model spent all its tokens thinking ({args.max_tokens} max) and gave no answer; "
            "raise --max-tokens.\n"
        )
        err.flush()
    if loop is not None and loop.finish_reason == "tool_calls" and not args.json:
        out.write(ask_tools.pending_lines(loop))  # the calls nobody answered are the run's outcome
        out.flush()
    if args.json:
        data = result.to_json() if loop is None else loop.to_json()
        if stored:
            data.update(stored[0].ids())
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        out.flush()
    return EXIT_OK


def _show_code(args: argparse.Namespace, prompt: str) -> int:
    """``--show-code``: print the program for the request; nothing is sent."""
    from app.providers.code_targets import code_for

    async def body(services: Services) -> str:
        request = build_request(args, args.model or services.default_model(), prompt)
        return code_for(services, request, args.show_code, ask_tools.stubs(args))

    try:
        text = run_with_services(body)
    except AppError as exc:
        print_error(exc)
        return exit_code_for(exc)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


def json_failure(args: argparse.Namespace, exc: AppError | None) -> None:
    """With ``--json``: the one JSON line for an ``ask`` that failed before it started (a bad
    argument) or was stopped by Ctrl+C (``exc`` None)."""
    _json_failure(args, StreamPrinter(sys.stdout, sys.stderr), exc)


def _json_failure(args: argparse.Namespace, printer: StreamPrinter, exc: AppError | None,
                  stored: Sequence[AskConversation] = ()) -> None:
    """With ``--json``: the one JSON line for a failed request (``exc``) or one stopped by
    Ctrl+C (``exc`` None), with the usual keys, ``error`` and the partial text; usage and
    cost are the ledger's (estimated from the partial text), null when nothing was recorded.
    With ``--conversation``, the ids of what was stored (null when nothing was)."""
    if not getattr(args, "json", False) or printer.closed:
        return
    from app.core.generation import GenerationResult

    stats = printer.last_stats
    text = exc.partial_text if isinstance(exc, StreamInterrupted) else printer.printed
    recorded = exc.result if exc is not None and isinstance(exc.result, GenerationResult) else None
    figures = recorded.to_json() if recorded is not None else {}
    data = {
        "model": printer.model_id or getattr(args, "model", None),
        "text": text,
        "usage": figures.get("usage"),
        "cost_usd": figures.get("cost_usd"),
        "ttft_s": stats.ttft_s if stats is not None else None,
        "tokens_per_s": None,
        "finish_reason": "error" if exc is not None else "cancelled",
        "reasoning_chars": printer.reasoning_chars,
        "error": exc.user_message() if exc is not None else "Cancelled.",
    }
    if getattr(args, "conversation", None) is not None:
        data.update(stored[0].ids() if stored else
                    {"conversation_id": None, "user_message_id": None, "message_id": None})
    try:
        printer.out.write(json.dumps(data, ensure_ascii=False) + "\n")
        printer.out.flush()
    except BrokenPipeError:
        silence_stdout()
