"""Typed records: fields checked and coerced from their hints, bounds and checks, with the
place of the first problem (what the settings' salvage drops)."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from app.core.model_fields import Record, ValidationError, spec


def _upper(value: str) -> str:
    if not value.strip():
        raise ValueError("give it a name")
    return value.strip().upper()


class Inner(Record):
    level: int = spec(default=1, ge=1, le=5)
    ratio: float = spec(default=0.5, gt=0)


class Outer(Record):
    name: str = spec(check=_upper)
    mode: Literal["a", "b"] = "a"
    on: bool = False
    size: int | None = spec(default=None, ge=6)
    inner: Inner = spec(default_factory=Inner)
    items: list[Inner] = spec(default_factory=list)
    table: dict[str, Inner] = spec(default_factory=dict)
    extra: dict[str, Any] = spec(default_factory=dict)

    def _check_record(self) -> None:
        if self.mode == "b" and self.size is None:
            raise ValueError("mode b needs a size")


def _problem(data: dict[str, Any]) -> tuple[tuple[int | str, ...], str]:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    [err] = info.value.errors()
    return err["loc"], err["msg"]


def test_values_are_coerced_as_pydantic_does_and_unknown_keys_are_ignored() -> None:
    rec = Outer.model_validate({"name": " x ", "on": "true", "size": "7", "inner": {"level": 2.0, "ratio": 1},
                                "items": [{"level": "3"}], "table": {"k": Inner(level=4)}, "future": 1})  # fmt: skip
    assert rec.name == "X" and rec.on is True and rec.size == 7
    assert rec.inner == Inner(level=2, ratio=1.0) and isinstance(rec.inner.ratio, float)
    assert rec.items == [Inner(level=3)] and rec.table["k"].level == 4
    assert Outer.model_validate(rec) is rec


@pytest.mark.parametrize(
    ("data", "loc", "msg"),
    [
        ({}, ("name",), "Field required"),
        ({"name": " "}, ("name",), "give it a name"),
        ({"name": "x", "mode": "c"}, ("mode",), "Input should be 'a' or 'b'"),
        ({"name": "x", "on": "maybe"}, ("on",), "Input should be a valid boolean"),
        ({"name": "x", "size": 5}, ("size",), "Input should be greater than or equal to 6"),
        ({"name": "x", "size": 6.5}, ("size",), "Input should be a valid integer"),
        ({"name": "x", "inner": {"level": 9}}, ("inner", "level"), "Input should be less than or equal to 5"),
        ({"name": "x", "inner": {"ratio": 0}}, ("inner", "ratio"), "Input should be greater than 0"),
        ({"name": "x", "inner": {"ratio": float("nan")}}, ("inner", "ratio"), "Input should be a finite number"),
        ({"name": "x", "items": [{}, {"level": 0}]}, ("items", 1, "level"), "Input should be greater than or equal to 1"),
        ({"name": "x", "table": {"k": 3}}, ("table", "k"), "Input should be a valid dictionary or instance of Inner"),
        ({"name": "x", "items": {"a": 1}}, ("items",), "Input should be a valid list"),
        ({"name": 3}, ("name",), "Input should be a valid string"),
        ({"name": "x", "mode": "b"}, (), "mode b needs a size"),
    ],
)
def test_the_first_problem_is_named_by_its_place(data: dict[str, Any], loc: tuple[Any, ...], msg: str) -> None:
    assert _problem(data) == (loc, msg)


def test_building_copying_and_dumping() -> None:
    rec = Outer(name="x", items=[Inner(level=2)])
    assert rec.model_dump() == {"name": "X", "mode": "a", "on": False, "size": None, "inner": {"level": 1, "ratio": 0.5},
                                "items": [{"level": 2, "ratio": 0.5}], "table": {}, "extra": {}}  # fmt: skip
    assert Outer.model_validate(rec.model_dump()) == rec
    assert rec.model_copy(update={"size": 8}).size == 8 and rec.size is None
    with pytest.raises(ValidationError, match="greater than or equal to 6"):
        rec.model_copy(update={"size": 1})  # copies are checked too
    with pytest.raises(ValueError, match="1 validation error for Inner\nlevel\n"):
        Inner(level=0)
    assert Outer(name="x").items is not Outer(name="y").items  # factories give each its own
