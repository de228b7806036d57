"""app/ui/controllers/counter.py: the before-send estimate of the whole next request."""

from __future__ import annotations

from app.ui.controllers.counter import RequestCounter
from tests.ui.controllers.conftest import Parts


def test_the_count_covers_system_prompt_draft_and_price(parts: Parts) -> None:
    count = RequestCounter(parts.services, parts.backend, parts.session)
    assert count("", "one two three", 0) == "6 tokens  ·  free"  # mock: 3 words + 3 per message
    assert count("be nice", "one two three", 0) == "11 tokens  ·  free"
    parts.backend.set_model("openai:gpt-4o-mini")  # priced: what goes in, and at most what comes out
    priced = count("be nice", "one two three", 100)
    assert priced.endswith(" out") and "≈ $" in priced and "≤ $" in priced
    parts.backend.set_model("openai:a-model-without-a-price")
    assert count("be nice", "one two three", 100).startswith("~")  # estimated, and no price
    assert "$" not in count("be nice", "one two three", 100)
