"""One progress bar for a model load (app/providers/local_progress.py): the overall fraction
only grows, the ETA follows the measured speed, and the hooks into transformers' GGUF loop
and huggingface_hub's download bars report stage fractions."""

from __future__ import annotations

from typing import Any

import pytest

from app.providers.local_progress import LoadProgress, download_tqdm, gguf_tensor_progress


def test_load_progress_fraction_grows_and_the_eta_follows_the_measured_speed() -> None:
    from app.providers.local_progress import LoadProgress

    now = [0.0]
    events: list[tuple[str, float | None, str, float]] = []
    lp = LoadProgress(lambda *e: events.append(e), {"hashing": 1.0, "converting": 8.0, "loading": 1.0}, clock=lambda: now[0])
    lp.update("hashing", 0.0, "start", force=True)
    assert events[-1][1] == 0.0 and events[-1][3] == pytest.approx(10.0)  # the priors, before any work
    now[0] = 2.0
    lp.update("converting", 0.5, "half")  # 5 of 10 prior seconds done in 2 s: twice as fast
    assert events[-1][1] == 0.5 and events[-1][3] == pytest.approx(2.0)
    now[0] = 2.05
    lp.update("converting", 0.6, "too soon")  # rate-limited within a stage
    assert events[-1][2].startswith("half")
    lp.update("loading", 0.0, "next stage")  # a new stage always reports
    assert events[-1][0] == "loading" and events[-1][1] == 0.9
    now[0] = 3.0
    assert lp.finish("model") == 3.0 and events[-1] == ("loaded", 1.0, "model loaded in 3.0 s")


def test_the_fraction_never_goes_back_and_skipped_stages_count_as_done() -> None:
    events: list[tuple[Any, ...]] = []
    lp = LoadProgress(lambda *e: events.append(e), {"a": 1.0, "b": 1.0, "c": 2.0}, clock=lambda: 0.0)
    lp.update("c", 0.5, "c half", force=True)  # a and b were not needed (cached): done at once
    assert lp.done == {"a": 1.0, "b": 1.0, "c": 0.5}
    assert events[-1][1] == pytest.approx(0.75)
    lp.update("c", 0.1, "a smaller figure", force=True)  # a stage's own fraction never shrinks
    assert lp.done["c"] == 0.5 and events[-1][1] == pytest.approx(0.75)
    lp.update("c", 7.0, "out of range", force=True)
    assert lp.done["c"] == 1.0 and events[-1][1] == 1.0


def test_an_unknown_stage_is_added_with_no_weight_and_no_emit_target_is_fine() -> None:
    lp = LoadProgress(None, {"loading": 2.0}, clock=lambda: 0.0)
    lp.update("surprise", 1.0, "extra")  # not among the priors: counted, nearly weightless
    assert "surprise" in lp.priors and lp.fraction() == pytest.approx(1.0, abs=1e-3)
    assert lp.finish("model") == 0.0


def test_the_eta_is_the_prior_until_enough_work_is_done_and_stays_bounded() -> None:
    now = [0.0]
    lp = LoadProgress(None, {"s": 10.0}, clock=lambda: now[0])
    now[0] = 100.0
    lp.update("s", 0.01, "barely started")  # under 5% done: the priors alone
    assert lp.eta() == pytest.approx(9.9)
    lp.update("s", 0.1, "slow")  # 1 prior second took 100 s: at most 20 times the prior
    assert lp.eta() == pytest.approx(9.0 * 20.0)


def test_gguf_tensor_progress_counts_the_tensor_loop_and_restores_it() -> None:
    gguf_utils = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    original = gguf_utils.tqdm
    seen: list[tuple[int, int]] = []
    with gguf_tensor_progress(lambda done, total: seen.append((done, total))):
        items = list(gguf_utils.tqdm(iter(["t1", "t2", "t3"]), desc="Converting"))
    assert items == ["t1", "t2", "t3"]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert gguf_utils.tqdm is original


def test_download_tqdm_reports_bytes_of_the_snapshot_bar_only() -> None:
    seen: list[tuple[float, float]] = []
    bar_class = download_tqdm(lambda done, total: seen.append((done, total)))
    files = bar_class(total=3, name="other")  # the per-file count bar: not bytes
    files.update(1)
    files.close()
    assert seen == []
    bar = bar_class(total=1000, name="huggingface_hub.snapshot_download", bar_format="{l_bar}")
    bar.update(400)
    bar.update(600)
    bar.close()
    assert seen == [(400.0, 1000.0), (1000.0, 1000.0)]
