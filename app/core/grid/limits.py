"""Limits on what a grid file (and a cases file it imports) may hold, so that a hostile or
broken file fails at once with a clear error instead of eating memory and time.

- file size: checked before reading (:func:`read_limited`);
- YAML aliases: a "billion laughs" file (an alias of an alias of ... eight deep) composes to
  a small node graph that expands to billions of values; :func:`load_yaml` counts the
  values and characters the document expands to (without expanding it) and its nesting;
- cells (prompts x tests x providers) and the size of a rendered prompt.

Past a limit the error names it (the CLI exits 2).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError
from app.core.grid.doc import GridFileError

MAX_FILE_BYTES = 8 * 1024 * 1024
"""A grid or cases file's size."""
MAX_VALUES = 200_000
"""Values (mappings, lists, scalars) a YAML document may expand to, its aliases followed."""
MAX_CHARS = 16_000_000
"""Characters of text a YAML document may expand to, its aliases followed."""
MAX_DEPTH = 100
"""Nesting of lists and mappings in a YAML or JSON document."""
MAX_CELLS = 10_000
"""Cells of a grid (prompts x test cases x providers)."""
MAX_PROMPT_CHARS = 1_000_000
"""Characters of one rendered prompt (about 250,000 tokens; more than any model's context)."""
MAX_GRID_CHARS = 64_000_000
"""Characters of all of a grid's rendered prompts together, and of the files its variables
and prompts read (a 1 MB file in 10,000 cells would be 10 GB of requests)."""


class LimitError(GridFileError):
    """A file is past one of the limits above; the message names the limit."""


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def read_limited(path: Path, error: type[ConfigError] = LimitError) -> str:
    """The UTF-8 text of ``path``, refusing a file over :data:`MAX_FILE_BYTES` before it is
    read (raises ``error``; OSError and UnicodeDecodeError pass through)."""
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{path.name} is larger than the limit of {_mib(MAX_FILE_BYTES)} for grid and cases files.",
                    hint="Split it into smaller files.")  # fmt: skip
    return data.decode("utf-8")


def _too_deep(source: str) -> LimitError:
    return LimitError(f"{source}: the values are nested more than {MAX_DEPTH} deep (the limit).",
                      hint="Flatten the file.")  # fmt: skip


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [c for pair in node.value for c in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _expanded(root: Any, source: str) -> None:
    """Raise LimitError when the node graph under ``root`` expands past the limits. Each
    node's size is computed once (aliases share nodes), so this is linear in the file."""
    sizes: dict[int, tuple[int, int, int]] = {}  # id -> values, characters, depth
    stack: list[tuple[Any, bool]] = [(root, False)]  # (node, children done?)
    on_path: set[int] = set()  # the nodes being expanded: the current path from the root
    while stack:
        node, done = stack.pop()
        key = id(node)
        if not done:
            if key in sizes:
                continue
            if key in on_path:
                raise LimitError(f"{source}: a YAML alias refers to a value that contains it.",
                                 hint="Remove the recursive alias (&name ... *name inside it).")  # fmt: skip
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
            continue
        on_path.discard(key)
        values, chars, depth = 1, len(node.value) if isinstance(node.value, str) else 0, 0
        for child in _children(node):
            v, c, d = sizes[id(child)]
            values, chars, depth = values + v, chars + c, max(depth, d)
        if depth + 1 > MAX_DEPTH:
            raise _too_deep(source)
        if values > MAX_VALUES:
            raise LimitError(f"{source}: the file expands to more than {MAX_VALUES:,} values "
                             f"(the limit; YAML aliases count each time they are used).",
                             hint="Use fewer aliases (*name) or split the file.")  # fmt: skip
        if chars > MAX_CHARS:
            raise LimitError(f"{source}: the file expands to more than {MAX_CHARS:,} characters "
                             f"(the limit; YAML aliases count each time they are used).",
                             hint="Use fewer aliases (*name) or shorter values.")  # fmt: skip
        sizes[key] = (values, chars, depth + 1)


@functools.cache
def _loader_class() -> type[Any]:
    import yaml

    class DepthLimitedLoader(yaml.SafeLoader):  # type: ignore[misc]
        """SafeLoader that refuses nesting past :data:`MAX_DEPTH` while it composes (before
        Python's recursion limit is near), with YAML 1.2's plain scalars as promptfoo's
        js-yaml reads them: ``yes``/``no``/``on``/``off`` are text, ``12:30`` too, ``012`` is 12."""

        depth = 0

        def construct_yaml_int(self, node: Any) -> int:
            text = str(self.construct_scalar(node)).replace("_", "")
            sign = -1 if text.startswith("-") else 1
            digits = text.lstrip("+-")
            base = {"0x": 16, "0o": 8, "0b": 2}.get(digits[:2].lower(), 10)
            return sign * int(digits[2:] if base != 10 else digits, base)

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _too_deep(str(getattr(self, "source", "")))
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    _yaml_12_scalars(DepthLimitedLoader)
    return DepthLimitedLoader


_YAML12 = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+)$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+.0123456789"),
)  # fmt: skip
"""YAML 1.2 core schema booleans and numbers (js-yaml's, so promptfoo's)."""


def _yaml_12_scalars(loader: Any) -> None:
    """Give ``loader`` YAML 1.2's implicit booleans and numbers in place of YAML 1.1's."""
    import re

    replaced = {tag for tag, _, _ in _YAML12}
    loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in replaced]
        for first, resolvers in loader.yaml_implicit_resolvers.items()
    }
    for tag, pattern, firsts in _YAML12:
        loader.add_implicit_resolver(tag, re.compile(pattern), list(firsts))
    loader.add_constructor("tag:yaml.org,2002:int", loader.construct_yaml_int)


def compose_yaml(text: str, source: str) -> tuple[Any, Any]:
    """The YAML node of ``text`` and its data, within the limits (raises LimitError, or
    yaml.YAMLError for bad syntax)."""
    loader = _loader_class()(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _expanded(node, source)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def load_json(text: str, source: str) -> Any:
    """``json.loads`` that turns too deep nesting into LimitError (ValueError passes)."""
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise _too_deep(source) from None


def check_cells(cells: int, source: str) -> None:
    """Raise LimitError when a grid has more than :data:`MAX_CELLS` cells."""
    if cells > MAX_CELLS:
        raise LimitError(f"{source}: the grid has {cells:,} cells, more than the limit of {MAX_CELLS:,} "
                         f"(prompts x tests x providers).", hint="Split it into smaller grids.")  # fmt: skip
