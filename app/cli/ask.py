"""``ask``: stream one answer to stdout through the engine (so it lands in the usage ledger)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from app.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_PROVIDER,
    OutputClosed,
    exit_code_for,
    print_error,
    read_text_arg,
    resolve_model_id,
    run_with_services,
    silence_stdout,
)
from app.core.errors import AppError, InvalidParams, StreamInterrupted
from app.core.events import Progress, ReasoningDelta, StreamEvent, TextDelta
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest

if TYPE_CHECKING:
    from app.core.engine import GenerationResult, LiveStats
    from app.core.retry import RetryWait
    from app.core.services import Services


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``ask`` subcommand."""
    p = sub.add_parser(
        "ask", help="stream one answer to stdout", description="Stream one answer to stdout."
    )
    p.add_argument("prompt", metavar="PROMPT", help="the prompt; '-' reads it from stdin")
    p.add_argument("-m", "--model", help="provider:model (default: the settings' default model)")
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
        "--json",
        action="store_true",
        help="after the text, print one JSON line with usage, cost and speed",
    )
    p.set_defaults(func=run_ask)


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


def build_request(args: argparse.Namespace, model_id: str, prompt: str) -> GenerationRequest:
    """Validate everything and build the request (raises before anything is sent)."""
    endpoint = args.endpoint or args.base_url
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
    ).validated()
    if not prompt.strip():
        raise InvalidParams(
            "The prompt is empty.", hint="Give a prompt, or '-' to read it from stdin."
        )
    messages: list[ChatMessage] = []
    if args.system:
        messages.append(ChatMessage("system", args.system))
    messages.append(ChatMessage("user", prompt))
    adapters = tuple(parse_lora(s) for s in args.lora)
    return GenerationRequest(ref, tuple(messages), params, endpoint=endpoint, adapters=adapters)


DIM, RESET = "\x1b[2m", "\x1b[0m"


class StreamPrinter:
    """Writes text deltas to stdout (flushed per delta), progress as one stderr line and a
    thinking model's reasoning to stderr ("thinking: ...", dimmed on a terminal), so stdout
    is only ever the answer."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.printed = ""
        self.closed = False
        """True once stdout's reader went away (a broken pipe); nothing more is written."""
        self._progress_len = 0
        self._last_progress = ""
        self.reasoning_chars = 0
        self._thinking = False  # a "thinking: ..." line is open on stderr
        try:
            self._dim = err.isatty()
        except (AttributeError, ValueError):
            self._dim = False

    def __call__(self, event: StreamEvent, stats: LiveStats) -> None:
        """Engine callback."""
        if isinstance(event, TextDelta):
            self.end_progress()
            try:
                self.out.write(event.text)
                self.out.flush()
            except BrokenPipeError:  # ``ask ... | head``: stop generating, quietly
                self.closed = True
                silence_stdout()
                raise OutputClosed("stdout was closed by its reader; the generation was stopped.") from None
            self.printed += event.text
        elif isinstance(event, ReasoningDelta):
            self._reasoning(event.text)
        elif isinstance(event, Progress):
            self._progress(event)

    def _reasoning(self, text: str) -> None:
        self.reasoning_chars += len(text)
        if not self._thinking:
            self.end_progress()
            text = "thinking: " + text.lstrip()
            self._thinking = True
        self.err.write(f"{DIM}{text}{RESET}" if self._dim else text)
        self.err.flush()

    def retry_wait(self, notice: RetryWait) -> None:
        """The countdown while a request waits to be retried, on stderr: one line ticking
        each second on a terminal ("OpenAI: rate limited; retrying in 12 s (attempt 2 of
        3)..."), one line per wait otherwise."""
        if notice.seconds_left <= 0:
            return
        line = notice.message() + "..."
        if self._dim:  # a terminal
            self._status(line)
        elif notice.seconds_left >= notice.delay_s:
            self.end_progress()
            self.err.write(line + "\n")
            self.err.flush()

    def _progress(self, event: Progress) -> None:
        pct = f" {event.fraction * 100:3.0f}%" if event.fraction is not None else ""
        self._status(f"{event.phase}{pct}" + (f" - {event.message}" if event.message else ""))

    def _status(self, line: str) -> None:
        if line == self._last_progress:
            return
        self._last_progress = line
        pad = max(0, self._progress_len - len(line))
        self.err.write("\r" + line + " " * pad)
        self.err.flush()
        self._progress_len = len(line)

    def end_progress(self) -> None:
        """Finish the progress or thinking line (if any) so later output starts on a new line."""
        if self._thinking:
            self._thinking = False
            self.err.write("\n")
            self.err.flush()
        if self._progress_len:
            self.err.write("\n")
            self.err.flush()
            self._progress_len = 0

    def end_text(self) -> None:
        """End the streamed text with a newline when it lacks one."""
        if self.printed and not self.printed.endswith("\n") and not self.closed:
            self.out.write("\n")
            self.out.flush()


def run_ask(args: argparse.Namespace) -> int:
    """Run ``ask``; return the exit code."""
    out, err = sys.stdout, sys.stderr
    prompt = read_text_arg(args.prompt)
    if args.model:  # validate before any service is built: bad input sends nothing
        build_request(args, args.model, prompt)
    printer = StreamPrinter(out, err)

    async def body(services: Services) -> GenerationResult:
        request = build_request(args, args.model or services.default_model(), prompt)
        if request.model.provider == "openai":  # a retry's countdown on stderr
            provider = services.registry.get("openai")
            if hasattr(provider, "on_wait"):
                provider.on_wait = printer.retry_wait
        return await services.engine.run(request, printer)

    try:
        try:
            result = run_with_services(body)
        finally:
            printer.end_progress()
    except StreamInterrupted as exc:
        if printer.closed:
            return EXIT_BROKEN_PIPE
        printer.end_text()
        print_error(exc, err)
        if printer.printed:
            err.write(
                f"note: the answer was cut off after {len(printer.printed)} characters; the text above is partial.\n"
            )
        return EXIT_PROVIDER
    except AppError as exc:
        if printer.closed:
            return EXIT_BROKEN_PIPE
        printer.end_text()
        print_error(exc, err)
        return exit_code_for(exc)
    printer.end_text()
    if result.finish_reason == "length" and result.reasoning and not result.text:
        err.write(
            f"note: the model spent all its tokens thinking ({args.max_tokens} max) and gave no answer; "
            "raise --max-tokens.\n"
        )
        err.flush()
    if args.json:
        out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        out.flush()
    return EXIT_OK
