"""Prompt templates as promptfoo renders them (nunjucks), with Jinja2 in a sandbox.

Jinja2 and nunjucks share their syntax (``{{ var }}``, ``{% if %}``, ``{% for %}``, filters);
where the two differ this environment follows nunjucks, as promptfoo uses it:

- no autoescaping, and a template's trailing newline is kept;
- an undefined variable (or a member of one) renders empty; the names are reported so the
  grid can warn once;
- values print as JavaScript prints them: ``true``/``false``, ``null`` as empty, ``5`` for
  ``5.0``, a list as ``a,b``, an object as ``[object Object]``;
- ``{% for k, v in obj %}`` walks an object's entries; ``.length`` of a text or list works;
- promptfoo's filters ``load`` (JSON.parse) and ``dump`` (JSON.stringify), and nunjucks'
  ``nl2br``.

Rendering is bounded: the output stops at :data:`~app.core.grid.limits.MAX_PROMPT_CHARS`,
loops and ranges share a step budget, and repetition (``"x" * n``, ``**``, padding) is
checked before it is built, so a hostile template fails with a LimitError at once.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.core.errors import InvalidParams
from app.core.grid import limits
from app.core.grid.limits import LimitError

MAX_STEPS = 500_000
"""Loop iterations (and range items) one render may take."""
MAX_SECONDS = 5.0
"""Wall time one render may take."""
_state = threading.local()
_BIG_WIDTH = re.compile(r"\d{7,}")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered template and the undefined variables it used (in order of first use)."""

    text: str
    undefined: tuple[str, ...] = ()


def js_text(value: Any) -> str:
    """``value`` as nunjucks prints it (JavaScript's String())."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, list | tuple):
        parts, size = [], 0
        for item in value:
            parts.append(js_text(item))
            size += len(parts[-1]) + 1
            if size > limits.MAX_PROMPT_CHARS:
                raise _too_long(getattr(_state, "where", "The prompt"))
        return ",".join(parts)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _too_long(where: str) -> LimitError:
    return LimitError(f"{where} is longer than the limit of {limits.MAX_PROMPT_CHARS:,} characters once rendered.",
                      hint="Use shorter variables, or fewer loop rounds in the template.")  # fmt: skip


def _budget(n: int = 1) -> None:
    steps = getattr(_state, "steps", None)
    if steps is None:
        return
    _state.steps = steps + n
    if _state.steps > MAX_STEPS:
        raise LimitError(f"{_state.where} loops more than {MAX_STEPS:,} times (the limit).",
                         hint="Loop over fewer items.")  # fmt: skip
    if _state.steps // 4096 != steps // 4096 and time.monotonic() > _state.deadline:
        raise LimitError(f"{_state.where} took more than {MAX_SECONDS:g} s to render (the limit).",
                         hint="Simplify the template's loops.")  # fmt: skip


def _size(value: Any) -> None:
    if isinstance(value, str | list | tuple) and len(value) > limits.MAX_PROMPT_CHARS:
        raise _too_long(getattr(_state, "where", "The prompt"))


def _iterate(value: Any, pairs: bool) -> Iterator[Any]:
    """A loop's items, each charged to the budget; an object gives its (key, value) entries
    when the loop names two variables (nunjucks)."""
    if isinstance(value, Mapping):
        value = list(value.items()) if pairs else list(value)
    for item in value:
        _budget()
        yield item


def _bounded_range(*args: int) -> range:
    r = range(*args)
    _budget(len(r))
    return r


def _load(text: Any) -> Any:
    """promptfoo's ``load`` filter: JSON.parse."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidParams(f"the load filter got text that is not JSON: {exc}.",
                            hint="Pass a JSON string to | load.") from None  # fmt: skip


def _dump(value: Any, indent: int | str | None = None) -> str:
    """promptfoo's ``dump`` filter: JSON.stringify (compact unless ``indent``)."""
    if indent in (None, 0, ""):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = js_text(value), js_text(old), js_text(new)
    hits = (len(text) + 1 if old == "" else text.count(old)) if count is None else min(count, len(text) + 1)
    if len(text) + hits * len(new) > limits.MAX_PROMPT_CHARS:
        raise _too_long(getattr(_state, "where", "The prompt"))
    return text.replace(old, new) if count is None else text.replace(old, new, count)


def _join(value: Any, sep: str = "", attribute: str | None = None) -> str:
    items = list(value) if isinstance(value, Iterable) and not isinstance(value, str | Mapping) else [value]
    if attribute is not None:
        items = [item.get(attribute) if isinstance(item, Mapping) else None for item in items]
    parts = [js_text(i) for i in items]
    if sum(len(p) for p in parts) + len(sep) * len(parts) > limits.MAX_PROMPT_CHARS:
        raise _too_long(getattr(_state, "where", "The prompt"))
    return sep.join(parts)


@functools.cache
def _environment() -> Any:
    import jinja2
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment

    class Recording(jinja2.ChainableUndefined):
        """Renders empty (nunjucks) and remembers the variable's name."""

        def __str__(self) -> str:
            name = self._undefined_name
            seen = getattr(_state, "undefined", None)
            if seen is not None and name is not None and self._undefined_obj is jinja2.utils.missing:
                seen.setdefault(str(name), None)
            return ""

    class NunjucksEnvironment(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > limits.MAX_PROMPT_CHARS:
                        raise _too_long(getattr(_state, "where", "The prompt"))
            elif operator == "**" and isinstance(left, int) and isinstance(right, int):
                if right > 0 and abs(left) > 1 and right * abs(left).bit_length() > 4 * limits.MAX_PROMPT_CHARS:
                    raise LimitError("A number in the template is too large (the limit is a million digits).",
                                     hint="Use a smaller exponent.")  # fmt: skip
            elif operator == "%" and isinstance(left, str) and _BIG_WIDTH.search(left):
                raise _too_long(getattr(_state, "where", "The prompt"))
            elif operator == "+" and isinstance(left, str | list) and isinstance(right, str | list):
                if len(left) + len(right) > limits.MAX_PROMPT_CHARS:
                    raise _too_long(getattr(_state, "where", "The prompt"))
            result = super().call_binop(context, operator, left, right)
            _budget()
            return result

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            for arg in (*args, *kwargs.values()):
                if (isinstance(arg, int) and not isinstance(arg, bool) and arg > limits.MAX_PROMPT_CHARS) or (
                        isinstance(arg, str) and len(arg) < 200 and _BIG_WIDTH.search(arg)):  # fmt: skip
                    raise _too_long(getattr(_state, "where", "The prompt"))
            result = super().call(__context, __obj, *args, **kwargs)
            _budget()
            _size(result)
            return result

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, str) and attribute in ("format", "format_map") and _BIG_WIDTH.search(obj):
                raise _too_long(getattr(_state, "where", "The prompt"))
            if attribute == "length" and isinstance(obj, str | list | tuple):
                return len(obj)  # JavaScript's .length (promptfoo's examples use it)
            return super().getattr(obj, attribute)

        def _parse(self, source: str, name: str | None, filename: str | None) -> Any:
            tree = super()._parse(source, name, filename)
            for loop in tree.find_all(nodes.For):
                pairs = isinstance(loop.target, nodes.Tuple) and len(loop.target.items) == 2
                loop.iter = nodes.Call(nodes.Name("__pf_iter", "load"), [loop.iter, nodes.Const(pairs)], [], None, None)
            for concat in list(tree.find_all(nodes.Concat)):
                concat.nodes = [nodes.Call(nodes.Name("__pf_size", "load"), [n], [], None, None) for n in concat.nodes]
            return tree

    env = NunjucksEnvironment(autoescape=False, keep_trailing_newline=True, undefined=Recording,
                              finalize=js_text, extensions=["jinja2.ext.loopcontrols"])  # fmt: skip
    env.globals.update(range=_bounded_range, __pf_iter=_iterate, __pf_size=_sized)
    env.filters.update(load=_load, dump=_dump, replace=_replace, join=_join,
                       nl2br=lambda s: js_text(s).replace("\r\n", "<br />\n").replace("\n", "<br />\n"))  # fmt: skip
    return env


def _sized(value: Any) -> Any:
    _size(value if isinstance(value, str) else "")
    return value


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> Any:
    return _environment().from_string(template)


def compile_template(template: str, where: str = "The prompt") -> Any:
    """The compiled template (raises InvalidParams naming the line of a syntax error)."""
    import jinja2

    try:
        return _compiled(template)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidParams(f"{where} is not a valid template (line {exc.lineno}: {exc.message}).",
                            hint="Fix the {{ }} / {% %} syntax (nunjucks, as promptfoo uses).") from None  # fmt: skip


def render_template(template: str, variables: Mapping[str, Any], *, where: str = "The prompt") -> Rendered:
    """``template`` rendered with ``variables`` (see the module doc). Raises InvalidParams for
    a bad template or a failing filter, LimitError past a limit."""
    import jinja2

    if "{" not in template:  # nothing to render: fast path
        if len(template) > limits.MAX_PROMPT_CHARS:
            raise _too_long(where)
        return Rendered(template)
    compiled = compile_template(template, where)
    outer = (getattr(_state, "steps", None), getattr(_state, "undefined", None),
             getattr(_state, "deadline", None), getattr(_state, "where", None))  # fmt: skip
    _state.steps, _state.undefined, _state.where = 0, {}, where
    _state.deadline = time.monotonic() + MAX_SECONDS
    try:
        parts: list[str] = []
        size = 0
        for chunk in compiled.generate(dict(variables)):
            size += len(chunk)
            if size > limits.MAX_PROMPT_CHARS:
                raise _too_long(where)
            parts.append(chunk)
            _budget()
        return Rendered("".join(parts), tuple(_state.undefined))
    except (LimitError, InvalidParams):
        raise
    except jinja2.TemplateError as exc:
        raise InvalidParams(f"{where} could not be rendered: {exc}.", hint="Fix the template.") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise InvalidParams(f"{where} could not be rendered: {type(exc).__name__}: {exc}.",
                            hint="Fix the template or the variables it uses.") from None  # fmt: skip
    except RecursionError:
        raise LimitError(f"{where} nests too deeply to render.", hint="Simplify the template.") from None
    finally:
        _state.steps, _state.undefined, _state.deadline, _state.where = outer


def template_names(template: str) -> list[str]:
    """The variables a template reads (not those it sets), in order of first use; [] for a
    template that does not parse."""
    import jinja2
    from jinja2 import meta

    try:
        names = meta.find_undeclared_variables(_environment().parse(template))
    except jinja2.TemplateSyntaxError:
        return []
    names -= {"range", "loop"}
    return sorted(names, key=lambda n: (m.start() if (m := re.search(rf"\b{re.escape(n)}\b", template)) else len(template), n))


def render_value(value: Any, variables: Mapping[str, Any], *, where: str = "The prompt") -> tuple[Any, tuple[str, ...]]:
    """Every string inside ``value`` (a JSON prompt's structure) rendered, as promptfoo's
    ``renderVarsInObject`` does; returns the value and the undefined names."""
    undefined: dict[str, None] = {}

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            out = render_template(item, variables, where=where)
            undefined.update(dict.fromkeys(out.undefined))
            return out.text
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        return item

    return walk(value), tuple(undefined)
