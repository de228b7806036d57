"""One determinate progress bar, with an ETA, for everything a model load does.

A load is a fixed sequence of stages (hashing, downloading, converting, loading,
quantizing), each with a prior duration in seconds. Every stage reports its own fraction
(bytes hashed, tensors converted / 272, bytes downloaded, layers quantized); the overall
fraction is the prior work done over the prior total, so it only grows, and a stage that
is not needed (a cached conversion) counts as done at once. The ETA scales the prior
seconds left by how fast the work so far went against its priors. Every event, from the
first, carries the fraction and the ETA in its message; the last is phase ``loaded`` with
the load's seconds ("loaded in 19.7 s").

Also here: the hooks that turn transformers' GGUF tensor loop and huggingface_hub's
download bars into stage fractions (they run on the model worker thread).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

log = logging.getLogger(__name__)

class ProgressFn(Protocol):
    """Where load progress goes: (phase, fraction 0..1 or None, message[, seconds left])."""

    def __call__(self, phase: str, fraction: float | None, message: str, eta_s: float | None = None, /) -> None:
        """Report one step."""
        ...
EMIT_EVERY_S = 0.1  # at most ~10 events a second within a stage


class StepFn(Protocol):
    """A loader's step report into a :class:`LoadProgress` (``force``: never rate-limited)."""

    def __call__(self, stage: str, fraction: float, message: str, force: bool = False, /) -> None:
        """Report one step of ``stage``."""
        ...


class LoadProgress:
    """Overall fraction and ETA over ordered stages with prior durations (see the module doc)."""

    def __init__(self, emit: ProgressFn | None, stages: dict[str, float], clock: Callable[[], float] = time.perf_counter) -> None:
        self.emit = emit
        self.priors = {name: max(1e-3, float(s)) for name, s in stages.items()}
        self.total = sum(self.priors.values())
        self.done: dict[str, float] = {}  # stage -> fraction done
        self.clock = clock
        self.started = clock()
        self._last_emit = 0.0
        self._shown = 0.0
        self._stage: str | None = None
        self._lock = threading.Lock()

    def fraction(self) -> float:
        """Prior work done over the prior total, 0..1."""
        return min(1.0, sum(self.priors[s] * f for s, f in self.done.items()) / self.total)

    def eta(self) -> float:
        """Seconds left: the prior seconds left, scaled by the speed so far."""
        done = sum(self.priors[s] * f for s, f in self.done.items())
        left = self.total - done
        elapsed = self.clock() - self.started
        factor = elapsed / done if done > 0.05 * self.total and elapsed > 0.5 else 1.0
        return max(0.0, left * min(max(factor, 0.05), 20.0))

    def update(self, stage: str, fraction: float, message: str, force: bool = False) -> None:
        """Stage ``stage`` is ``fraction`` done; earlier stages count as done."""
        with self._lock:
            if stage not in self.priors:
                self.priors[stage] = 1e-3
                self.total += 1e-3
            for name in self.priors:
                if name == stage:
                    break
                self.done[name] = 1.0
            self.done[stage] = max(self.done.get(stage, 0.0), min(1.0, max(0.0, fraction)))
            now = self.clock()
            changed = stage != self._stage
            self._stage = stage
            if not (force or changed) and now - self._last_emit < EMIT_EVERY_S and fraction < 1.0:
                return
            self._last_emit = now
            overall = self._shown = max(self._shown, self.fraction())  # never backwards
            eta = self.eta()
        if self.emit is not None:
            self.emit(stage, overall, message, eta)

    def finish(self, what: str) -> float:
        """All done: emit phase ``loaded`` with the seconds the load took; return them."""
        seconds = self.clock() - self.started
        for name in self.priors:
            self.done[name] = 1.0
        if self.emit is not None:
            self.emit("loaded", 1.0, f"{what} loaded in {seconds:.1f} s")
        return seconds


@contextlib.contextmanager
def gguf_tensor_progress(report: Callable[[int, int], None]) -> Iterator[None]:
    """Count the tensors transformers converts from a GGUF file (done, total), silently.

    transformers loops over the file's tensors with ``tqdm`` (a module global of
    ``modeling_gguf_pytorch_utils``); for the duration of the block that loop reports here
    instead of drawing a console bar. Without that global, the block does nothing.
    """
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return

    def counting(iterable: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        items = iterable if hasattr(iterable, "__len__") else list(iterable)
        total = len(items)
        for i, item in enumerate(items):
            yield item
            report(i + 1, total)

    setattr(gguf_utils, "tqdm", counting)  # noqa: B010 - a module global, patched
    try:
        yield
    finally:
        setattr(gguf_utils, "tqdm", original)  # noqa: B010


def download_tqdm(report: Callable[[float, float], None]) -> type:
    """A tqdm class for ``snapshot_download(tqdm_class=...)`` reporting (bytes done, bytes known)."""
    import io

    from tqdm.auto import tqdm

    class _Reporting(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._bytes = kwargs.pop("name", None) == "huggingface_hub.snapshot_download"
            kwargs.pop("bar_format", None)
            kwargs["file"] = io.StringIO()  # never drawn
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            out: bool | None = super().update(n)
            if self._bytes and self.total:
                report(float(self.n), float(self.total))
            return out

    return _Reporting
