"""ModelSelection without Qt: the choice counts at once, a failed load brings the previous
model back, and every change is told through the hooks."""

from __future__ import annotations

from typing import Any

from app.core.provider import ProviderRegistry
from app.core.selection import ModelSelection, SelectionHooks
from app.core.types import AdapterInfo, GenerationParams
from tests.support.fakes import FakeLocal
from tests.support.openai_server import provider_context


def _selection(tmp_path: Any) -> tuple[ModelSelection, list[tuple[str, object]]]:
    told: list[tuple[str, object]] = []
    hooks = SelectionHooks(
        changed=lambda m: told.append(("changed", m)),
        loading=lambda m, p: told.append(("loading", (m, p.phase))),
        loaded=lambda m: told.append(("loaded", m)),
        load_failed=lambda m, msg: told.append(("failed", (m, msg))),
        adapters=lambda a: told.append(("adapters", a)),
        notice=lambda msg: told.append(("notice", msg)),
    )
    registry = ProviderRegistry(provider_context([], home=tmp_path), {"local": FakeLocal})
    return ModelSelection(registry, "mock:echo", hooks), told


def test_the_choice_counts_at_once_and_a_failed_load_brings_the_previous_back(run: Any, tmp_path: Any) -> None:
    selection, told = _selection(tmp_path)
    previous = selection.choose("local:broken")
    assert selection.model_id == "local:broken" and previous == ("mock:echo", None)  # before any load
    assert not run(selection.finish_choice("local:broken", previous))
    assert selection.model_id == "mock:echo"
    assert [k for k, _ in told] == ["changed", "loading", "loading", "changed", "failed"]
    assert "damaged" in str(told[-1][1])
    told.clear()
    assert run(selection.select("local:good"))
    assert selection.model_id == "local:good" and not selection.needs_load()
    assert told[0] == ("changed", "local:good") and told[-1] == ("loaded", "local:good")
    assert ("loading", ("local:good", "reading weights")) in told


def test_adapters_belong_to_their_base_model(tmp_path: Any) -> None:
    selection, told = _selection(tmp_path)
    selection.model_id = "local:a"
    info = AdapterInfo("style", "/adapters/style", "ab" * 32, 4, 8.0, ("q_proj",), active=True)
    selection._adapters["style"] = info  # as load_adapter leaves it
    selection.set_adapter("style", scale=0.5)
    assert selection.active_adapters()[0].scale == 0.5 and selection.active_adapters()[0].sha256 == "ab" * 32
    selection.choose("local:b")
    assert selection.adapters() == [] and ("adapters", ()) in told
    assert any(k == "notice" and "style" in str(v) for k, v in told)
    assert selection.request([], GenerationParams()).adapters == ()


def test_nobody_listening_is_fine(run: Any, tmp_path: Any) -> None:
    registry = ProviderRegistry(provider_context([], home=tmp_path), {"local": FakeLocal})
    selection = ModelSelection(registry, "mock:echo")
    assert run(selection.select("local:x")) and selection.model_id == "local:x"
