"""Prompts and variables from files, as promptfoo reads them (paths relative to the grid file).

Prompts (``prompts:`` entries):

- ``file://path`` or a bare path that names an existing file (``prompt.txt``); a glob
  (``file://prompts/*.txt``) gives one prompt per file, in name order;
- ``.txt`` / ``.md`` / other text: split into prompts at lines that are ``---``;
- ``.json``: the file is one prompt (a JSON chat prompt is sent as its messages);
- ``.yaml`` / ``.yml``: the data as a JSON prompt (a list of ``{role, content}``);
- ``.jsonl``: one prompt per line;
- ``.js``, ``.py`` and other code: refused (exit 2), they would run code.

Variables: ``file://x.txt`` is the file's text (trimmed), ``.yaml`` its data as JSON text,
other files their text; a glob expands to one value per file (and so to more cells).
A missing file, or a glob that matches nothing, stops the grid with the path.
"""

from __future__ import annotations

import glob as globlib
import json
import re
from pathlib import Path
from typing import Any

from app.core.grid import limits
from app.core.grid.doc import Doc, Path_
from app.core.grid.limits import MAX_CELLS, LimitError, compose_yaml, load_json, read_limited
from app.core.grid.model import Prompt

CODE_SUFFIXES = (".js", ".cjs", ".mjs", ".ts", ".py", ".sh")
BINARY_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg", ".mp3", ".wav", ".mp4")
_MAGIC = re.compile(r"[*?\[{]")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{2,4}$")


def looks_like_path(text: str, doc: Doc) -> bool:
    """True for ``file://...``, or a one-line text without spaces that names an existing
    file next to the grid file, or looks like a path as promptfoo sees one (a ``/``, a ``*``
    or a short extension: ``prompt.txt``). promptfoo reads such a prompt from the file, so
    a missing one is an error, never sent as text. Without a grid file (a stored run) only
    ``file://`` is a path."""
    if text.startswith("file://"):
        return True
    if doc.base_dir is None:  # a stored run or pasted text: its prompts are text already
        return False
    stripped = text.strip()
    if "\n" in text or "{{" in text or "{%" in text or len(text) > 1024 or any(c.isspace() for c in stripped):
        return False
    if "/" in stripped or "\\" in stripped or "*" in stripped or _EXTENSION.search(stripped):
        return True
    try:
        return ((doc.base_dir or Path.cwd()) / stripped).expanduser().is_file()
    except OSError:
        return False


def _matches(base: Path, pattern: str) -> list[Path]:
    full = Path(pattern).expanduser()
    full = full if full.is_absolute() else base / full
    return [Path(p) for p in sorted(globlib.glob(str(full), recursive=True)) if Path(p).is_file()]


def resolve(ref: str, path: Path_, doc: Doc) -> list[Path]:
    """The files ``ref`` (``file://path``, a bare path or a glob) names; exit 2 for none."""
    raw = ref.removeprefix("file://").strip()
    base = doc.base_dir or Path.cwd()
    if _MAGIC.search(raw):
        found = _matches(base, raw)
        if not found:
            doc.fail(path, f"no file matches '{raw}' (in {base}).", "Check the pattern (paths start at the grid file's folder).")
        if len(found) > MAX_CELLS:
            doc.fail(path, f"'{raw}' matches more than {MAX_CELLS:,} files (the limit).", "Narrow the pattern.")
        return found
    return [doc.file(path, raw)]


def read_text(target: Path, path: Path_, doc: Doc) -> str:
    """A file's UTF-8 text, within the file size limit."""
    if target.suffix.lower() in BINARY_SUFFIXES:
        doc.fail(path, f"{target.name}: images, audio, video and PDF files are not supported as prompts or variables.",
                 "Use a text file.")  # fmt: skip
    try:
        text = read_limited(target, LimitError)
    except (OSError, UnicodeDecodeError) as exc:
        doc.fail(path, f"cannot read {target}: {exc}.", "Save it as UTF-8 text.")
    total = doc.read_chars = getattr(doc, "read_chars", 0) + len(text)
    if total > limits.MAX_GRID_CHARS:
        raise LimitError(f"{doc.where(path)}: the files the grid reads hold more than {limits.MAX_GRID_CHARS:,} "
                         f"characters together (the limit).", hint="Read fewer or smaller files.")  # fmt: skip
    return text


def _data(target: Path, text: str, path: Path_, doc: Doc) -> Any:
    import yaml

    try:
        return load_json(text, target.name) if target.suffix.lower() == ".json" else compose_yaml(text, target.name)[1]
    except (ValueError, yaml.YAMLError) as exc:
        doc.fail(path, f"{target.name} is not valid {'JSON' if target.suffix.lower() == '.json' else 'YAML'}: {exc}.",
                 "Fix the file's syntax.")  # fmt: skip


def _refuse_code(target: Path, path: Path_, doc: Doc, what: str) -> None:
    if target.suffix.lower() in CODE_SUFFIXES:
        doc.fail(path, f"{target.name}: {what} written as code ({target.suffix}) are not supported (they would run a program).",
                 f"Write the {what} as text, JSON or YAML.")  # fmt: skip


def prompts_from_file(target: Path, label: str, shown: str, path: Path_, doc: Doc) -> list[Prompt]:
    """The prompts in one file (see the module doc); labels as promptfoo makes them
    (``LABEL: path: text`` for text files, ``path`` or ``LABEL`` otherwise)."""
    _refuse_code(target, path, doc, "prompts")
    text = read_text(target, path, doc)
    suffix = target.suffix.lower()
    if suffix == ".json":
        return [Prompt(text.strip(), label or shown)]
    if suffix in (".yaml", ".yml"):
        data = _data(target, text, path, doc)
        return [Prompt(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), label or shown)]
    if suffix == ".jsonl":
        lines = [line for line in text.splitlines() if line.strip()]
        return [Prompt(line, f"{label or shown}: {line}") for line in lines]
    out: list[Prompt] = []
    buffer: list[str] = []
    for line in [*text.splitlines(), "---"]:
        if line.strip() == "---":
            raw = "\n".join(buffer).strip()
            if raw:
                out.append(Prompt(raw, f"{label}: {shown}: {raw}" if label else f"{shown}: {raw}"))
            buffer = []
        else:
            buffer.append(line)
    return out


def prompt_entries(ref: str, label: str, path: Path_, doc: Doc) -> list[Prompt]:
    """The prompts of one ``file://`` / path / glob entry."""
    files = resolve(ref, path, doc)
    raw = ref.removeprefix("file://").strip()
    out: list[Prompt] = []
    for target in files:
        shown = raw if len(files) == 1 else _shown(target, doc)
        out += prompts_from_file(target, label, shown, path, doc)
    if not out:
        doc.fail(path, f"'{raw}' holds no prompt (the file is empty).", "Write the prompt into the file.")
    return out


def _shown(target: Path, doc: Doc) -> str:
    try:
        return str(target.relative_to(doc.base_dir)) if doc.base_dir else str(target)
    except ValueError:
        return str(target)


def var_values(value: Any, path: Path_, doc: Doc) -> list[Any]:
    """The values a variable takes: a ``file://`` reference read (a glob: one value per
    file); an array of texts: each text (promptfoo's cross product); else the value."""
    if isinstance(value, str) and value.startswith("file://"):
        return [var_file(target, path, doc) for target in resolve(value, path, doc)]
    if isinstance(value, list) and value and isinstance(value[0], str):
        out: list[Any] = []
        for i, item in enumerate(value):
            out += var_values(item, (*path, i), doc) if isinstance(item, str) else [item]
        return out
    return [value]


def var_file(target: Path, path: Path_, doc: Doc) -> Any:
    """A variable's value from a file, as promptfoo loads it."""
    _refuse_code(target, path, doc, "variables")
    text = read_text(target, path, doc)
    if target.suffix.lower() in (".yaml", ".yml"):
        return json.dumps(_data(target, text, path, doc), ensure_ascii=False)
    return text.strip()


