"""``$ref`` in a grid file, as promptfoo dereferences its config (json-schema-ref-parser):
``{$ref: '#/assertionTemplates/containsPirateNoise'}`` is replaced by what that JSON pointer
names in the same file (keys beside ``$ref`` are laid over it). A tool's or function's
``parameters`` keep their ``$ref`` s (JSON Schema's own), as promptfoo keeps them.

Only pointers into the same file (``#/...``) are read; any other reference, a pointer to
nothing, or a reference that leads back to itself exits 2 naming its line.
"""

from __future__ import annotations

from typing import Any

from app.core.grid.doc import Doc, Path_

_HINT = "Write $ref: '#/assertionTemplates/NAME' pointing at a key of this file."
_MAX_DEPTH = 64
MAX_NODES = 200_000
"""The most values the file may hold once its references are replaced (a few references
that each name a list of references would otherwise grow it without bound)."""


def _has_ref(data: Any) -> bool:
    if isinstance(data, dict):
        return "$ref" in data or any(_has_ref(v) for v in data.values())
    if isinstance(data, list):
        return any(_has_ref(v) for v in data)
    return False


def _pointer(root: Any, ref: str, path: Path_, doc: Doc) -> Any:
    if not ref.startswith("#/") and ref != "#":
        doc.fail((*path, "$ref"), f"'{ref[:80]}' is not supported: only references into this file (#/...) are read.", _HINT)
    node = root
    for raw in ref[2:].split("/") if ref != "#" else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            doc.fail((*path, "$ref"), f"'{ref[:80]}' points at nothing in this file.", _HINT)
    return node


def _schema_params(path: Path_) -> bool:
    """True at a tool's or function's ``parameters`` (left as written, as promptfoo does)."""
    return (len(path) >= 5 and path[0] == "providers" and path[-1] == "parameters"
            and ("tools" in path or "functions" in path))  # fmt: skip


def _resolve(root: Any, node: Any, path: Path_, doc: Doc, chain: tuple[str, ...], count: list[int]) -> Any:
    count[0] += 1
    if count[0] > MAX_NODES:
        doc.fail(path, f"with its $ref references replaced the file holds over {MAX_NODES:,} values.",
                 "Reference fewer or smaller templates.")  # fmt: skip
    if _schema_params(path):
        return node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in chain or len(chain) >= _MAX_DEPTH:
                doc.fail((*path, "$ref"), f"'{ref[:80]}' leads back to itself.", _HINT)
            target = _resolve(root, _pointer(root, ref, path, doc), path, doc, (*chain, ref), count)
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if not siblings:
                return target
            if not isinstance(target, dict):
                doc.fail((*path, "$ref"), f"'{ref[:80]}' is not a mapping, so keys beside $ref cannot go with it.", _HINT)
            return {**target, **{k: _resolve(root, v, (*path, k), doc, chain, count) for k, v in siblings.items()}}
        return {k: _resolve(root, v, (*path, k), doc, chain, count) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(root, v, (*path, i), doc, chain, count) for i, v in enumerate(node)]
    return node


def dereference(data: Any, doc: Doc) -> Any:
    """The grid file's data with every ``$ref`` replaced (the same object when it has none)."""
    if not _has_ref(data):
        return data
    return _resolve(data, data, (), doc, (), [0])
