"""Tests of app/core/run_events.py: what a run is and how its live figures read."""

from __future__ import annotations

from decimal import Decimal

from app.core.errors import InvalidParams
from app.core.run_events import LiveFigures, RunFailed, RunInfo
from app.core.types import AdapterSpec, ChatMessage, GenerationRequest, ModelRef


def test_run_info_names_the_model_endpoint_and_adapters_of_its_request() -> None:
    request = GenerationRequest(ModelRef.parse("openai:gpt-x"), (ChatMessage("user", "q"),), endpoint="lab")
    info = RunInfo("r1", request, conversation_id="c1", message_id=3)
    assert (info.model, info.endpoint, info.adapters) == ("openai:gpt-x", "lab", ())
    assert info.adapter_label is None and info.adapter_sha256 is None
    lora = GenerationRequest(request.model, request.messages, adapters=(AdapterSpec("/a/style", 0.5),))
    label = RunInfo("r2", lora).adapter_label
    assert label is not None and "style" in label


def test_live_figures_sentence_and_thinking() -> None:
    assert LiveFigures().sentence() == "0 tokens"
    thinking = LiveFigures(reasoning_tokens=12)
    assert thinking.thinking and "12 thinking" in thinking.sentence()
    assert not LiveFigures(reasoning_tokens=12, final=True).thinking
    live = LiveFigures(tokens=42, tokens_per_s=30.5, ttft_s=0.21, cost_usd=Decimal("0.000012"))
    text = live.sentence()
    assert text.startswith("42 tokens · $") and "0.21 s" in text and "30.5 tok/s" in text


def test_run_failed_reads_the_errors_user_message() -> None:
    error = InvalidParams("Bad temperature.", hint="Use 0-2.")
    failed = RunFailed("r1", error, partial_text="half")
    assert failed.message == error.user_message() and "Bad temperature." in failed.message


def test_every_run_event_names_its_run_through_the_base_and_keeps_its_field_order() -> None:
    from typing import get_args

    from app.core.run_events import RunEvent, RunEventBase, RunRetrying, RunText

    assert all(issubclass(kind, RunEventBase) for kind in get_args(RunEvent))
    retrying = RunRetrying("r1", 2, 3.0, "retrying in 3 s")  # run_id first, as before the base
    assert (retrying.run_id, retrying.attempt, retrying.delay_s, retrying.seconds_left) == ("r1", 2, 3.0, None)
    assert RunText("r1", "hi") == RunText("r1", "hi") and RunText("r1", "hi") != RunText("r2", "hi")


def test_queued_and_started_carry_the_run_info_after_the_run_id() -> None:
    from app.core.run_events import RunInfoEvent, RunQueued, RunStarted

    info = RunInfo("r1", GenerationRequest(ModelRef.parse("openai:gpt-x"), (ChatMessage("user", "q"),)))
    queued, started = RunQueued("r1", info), RunStarted("r1", info)
    assert all(isinstance(e, RunInfoEvent) and (e.run_id, e.info) == ("r1", info) for e in (queued, started))
    assert queued != started  # the same fields, yet different events
