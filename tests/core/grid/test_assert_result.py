"""The outcome of one assertion and the text that string checks see."""

from __future__ import annotations

from app.core.grid.assert_result import AssertResult, output_text


def test_a_non_text_output_is_compact_json_as_javascript_writes_it() -> None:
    # promptfoo's text checks see JSON.stringify(output): no spaces, non-ASCII kept
    assert output_text({"sentiment": "positive", "n": [1, 2], "ok": True}) == '{"sentiment":"positive","n":[1,2],"ok":true}'
    assert output_text({"città": "Zürich"}) == '{"città":"Zürich"}'
    assert output_text("plain text") == "plain text"


def test_a_result_without_its_own_score_counts_one_or_zero() -> None:
    assert AssertResult("equals", True, "ok").value == 1
    assert AssertResult("equals", False, "no").value == 0
    assert AssertResult("similar", False, "far", score=0.4).value == 0.4
