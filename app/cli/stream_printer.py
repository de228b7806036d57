"""How ``ask`` prints a run: the answer on stdout, progress, speed and reasoning on stderr."""

from __future__ import annotations

from typing import TextIO

from app.cli.common import OutputClosed, silence_stdout
from app.cli.progress import TerminalFeedback, is_terminal
from app.core.run_events import (
    LiveFigures,
    RunEvent,
    RunNotice,
    RunProgress,
    RunReasoning,
    RunRetrying,
    RunStats,
    RunText,
)

DIM, RESET = "\x1b[2m", "\x1b[0m"


class StreamPrinter:
    """Writes text deltas to stdout (flushed per delta), load progress and speed to stderr
    (a bar and a speed line on a terminal, see :mod:`app.cli.progress`) and a thinking model's
    reasoning to stderr ("thinking: ...", dimmed on a terminal), so stdout is only ever the
    answer. The text is kept as a list of deltas: linear in the answer's length."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self._parts: list[str] = []
        self.printed_chars = 0
        self._ends_with_newline = False
        self.closed = False
        """True once stdout's reader went away (a broken pipe); nothing more is written."""
        self.reasoning_chars = 0
        self._thinking = False  # a "thinking: ..." line is open on stderr
        # the live speed line only when the answer is not on the same screen
        self.feedback = TerminalFeedback(err, live=not is_terminal(out))
        self._dim = self.feedback.tty
        self.model_id: str | None = None
        self.last_stats: LiveFigures | None = None

    @property
    def printed(self) -> str:
        """The text written to stdout so far."""
        return "".join(self._parts)

    def __call__(self, event: RunEvent) -> None:
        """The run's event callback."""
        if isinstance(event, RunText):
            if self._thinking or self.feedback.drawing_bar:
                self.end_progress()
            try:
                self.out.write(event.text)
                self.out.flush()
            except BrokenPipeError:  # ``ask ... | head``: stop generating, quietly
                self.closed = True
                silence_stdout()
                raise OutputClosed("stdout was closed by its reader; the generation was stopped.") from None
            self._parts.append(event.text)
            self.printed_chars += len(event.text)
            self._ends_with_newline = event.text.endswith("\n")
        elif isinstance(event, RunStats):
            self.last_stats = event.figures
            self.feedback.streaming(event.figures)
        elif isinstance(event, RunReasoning):
            self._reasoning(event.text)
        elif isinstance(event, RunProgress):
            if self._thinking:
                self.end_progress()
            self.feedback.progress(event.progress)
        elif isinstance(event, RunRetrying):
            self.retry_wait(event)
        elif isinstance(event, RunNotice):
            self.end_progress()
            self.err.write(f"note: {event.message}\n")
            self.err.flush()

    def _reasoning(self, text: str) -> None:
        self.reasoning_chars += len(text)
        if not self._thinking:
            self.feedback.reasoning_started()
            self.end_progress()
            text = "thinking: " + text.lstrip()
            self._thinking = True
        self.err.write(f"{DIM}{text}{RESET}" if self._dim else text)
        self.err.flush()

    def retry_wait(self, event: RunRetrying) -> None:
        """The countdown while a request waits to be retried, on stderr: one line ticking each
        second on a terminal ("OpenAI: rate limited; retrying in 12 s (attempt 2 of 3)..."),
        one line per wait otherwise."""
        left = event.delay_s if event.seconds_left is None else event.seconds_left
        if left <= 0:
            return
        line = event.message + "..."
        if self.feedback.tty:
            self.feedback.status(line)
        elif left >= event.delay_s:
            self.end_progress()
            self.err.write(line + "\n")
            self.err.flush()

    def end_progress(self) -> None:
        """Finish the thinking line and erase the progress bar or live line (if any) so later
        output starts on a clean line."""
        if self._thinking:
            self._thinking = False
            self.err.write("\n")
            self.err.flush()
        self.feedback.clear()

    def end_line(self) -> None:
        """End the progress line and the streamed text (before a line of another kind)."""
        self.end_progress()
        self.end_text()

    def end_text(self) -> None:
        """End the streamed text with a newline when it lacks one."""
        if self.printed_chars and not self._ends_with_newline and not self.closed:
            self.out.write("\n")
            self.out.flush()
            self._ends_with_newline = True
