"""Side-by-side comparison: the same prompt answered by the base model and with the active
LoRA adapters (``backend.compare`` submits both; the model worker runs them one after the
other, and the adapter answer is stopped when the base answer fails).

Streamed text is buffered per pane and fed on a ~30 ms timer to the transcript's incremental
Markdown renderer (finished blocks rendered once, code highlighted; never a full re-render).

On an in-process model both answers ask for their tokens' probabilities; once both ended, the
adapter's answer is scored under the base model (one forward pass) and its pane shows the
adapter effect per token (:class:`EffectView`: the most-changed tokens highlighted, a summary).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import GenerationResult
from app.core.figures import plural
from app.core.grid.assertions import call_text
from app.core.run_events import (
    LiveFigures,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStats,
    RunText,
)
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest
from app.ui.widgets.common import (
    EscapeClosesWindow,
    MessageLabel,
    error_text,
    format_rate,
    format_seconds,
    format_tokens,
    selectable_label,
)
from app.ui.widgets.effect_view import EffectView, score_and_show
from app.ui.widgets.transcript_render import DARK_CODE, LIGHT_CODE, StreamRenderer
from app.ui.wiring import RunEventSlots, connect_slots

if TYPE_CHECKING:
    from app.ui.backend_manager import BackendManager

FLUSH_MS = 30
SIDES = ("base", "adapter")


def _adapter_names(adapters: Sequence[AdapterSpec]) -> str:
    return ", ".join(f"{a.name or a.path} \u00d7{a.scale:g}" for a in adapters)


@dataclass
class _PaneState:
    parts: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    stats: LiveFigures | None = None
    estimated: bool = False
    state: str = "idle"  # idle, waiting, streaming, done, failed, stopped


class _Pane(QFrame):
    def __init__(self, title: str) -> None:
        super().__init__()
        self.setObjectName("comparePane")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        self.title = QLabel(title)
        self.title.setStyleSheet("font-weight: 600; font-size: 11pt;")
        self.title.setWordWrap(True)
        self.stats = QLabel("\u2014")
        self.stats.setStyleSheet("color: palette(placeholder-text);")
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)  # code "Copy" links and web links are handled below
        self.text.anchorClicked.connect(self._on_text_anchor_clicked)
        self.text.setFrameShape(QFrame.Shape.NoFrame)
        self.error = MessageLabel()
        self.renderer = StreamRenderer(self.text.document())
        self.calls = selectable_label(name="compareCalls")
        self.calls.setVisible(False)
        layout.addWidget(self.title)
        layout.addWidget(self.stats)
        layout.addWidget(self.calls)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.error)

    def _on_text_anchor_clicked(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            try:
                index = int(url.path() or url.toString().split(":", 1)[1])
                QGuiApplication.clipboard().setText(self.renderer.code_blocks[index])
            except (ValueError, IndexError):
                pass
        elif url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)

    def reset(self) -> None:
        """Empty the pane for a new answer."""
        self.text.clear()
        self.calls.clear()
        self.calls.setVisible(False)
        dark = self.palette().color(QPalette.ColorRole.Base).lightness() < 128
        self.renderer = StreamRenderer(self.text.document(), DARK_CODE if dark else LIGHT_CODE)
        self.error.clear_message()


class CompareView(EscapeClosesWindow, RunEventSlots):
    """Two panes, base model vs. adapters, filled from the backend's signals."""

    def __init__(self, backend: BackendManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.setWindowTitle("Compare: base model vs. adapters")
        self.setWindowFlag(Qt.WindowType.Window, True)  # its own window, even with a parent
        self.resize(960, 560)
        self._backend = backend
        self._ids: dict[str, str] = {}
        self._state = {side: _PaneState() for side in SIDES}
        self.setStyleSheet(
            "QFrame#comparePane { background: palette(base); border: 1px solid palette(midlight);"
            " border-radius: 8px; }"
        )
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self._prompt = QLabel("")
        self._prompt.setWordWrap(True)
        self._prompt.setStyleSheet("color: palette(placeholder-text);")
        top.addWidget(self._prompt, 1)
        self._stop = QPushButton("Stop")
        self._stop.setEnabled(False)
        self._stop.clicked.connect(backend.stop)
        top.addWidget(self._stop, 0, Qt.AlignmentFlag.AlignTop)
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close this window (Esc); running answers are stopped")
        self.close_button.clicked.connect(self.close)
        top.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        self._error = MessageLabel()
        layout.addWidget(self._error)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        self._panes = {"base": _Pane("Base model"), "adapter": _Pane("With adapters")}
        for pane in self._panes.values():
            splitter.addWidget(pane)
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        adapter_pane = self._panes["adapter"]
        self.effect = EffectView(adapter_pane.text, adapter_pane)
        """The adapter effect per token (in-process models), under the adapter pane's figures."""
        adapter_lay = adapter_pane.layout()
        assert isinstance(adapter_lay, QVBoxLayout)
        adapter_lay.insertWidget(adapter_lay.indexOf(adapter_pane.text) + 1, self.effect, 1)
        self._requests: dict[str, object] = {}
        self._results: dict[str, GenerationResult] = {}
        self._effect_task: asyncio.Task[object] | None = None

        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self._flush)

        connect_slots(backend, self, "_on_backend_")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Closing stops this window's answers (nothing runs, and costs, unseen)."""
        for run_id in list(self._ids):
            self._backend.cancel(run_id)
        super().closeEvent(event)

    # public API
    def start(self, messages: list[ChatMessage], params: GenerationParams,
              adjust: Callable[[GenerationRequest], GenerationRequest] | None = None) -> tuple[str, str] | None:
        """Ask the backend for both answers (``adjust``: e.g. with the Tools panel's tools and
        schema; each side then shows the tool calls it made); returns the two generation ids
        (None on error)."""
        self._error.clear_message()
        if not any(m.role == "user" and m.content.strip() for m in messages):
            self._error.show_message("Type a prompt in the message box first, then press Compare again.", "warning")
            return None
        for side in SIDES:
            self._state[side] = _PaneState(state="waiting")
            pane = self._panes[side]
            pane.reset()
            pane.stats.setText("waiting\u2026")
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        short = " ".join(last_user.split())
        if len(short) > 160:
            short = short[:160] + "\u2026"
        self._prompt.setText(f"Prompt: \u201c{short}\u201d")
        self._panes["base"].title.setText(f"Base model \u00b7 {self._backend.current_model()}")
        adapters = self._backend.active_adapters()
        names = _adapter_names(adapters) or "none active"
        self._panes["adapter"].title.setText(f"With adapters \u00b7 {names}")
        self._reset_effect()
        if adapters and not self._backend.is_remote() and params.logprobs is None:  # tokens for the effect
            params = params.with_(logprobs=self._backend.services.settings.probabilities_top_k)
        try:
            base_id, adapter_id = self._backend.compare(list(messages), params, adjust)
        except Exception as exc:
            self._error.show_message(error_text(exc))
            for side in SIDES:
                self._state[side].state = "idle"
                self._panes[side].stats.setText("\u2014")
            return None
        self._ids = {base_id: "base", adapter_id: "adapter"}
        self._stop.setEnabled(True)
        return base_id, adapter_id

    def pane_text(self, side: str) -> str:
        """The raw text received so far for ``side`` ('base' or 'adapter')."""
        return "".join(self._state[side].parts)

    def pane_stats(self, side: str) -> dict[str, object]:
        """The last figures of ``side``: tokens, tokens_per_s, ttft_s (and state)."""
        st = self._state[side]
        live = st.stats or LiveFigures()
        return {"tokens": live.tokens, "tokens_per_s": live.tokens_per_s, "ttft_s": live.ttft_s,
                "estimated": st.estimated, "state": st.state}

    def pane_error(self, side: str) -> str:
        """The error shown in ``side`` ('' when none)."""
        return self._panes[side].error.text()

    def is_running(self) -> bool:
        """True until both answers ended."""
        return any(self._state[s].state in ("waiting", "streaming") for s in SIDES)

    # backend signals
    def _side(self, gen_id: str) -> str | None:
        return self._ids.get(gen_id)

    _on_backend_run_delta = RunEventSlots.dispatch  # the streamed text

    def _on_run_started(self, event: RunStarted) -> None:
        side, info = self._side(event.run_id), event.info
        if side is None:
            return
        self._state[side].state = "streaming"
        self._requests[side] = info.request
        self._panes[side].stats.setText("waiting for the first token\u2026")
        if side == "adapter" and info.adapters:
            self._panes[side].title.setText(f"With adapters \u00b7 {_adapter_names(info.adapters)}")

    def _on_run_text(self, event: RunText) -> None:
        side, text = self._side(event.run_id), event.text
        if side is None:
            return
        st = self._state[side]
        st.parts.append(text)
        st.pending.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def _on_run_stats(self, event: RunStats) -> None:
        side, live = self._side(event.run_id), event.figures
        if side is None:
            return
        self._state[side].stats = live
        self._show_stats(side)

    def _on_run_finished(self, event: RunFinished) -> None:
        side, result = self._side(event.run_id), event.result
        if side is None:
            return
        rec = result.record
        st = self._state[side]
        st.stats = LiveFigures(rec.completion_tokens, rec.tokens_per_s, rec.ttft_s, result.cost_usd, final=True)
        st.estimated = rec.estimated
        self._results[side] = result
        if result.tool_calls:  # one step: the calls it made, not run
            pane = self._panes[side]
            pane.calls.setText("\n".join(f"\u2192 {call_text(c)}" for c in result.tool_calls))
            pane.calls.setVisible(True)
        self._end(side, "done", result.text)

    def _on_run_failed(self, event: RunFailed) -> None:
        side, message, partial_text = self._side(event.run_id), event.message, event.partial_text
        if side is None:
            return
        self._end(side, "failed", partial_text)
        self._panes[side].error.show_message(message)
        if side == "base":  # the same failure would follow: the adapter answer is not run
            self._stop_side("adapter")
            self._panes["adapter"].error.show_message("Not run, because the base answer failed.", "warning")

    def _on_run_cancelled(self, event: RunCancelled) -> None:
        side, partial_text = self._side(event.run_id), event.partial_text
        if side is None:
            return
        self._end(side, "stopped", partial_text)
        if side == "base":
            self._stop_side("adapter")

    def _stop_side(self, side: str) -> None:
        """Stop the other answer (it ends as stopped; its signals are ignored from here on)."""
        run_id = next((rid for rid, s in self._ids.items() if s == side), None)
        if run_id is not None:
            self._ids.pop(run_id)
            self._backend.cancel(run_id)
        self._end(side, "stopped")

    def _end(self, side: str, state: str, final_text: str | None = None) -> None:
        self._flush()
        st = self._state[side]
        pane = self._panes[side]
        shown = "".join(st.parts)
        if final_text is not None and final_text != shown:
            if final_text.startswith(shown):  # deltas the signals did not carry
                pane.renderer.feed(final_text[len(shown):])
                st.parts = [final_text]
            elif len(final_text) > len(shown):
                pane.reset()
                pane.renderer.feed(final_text)
                st.parts = [final_text]
        pane.renderer.finish()
        st.state = state
        self._show_stats(side)
        if not self.is_running():
            self._stop.setEnabled(False)
            self._timer.stop()
            self._start_effect()

    # adapter effect per token
    def _reset_effect(self) -> None:
        if self._effect_task is not None and not self._effect_task.done():
            self._effect_task.cancel()
        self._effect_task = None
        self._requests.clear()
        self._results.clear()
        self.effect.clear()

    def _start_effect(self) -> None:
        """Both answers ended: score the adapter's answer under the base model (in a task)."""
        result, request = self._results.get("adapter"), self._requests.get("adapter")
        if result is None or "base" not in self._results or not isinstance(request, GenerationRequest):
            return
        if self._effect_task is None:
            self._effect_task = asyncio.ensure_future(
                score_and_show(self.effect, self._backend.services.registry, request, result.tokens))

    async def wait_effect(self) -> None:
        """Wait until the adapter effect is shown (or said to be unavailable); tests."""
        if self._effect_task is not None:
            await asyncio.shield(self._effect_task)

    def _show_stats(self, side: str) -> None:
        st = self._state[side]
        s = st.stats
        parts = []
        if s is not None:
            parts = [
                f"{format_tokens(s.tokens, estimated=st.estimated)} {plural(s.tokens or 0, 'token', with_count=False)}",
                format_rate(s.tokens_per_s),
                f"first token {format_seconds(s.ttft_s)}",
            ]
        label = {"stopped": "stopped", "failed": "failed"}.get(st.state)
        if label:
            parts.append(label)
        self._panes[side].stats.setText(" \u00b7 ".join(parts) or "\u2014")

    def _flush(self) -> None:
        for side in SIDES:
            st = self._state[side]
            if not st.pending:
                continue
            chunk = "".join(st.pending)
            st.pending.clear()
            self._panes[side].renderer.feed(chunk)
        if not any(self._state[s].pending for s in SIDES) and not self.is_running():
            self._timer.stop()
