"""Grid files: YAML (or JSON) in promptfoo's vocabulary, read into a :class:`GridConfig`.

```yaml
description: Capitals
prompts: ["What is the capital of {{country}}? One word."]
providers:
  - openai:gpt-4o-mini
  - id: local:smollm2
    label: smol + lora
    config: {temperature: 0, max_tokens: 32, adapters: ["./my-lora:0.8"]}
defaultTest:
  options: {provider: local:smollm2}      # grades llm-rubric
tests:
  - vars: {country: France}
    assert: [{type: icontains, value: paris}]
```

Every error names the file, the line and the key (``grid.yaml, line 7: providers[1].config
.temperature: ...``); unknown keys are ignored with a warning in ``GridConfig.warnings``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.core.grid.cases import CasesFileError, load_cases
from app.core.grid.doc import FORMAT_HINT, Doc, GridFileError, KeyLookup, Path_, key_path
from app.core.grid.entries import (
    as_list,
    assertions,
    case_scoring,
    derived_metrics,
    normalize_model_id,
    variant_entry,
)
from app.core.grid.files import looks_like_path, prompt_entries, resolve
from app.core.grid.limits import LimitError, check_cells, compose_yaml, load_json, read_limited
from app.core.grid.model import Assertion, GridConfig, Prompt, TestCase, Variant
from app.core.grid.refs import dereference
from app.core.grid.suite import (
    check_prompt_refs,
    default_options,
    expand_tests,
    scenario_tests,
    test_options,
)
from app.core.grid.tool_config import read_response_format

__all__ = ["FORMAT_HINT", "GridFileError", "dump_grid", "grid_from_dict", "key_path", "load_grid",
           "normalize_model_id", "parse_grid_text"]
TOP_KEYS = ("description", "prompts", "providers", "defaultTest", "tests", "scenarios", "evaluateOptions",
            "derivedMetrics")
REF_KEYS = ("assertionTemplates",)
"""promptfoo keys that only hold what ``$ref`` s point at (read through the references)."""
IGNORED_KEYS = ("sharing", "outputPath", "tags", "metadata", "writeLatestResults", "$schema")
"""promptfoo keys that change nothing about what is sent or checked: ignored with a warning."""
UNSUPPORTED_KEYS = ("env", "nunjucksFilters", "extensions", "redteam", "commandLineOptions")
"""promptfoo features this app does not have: a grid that uses one exits 2 before sending."""


# ------------------------------------------------------------------------------------------ reading
def _lines(node: Any, path: Path_, out: dict[Path_, int], dupes: list[tuple[Path_, int, int]]) -> None:
    import yaml

    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dupes.append(((*path, key), seen[key], line))
            seen[key] = line
            out[(*path, key)] = line
            _lines(value_node, (*path, key), out, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out, dupes)


def parse_grid_text(text: str, *, source: str = "grid file", base_dir: Path | None = None,
                    is_json: bool = False, keys: KeyLookup | None = None) -> GridConfig:  # fmt: skip
    """Parse a grid file's text (YAML, or JSON when ``is_json``); raises GridFileError.
    ``keys`` reads stored keys (the keyring) for an ``apiKeyEnvar`` that is not set."""
    import yaml

    if is_json:
        try:
            load_json(text, source)
        except json.JSONDecodeError as exc:
            raise GridFileError(f"{source}, line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}.",
                                hint="Fix the JSON syntax (a missing comma or quote?).") from None  # fmt: skip
    try:
        node, data = compose_yaml(text, source)  # within the limits (aliases, nesting): else LimitError
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        raise GridFileError(f"{where}: not valid YAML: {exc.problem or exc.context}.",
                            hint="Check the indentation and the quoting near that line.") from None  # fmt: skip
    except yaml.YAMLError as exc:
        raise GridFileError(f"{source}: not valid YAML: {exc}.", hint="Check the file's syntax.") from None
    lines: dict[Path_, int] = {}
    dupes: list[tuple[Path_, int, int]] = []
    if node is not None:
        _lines(node, (), lines, dupes)
    doc = Doc(source, lines, base_dir, keys)
    if dupes:
        path, first, again = dupes[0]
        doc.fail(path, f"this key is given twice (lines {first} and {again}).", "Keep one of them.")
    return _grid(data, doc)


def load_grid(path: Path, keys: KeyLookup | None = None) -> GridConfig:
    """Read a grid file (.yaml, .yml or .json); ``keys`` as for :func:`parse_grid_text`."""
    try:
        text = read_limited(path, GridFileError)
    except FileNotFoundError:
        raise GridFileError(f"There is no grid file at {path}.", hint="Check the path.") from None
    except OSError as exc:
        raise GridFileError(f"Cannot read {path}: {exc.strerror}.", hint="Check the path and its permissions.") from None
    except UnicodeDecodeError as exc:
        raise GridFileError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}).",
                            hint="Save the file as UTF-8.") from None  # fmt: skip
    return parse_grid_text(text, source=path.name, base_dir=path.parent, is_json=path.suffix.lower() == ".json",
                           keys=keys)  # fmt: skip


def dump_grid(config: GridConfig, *, as_json: bool = False) -> str:
    """A grid file's text for ``config`` (YAML unless ``as_json``)."""
    data = config.to_dict()
    if as_json:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


def grid_from_dict(data: Mapping[str, Any], source: str = "stored run") -> GridConfig:
    """A config from :meth:`GridConfig.to_dict` data (a stored run's configuration)."""
    return _grid(dict(data), Doc(source, {}, None))


# ------------------------------------------------------------------------------------------ the parts
def _grid(data: Any, doc: Doc) -> GridConfig:
    if not isinstance(data, dict):
        doc.fail((), "a grid file must be a mapping with prompts, providers and tests.",
                 "Start from the example in docs/grids.md.")  # fmt: skip
    data = dereference(data, doc)
    for key in data:
        if key in UNSUPPORTED_KEYS:
            doc.fail((key,), f"promptfoo's '{key}' is not supported here, so the grid would not run as promptfoo runs it.",
                     "Remove it (docs/grids.md lists what is supported).")  # fmt: skip
        if key not in TOP_KEYS and key not in REF_KEYS:
            doc.warn((key,), f"ignored (the Workbench reads {', '.join(TOP_KEYS)}).")
    description = data.get("description") or ""
    if not isinstance(description, str):
        doc.fail(("description",), "must be text.")
    if "prompts" not in data:
        doc.fail((), "'prompts' is missing.", "Add prompts: [\"Your prompt with {{variables}}\"].")
    if "providers" not in data:
        doc.fail((), "'providers' is missing.", "Add providers: [openai:gpt-4o-mini, local:smollm2].")
    prompts = _prompts(data["prompts"], doc)
    variants = tuple(variant_entry(item, ("providers", i), doc) for i, item in enumerate(as_list(data["providers"])))
    if not variants:
        doc.fail(("providers",), "no providers are listed.", "List at least one model id, e.g. mock:echo.")
    default_vars, default_asserts, grader = _default_test(data.get("defaultTest"), doc)
    tests = expand_tests(_tests(data.get("tests"), doc), default_vars, ("tests",), doc)
    tests += scenario_tests(data.get("scenarios"), default_vars, doc, _tests)
    check_prompt_refs(prompts, variants, doc)
    repeat = _repeat(data.get("evaluateOptions"), doc)
    check_cells(len(prompts) * max(1, len(tests)) * len(variants) * repeat, doc.source)
    default_scoring = case_scoring(data["defaultTest"], ("defaultTest",), doc) if isinstance(data.get("defaultTest"), dict) else {}
    return GridConfig(description, prompts, variants, tests, default_vars, default_asserts, grader, repeat,
                      tuple(doc.warnings), default_transform=default_scoring.get("transform"),
                      derived_metrics=derived_metrics(data.get("derivedMetrics"), doc))  # fmt: skip


def _repeat(value: Any, doc: Doc) -> int:
    """``evaluateOptions.repeat`` (1 when not given); the other options are warned about."""
    if value is None:
        return 1
    if not isinstance(value, dict):
        doc.fail(("evaluateOptions",), "must be a mapping (repeat).")
    for key in value:
        if key != "repeat":
            doc.warn(("evaluateOptions", key), "ignored (grid --concurrency N sets how many requests run at once).")
    repeat = value.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 100:
        doc.fail(("evaluateOptions", "repeat"), f"must be a whole number from 1 to 100 (got {repeat!r}).")
    return int(repeat)


def _prompts(value: Any, doc: Doc) -> tuple[Prompt, ...]:
    out: list[Prompt] = []
    if isinstance(value, dict):  # {path: label} (promptfoo's map form)
        items: list[tuple[Path_, Any, str]] = [(("prompts", str(k)), k, str(v or "")) for k, v in value.items()]
    else:
        items = [(("prompts", i) if isinstance(value, list) else ("prompts",), item, "") for i, item in enumerate(as_list(value))]
    for path, item, label in items:
        settings: dict[str, Any] = {}
        if isinstance(item, dict):
            for key in item:
                if key not in ("raw", "id", "label", "config"):
                    doc.fail((*path, key), f"'{key}' is not supported in a prompt (a prompt has raw or id, label and config).",
                             "Remove it, or move the setting to the provider's config.")  # fmt: skip
            label = str(item.get("label") or "")
            settings = _prompt_config(item.get("config"), (*path, "config"), doc)
            item = item.get("raw", item.get("id"))
        if not isinstance(item, str) or not item.strip():
            doc.fail(path, "a prompt must be non-empty text (or {raw, label}).", 'Write e.g. "Summarise: {{text}}".')
        found = prompt_entries(item, label, path, doc) if looks_like_path(item, doc) else [Prompt(item, label)]
        out += [replace(p, **settings) for p in found]
    if not out:
        doc.fail(("prompts",), "no prompts are listed.", 'Add one, e.g. prompts: ["Hello"].')
    return tuple(out)


def _prompt_config(value: Any, path: Path_, doc: Doc) -> dict[str, Any]:
    """A prompt's ``config``: its ``response_format`` (promptfoo merges it over the provider's)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        doc.fail(path, "must be a mapping (response_format).")
    for key in value:
        if key != "response_format":
            doc.fail((*path, key), f"'{key}' is not supported in a prompt's config (it takes response_format).",
                     "Move it to the provider's config.")  # fmt: skip
    if "response_format" not in value:
        return {}
    return {"response_schema": read_response_format(value["response_format"], (*path, "response_format"), doc),
            "has_response_format": True}  # fmt: skip


def _default_test(value: Any, doc: Doc) -> tuple[dict[str, Any], tuple[Assertion, ...], Variant | None]:
    if value is None:
        return {}, (), None
    path: Path_ = ("defaultTest",)
    if not isinstance(value, dict):
        doc.fail(path, "must be a mapping (vars, assert, options).")
    for key in value:
        if key not in ("vars", "assert", "options", "metadata", "description"):
            doc.fail((*path, key), f"'{key}' is not supported in defaultTest (it takes vars, assert and options).",
                     "Remove it (docs/grids.md lists what is supported).")  # fmt: skip
    variables = _vars(value.get("vars"), (*path, "vars"), doc)
    asserts = assertions(value.get("assert"), (*path, "assert"), doc)
    return variables, asserts, default_options(value.get("options"), (*path, "options"), doc)


def _vars(value: Any, path: Path_, doc: Doc) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        doc.fail(path, "must be a mapping of names to values.", "Write vars: {country: France}.")
    return {str(k): v for k, v in value.items()}


def _tests(value: Any, doc: Doc, where: Path_ = ("tests",)) -> tuple[TestCase, ...]:
    if value is None:
        return ()
    out: list[TestCase] = []
    for i, item in enumerate(as_list(value)):
        path: Path_ = (*where, i) if isinstance(value, list) else where
        if isinstance(item, str) and (item.startswith("file://") or looks_like_path(item, doc)):
            for target in resolve(item, path, doc):
                try:
                    out += load_cases(target)
                except (CasesFileError, LimitError) as exc:
                    doc.fail(path, exc.message, exc.hint)
            continue
        if not isinstance(item, dict):
            doc.fail(path, "a test is a mapping with vars and assert (or file://cases.csv).")
        for key in item:
            if key not in ("vars", "assert", "description", "options", "metadata", "threshold"):
                doc.fail((*path, key), f"'{key}' is not supported in a test (it takes description, vars, assert, options and threshold).",
                         "Remove it (docs/grids.md lists what is supported).")  # fmt: skip
        description = item.get("description") or ""
        meta = item.get("metadata")
        conversation = str(meta.get("conversationId") or "") if isinstance(meta, dict) else ""
        test = TestCase(_vars(item.get("vars"), (*path, "vars"), doc),
                        assertions(item.get("assert"), (*path, "assert"), doc), str(description),
                        conversation=conversation, **case_scoring(item, path, doc))  # fmt: skip
        out.append(test_options(test, item.get("options"), (*path, "options"), doc))
    return tuple(out)
