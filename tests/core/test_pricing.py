"""Price table: lookups, snapshots, overrides, exact Decimal cost, bad files."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from app.core.errors import ConfigError
from app.core.events import UsageReport
from app.core.pricing import ModelPrice, PriceTable
from app.core.settings import PriceOverride
from app.core.types import ModelRef


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def ref(text: str) -> ModelRef:
    return ModelRef.parse(text)


def test_bundled_file_is_complete_and_dated(table: PriceTable) -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.checked)
    assert "openai.com" in table.source
    names = set(table.models())
    for required in ("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
                     "gpt-4o", "gpt-4o-mini", "o3", "o4-mini", "o1", "gpt-4-turbo", "gpt-3.5-turbo"):
        assert required in names
    raw = json.loads((Path(__file__).resolve().parents[2] / "resources" / "pricing.json").read_text())
    for entry in raw["models"].values():  # decimal strings, never floats
        assert all(v is None or isinstance(v, str) for v in entry.values())


def test_exact_and_snapshot_lookup(table: PriceTable) -> None:
    assert table.price_for(ref("openai:gpt-4o")) == ModelPrice(Decimal("2.50"), Decimal("1.25"), Decimal("10.00"))
    assert table.price_for(ref("openai:gpt-4o-mini-2024-07-18")) == table.price_for(ref("openai:gpt-4o-mini"))
    assert table.price_for(ref("openai:gpt-4-turbo-2024-04-09")) == table.price_for(ref("openai:gpt-4-turbo"))
    assert table.price_for(ref("openai:gpt-3.5-turbo-0125")) == table.price_for(ref("openai:gpt-3.5-turbo"))
    # a listed snapshot with its own price beats the prefix
    assert table.price_for(ref("openai:gpt-4o-2024-05-13")).input == Decimal("5.00")  # type: ignore[union-attr]
    # case-insensitive
    assert table.price_for(ref("openai:GPT-4o")) == table.price_for(ref("openai:gpt-4o"))


def test_unknown_variants_are_not_guessed(table: PriceTable) -> None:
    assert table.price_for(ref("openai:gpt-5.9")) is None  # not gpt-5's price
    assert table.price_for(ref("openai:gpt-4o-search-preview")) is None
    assert table.price_for(ref("openai:llama3.1:8b")) is None  # a local server's model
    assert table.cost(ref("openai:llama3.1:8b"), UsageReport(10, 10)) is None


def test_cost_is_exact_decimal_with_cached_tokens(table: PriceTable) -> None:
    usage = UsageReport(prompt_tokens=1000, completion_tokens=500, cached_prompt_tokens=400)
    # gpt-4o: 600 * 2.50 + 400 * 1.25 + 500 * 10.00 = 1500 + 500 + 5000 = 7000 per 1M
    assert table.cost(ref("openai:gpt-4o"), usage) == Decimal("0.007")
    # gpt-4o-mini: 1 prompt + 1 completion token = 0.15 + 0.60 per 1M, exactly
    assert table.cost(ref("openai:gpt-4o-mini"), UsageReport(1, 1)) == Decimal("0.00000075")
    # cached tokens never exceed the prompt
    assert table.cost(ref("openai:gpt-4o"), UsageReport(10, 0, cached_prompt_tokens=50)) == Decimal("0.0000125")


def test_no_cached_price_bills_cached_tokens_as_input(table: PriceTable) -> None:
    a = table.cost(ref("openai:gpt-4-turbo"), UsageReport(1000, 0, cached_prompt_tokens=1000))
    b = table.cost(ref("openai:gpt-4-turbo"), UsageReport(1000, 0))
    assert a == b == Decimal("0.01")


def test_sum_of_many_costs_does_not_drift(table: PriceTable) -> None:
    one = table.cost(ref("openai:gpt-4.1-nano"), UsageReport(1, 1))
    assert one is not None
    assert sum([one] * 1_000_000, Decimal(0)) == Decimal("0.50")


@pytest.mark.parametrize("model", ["mock:echo", "local:smollm2", "huggingface:HuggingFaceTB/SmolLM2-135M-Instruct"])
def test_free_providers_cost_zero(table: PriceTable, model: str) -> None:
    assert table.price_for(ref(model)) is None
    assert table.cost(ref(model), UsageReport(10_000, 10_000)) == Decimal(0)


def test_overrides_win_by_name_and_full_id() -> None:
    table = PriceTable.load(
        {
            "gpt-4o": PriceOverride(input="1", output="2"),
            "openai:my-finetune": PriceOverride(input="3", cached_input="1", output="4"),
            "local:smollm2": PriceOverride(input="0.01", output="0.01"),
        }
    )
    assert table.price_for(ref("openai:gpt-4o")) == ModelPrice(Decimal(1), None, Decimal(2))
    assert table.price_for(ref("openai:gpt-4o-2024-08-06")) == ModelPrice(Decimal(1), None, Decimal(2))
    assert table.cost(ref("openai:my-finetune"), UsageReport(1_000_000, 0)) == Decimal(3)
    assert table.cost(ref("local:smollm2"), UsageReport(1_000_000, 0)) == Decimal("0.01")
    assert table.price_for(ref("openai:gpt-4o-mini")) == PriceTable.load().price_for(ref("openai:gpt-4o-mini"))


@pytest.mark.parametrize("bad", ["abc", "-1", "NaN"])
def test_bad_override_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="gpt-4o") as info:
        PriceTable.load({"gpt-4o": PriceOverride(input=bad, output="1")})
    assert "Settings" in info.value.hint


def test_non_strict_load_skips_bad_overrides_with_a_warning() -> None:
    table = PriceTable.load(
        {"gpt-4o": PriceOverride(input="two", output="1"), "gpt-4o-mini": PriceOverride(input="9", output="9")},
        strict=False,
    )
    assert table.price_for(ref("openai:gpt-4o")) == PriceTable.load().price_for(ref("openai:gpt-4o"))
    assert table.price_for(ref("openai:gpt-4o-mini")) == ModelPrice(Decimal(9), None, Decimal(9))
    assert len(table.warnings) == 1 and "gpt-4o" in table.warnings[0] and "Settings" in table.warnings[0]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"models": []}),
        json.dumps({"models": {"x": {"input": "1"}}}),
        json.dumps({"models": {"x": {"input": 1.5, "output": "1"}}}),  # float, not a decimal string
        json.dumps({"unit": "per 1K tokens", "models": {}}),
    ],
)
def test_bad_pricing_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pricing.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        PriceTable.load(path=path)
    assert str(path.name) in info.value.message
    assert info.value.hint


def test_missing_pricing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        PriceTable.load(path=tmp_path / "nope.json")
