"""Typed records without pydantic: dataclasses whose fields are checked and coerced from their
type hints and declared bounds when they are built.

A :class:`Record` subclass is a keyword-only dataclass. Each field's value is checked against
its hint (``bool``, ``int``, ``float``, ``str``, ``Literal``, ``X | None``, ``list[X]``,
``dict[str, X]``, ``Any`` and nested records, given as records or dicts) with pydantic's lax
coercions (``"3"`` -> 3, ``1`` -> 1.0, ``"true"`` -> True), then against the bounds and the
check declared with :func:`spec`, then :meth:`Record._check_record` runs. The first problem
raises :class:`ValidationError` (a ``ValueError``) naming where it is (``loc``). Loading the
settings with pydantic cost ~105 ms of every start (import and model building); this ~2 ms.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Self, Union, cast, dataclass_transform

Loc = tuple[int | str, ...]
MAX_DEPTH = 100
"""How deeply lists and dicts may nest in an ``Any`` field (deeper ones could not be saved)."""
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


class ValidationError(ValueError):
    """A record's value that does not fit its field: ``errors()`` lists ``{"loc", "msg"}``."""

    def __init__(self, title: str, loc: Loc, msg: str) -> None:
        self.title, self.loc, self.msg = title, loc, msg
        where = ".".join(str(part) for part in loc) or "value"
        super().__init__(f"1 validation error for {title}\n{where}\n  {msg}")

    def errors(self) -> list[dict[str, Any]]:
        """The problems (one: checking stops at the first), as pydantic lists them."""
        return [{"loc": self.loc, "msg": self.msg}]


def spec(*, default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING,
         ge: float | None = None, gt: float | None = None, le: float | None = None,
         check: Callable[[Any], Any] | None = None) -> Any:  # fmt: skip
    """A field with bounds (``ge``, ``gt``, ``le``) and/or a ``check`` that returns the value to
    keep or raises ``ValueError`` with the message to show."""
    meta = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("check", check)) if v is not None}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


class _Problem(Exception):
    def __init__(self, loc: Loc, msg: str) -> None:
        self.loc, self.msg = loc, msg


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _scalar(hint: type, value: Any) -> Any:  # noqa: PLR0911 - one return per accepted shape
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Problem((), "Input should be a valid boolean")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _Problem((), "Input should be a valid integer")
    if hint is float:
        out: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                out = None
        if out is None or not math.isfinite(out):
            raise _Problem((), "Input should be a finite number")
        return out
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Problem((), "Input should be a valid string")
    raise TypeError(f"model_fields does not check {hint!r}")


def _shallow_enough(value: Any) -> bool:
    """True when ``value``'s lists and dicts nest at most :data:`MAX_DEPTH` deep (no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                return False
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


def _value(hint: Any, value: Any) -> Any:  # noqa: PLR0911 - one return per kind of hint
    """``value`` checked and coerced to ``hint``; raises :class:`_Problem`."""
    if hint is Any:
        if not _shallow_enough(value):
            raise _Problem((), f"Input is nested more than {MAX_DEPTH} levels deep")
        return value
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and not isinstance(value, bool):
            return value
        names = [repr(c) for c in choices]
        raise _Problem((), "Input should be " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]))
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        first: _Problem | None = None
        for kind in kinds:
            try:
                return _value(kind, value)
            except _Problem as exc:
                first = first or exc
        raise first or _Problem((), "Input should be None")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _Problem((), "Input should be a valid list")
        (item,) = typing.get_args(hint)
        return [_at(i, item, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _Problem((), "Input should be a valid dictionary")
        key_hint, item = typing.get_args(hint)
        return {_at(k, key_hint, k): _at(k, item, v) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise _Problem((), f"Input should be a valid dictionary or instance of {hint.__name__}")
        try:
            return hint.model_validate(value)
        except ValidationError as exc:
            raise _Problem(exc.loc, exc.msg) from None
    return _scalar(hint, value)


def _at(where: int | str, hint: Any, value: Any) -> Any:
    try:
        return _value(hint, value)
    except _Problem as exc:
        raise _Problem((where, *exc.loc), exc.msg) from None


def _bounded(name: str, meta: Mapping[str, Any], value: Any) -> Any:
    if value is None:
        return value
    if "gt" in meta and not value > meta["gt"]:
        raise _Problem((name,), f"Input should be greater than {_num(meta['gt'])}")
    if "ge" in meta and not value >= meta["ge"]:
        raise _Problem((name,), f"Input should be greater than or equal to {_num(meta['ge'])}")
    if "le" in meta and not value <= meta["le"]:
        raise _Problem((name,), f"Input should be less than or equal to {_num(meta['le'])}")
    if "check" in meta:
        try:
            return meta["check"](value)
        except ValueError as exc:
            raise _Problem((name,), str(exc)) from None
    return value


def _fields(record: Any) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(record)


@dataclass_transform(kw_only_default=True, field_specifiers=(dataclasses.field, spec))
class Record:
    """Base of the checked records: subclasses become keyword-only dataclasses."""

    _hints: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(kw_only=True)(cls)
        cls._hints = {}  # resolved on first use: the hints may name classes defined later

    def __post_init__(self) -> None:
        cls = type(self)
        if not cls._hints:
            cls._hints = typing.get_type_hints(cls)
        try:
            for f in _fields(self):
                value = _at(f.name, cls._hints[f.name], getattr(self, f.name))
                object.__setattr__(self, f.name, _bounded(f.name, f.metadata, value))
            self._check_record()
        except _Problem as exc:
            raise ValidationError(cls.__name__, exc.loc, exc.msg) from None
        except ValueError as exc:  # from _check_record: the record as a whole
            raise ValidationError(cls.__name__, (), str(exc)) from None

    def _check_record(self) -> None:
        """Rules across fields, once each field is valid; raise ``ValueError`` to refuse."""

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """A record from a dict (unknown keys ignored) or the record itself."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(cls.__name__, (), f"Input should be a valid dictionary or instance of {cls.__name__}")
        known = {f.name: f for f in _fields(cls)}
        for name, f in known.items():
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValidationError(cls.__name__, (name,), "Field required")
        return cls(**{k: v for k, v in data.items() if k in known})

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        """The fields as plain dicts, lists and scalars (JSON-ready; ``mode`` as pydantic's)."""
        out: dict[str, Any] = dataclasses.asdict(cast(Any, self))
        return out

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A shallow copy with ``update``'s fields replaced (and checked)."""
        out: Self = dataclasses.replace(cast(Any, self), **dict(update or {}))
        return out
