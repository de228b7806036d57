"""Tools and response schemas from files (``ask --tools FILE``, ``--schema FILE``), and the
command line's stub results (``--tool-result NAME=JSON``). Files are JSON or YAML, read
within the grid files' limits (size, nesting, YAML aliases); anything wrong raises
:class:`~app.core.errors.ToolSchemaError` naming the file, the tool and the JSON path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError, ToolSchemaError
from app.core.tools import MAX_NAME, NAME_CHARS, ResponseSchema, ToolSpec, check_schema, parse_tools


def read_data(path: str | Path) -> Any:
    """The JSON or YAML value of the file ``path`` (JSON is YAML; a .json file is read as
    JSON for its exact error positions)."""
    import yaml

    from app.core.grid.limits import compose_yaml, load_json, read_limited

    file = Path(path)
    try:
        text = read_limited(file, ToolSchemaError)
    except OSError as exc:
        raise ToolSchemaError(f"{path}: cannot read the file: {exc.strerror or exc}.",
                              hint="Check the path and try again.") from None  # fmt: skip
    except UnicodeDecodeError:
        raise ToolSchemaError(f"{path}: the file is not UTF-8 text.") from None
    try:
        if file.suffix.lower() == ".json":
            return load_json(text, str(path))
        return compose_yaml(text, str(path))[1]
    except ValueError as exc:
        raise ToolSchemaError(f"{path}: not valid JSON: {exc}.") from None
    except yaml.YAMLError as exc:
        raise ToolSchemaError(f"{path}: not valid JSON or YAML: {' '.join(str(exc).split())}.") from None
    except ConfigError as exc:  # a limit
        raise ToolSchemaError(exc.message, hint=exc.hint) from None


def load_tools(path: str | Path) -> tuple[ToolSpec, ...]:
    """The functions of a tools file: a list in OpenAI's format (or ``{"tools": [...]}``)."""
    return parse_tools(read_data(path), str(path))


def load_schema(path: str | Path) -> ResponseSchema:
    """A response schema file: a JSON Schema, or OpenAI's ``{"name", "schema", "strict"}``
    (the ``json_schema`` object, also inside ``response_format``)."""
    data = read_data(path)
    if isinstance(data, Mapping) and isinstance(data.get("json_schema"), Mapping):
        data = data["json_schema"]
    name = re.sub(r"[^A-Za-z0-9_-]", "_", Path(path).stem)[:MAX_NAME] or "answer"
    strict = True
    if isinstance(data, Mapping) and isinstance(data.get("schema"), Mapping) and "type" not in data:
        name = str(data.get("name") or name)
        strict = bool(data.get("strict", True))
        data = data["schema"]
    check_schema(data, f"{path}: schema")
    return ResponseSchema(dict(data), name=name, strict=strict)


def parse_stub(text: str) -> tuple[str, str]:
    """``NAME=RESULT`` -> ``(name, result)``; the result is sent as written (JSON or text)."""
    name, sep, result = text.partition("=")
    name = name.strip()
    if not sep or not name or len(name) > MAX_NAME or set(name) - NAME_CHARS:
        raise ToolSchemaError(f"--tool-result {text!r}: expected NAME=RESULT, e.g. get_weather='{{\"temp\": 21}}'.",
                              hint="NAME is a function's name (letters, digits, '_' or '-').")  # fmt: skip
    return name, result
