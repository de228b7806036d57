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
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from app.core.errors import AppError, ConfigError
from app.core.grid.cases import CasesFileError, known_type, load_cases
from app.core.grid.model import (
    ASSERT_TYPES,
    DEFAULT_LEVENSHTEIN,
    Assertion,
    GridConfig,
    Prompt,
    TestCase,
    Variant,
    parse_adapter,
)
from app.core.types import GenerationParams, ModelRef

Path_ = tuple[str | int, ...]
TOP_KEYS = ("description", "prompts", "providers", "defaultTest", "tests")
CONFIG_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop", "system", "adapters", "endpoint", "base_url",
               "apiBaseUrl")  # fmt: skip
FORMAT_HINT = "See the Workbench section of the README for the grid file format."


class GridFileError(ConfigError):
    """A grid file is wrong; the message names the file, line and key."""


def key_path(path: Path_) -> str:
    """``providers[1].config.temperature``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Doc:
    """The parsed document's line numbers (by key path), its name and folder, its warnings."""

    def __init__(self, source: str, lines: dict[Path_, int], base_dir: Path | None) -> None:
        self.source = source
        self.lines = lines
        self.base_dir = base_dir
        self.warnings: list[str] = []

    def where(self, path: Path_) -> str:
        if not path:  # the whole file (e.g. a missing top-level key): no line to name
            return self.source
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        at = f"{self.source}, line {line}" if line else self.source
        return f"{at}: {key_path(path)}" if path else at

    def fail(self, path: Path_, message: str, hint: str = FORMAT_HINT) -> NoReturn:
        raise GridFileError(f"{self.where(path)}: {message}", hint=hint)

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(f"{self.where(path)}: {message}")

    def file(self, path: Path_, ref: str) -> Path:
        target = Path(ref.removeprefix("file://")).expanduser()
        if not target.is_absolute() and self.base_dir is not None:
            target = self.base_dir / target
        if not target.is_file():
            self.fail(path, f"the file '{target}' does not exist.", "Check the path (relative paths start at the grid file's folder).")
        return target


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
                    is_json: bool = False) -> GridConfig:  # fmt: skip
    """Parse a grid file's text (YAML, or JSON when ``is_json``); raises GridFileError."""
    import yaml

    if is_json:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise GridFileError(f"{source}, line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}.",
                                hint="Fix the JSON syntax (a missing comma or quote?).") from None  # fmt: skip
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
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
    doc = _Doc(source, lines, base_dir)
    if dupes:
        path, first, again = dupes[0]
        doc.fail(path, f"this key is given twice (lines {first} and {again}).", "Keep one of them.")
    return _grid(data, doc)


def load_grid(path: Path) -> GridConfig:
    """Read a grid file (.yaml, .yml or .json)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GridFileError(f"There is no grid file at {path}.", hint="Check the path.") from None
    except OSError as exc:
        raise GridFileError(f"Cannot read {path}: {exc.strerror}.", hint="Check the path and its permissions.") from None
    except UnicodeDecodeError as exc:
        raise GridFileError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}).",
                            hint="Save the file as UTF-8.") from None  # fmt: skip
    return parse_grid_text(text, source=path.name, base_dir=path.parent, is_json=path.suffix.lower() == ".json")


def dump_grid(config: GridConfig, *, as_json: bool = False) -> str:
    """A grid file's text for ``config`` (YAML unless ``as_json``)."""
    data = config.to_dict()
    if as_json:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


def grid_from_dict(data: Mapping[str, Any], source: str = "stored run") -> GridConfig:
    """A config from :meth:`GridConfig.to_dict` data (a stored run's configuration)."""
    return _grid(dict(data), _Doc(source, {}, None))


# ------------------------------------------------------------------------------------------ the parts
def _grid(data: Any, doc: _Doc) -> GridConfig:
    if not isinstance(data, dict):
        doc.fail((), "a grid file must be a mapping with prompts, providers and tests.",
                 "Start from the example in the README's Workbench section.")  # fmt: skip
    for key in data:
        if key not in TOP_KEYS:
            doc.warn((key,), f"ignored (the Workbench reads {', '.join(TOP_KEYS)}).")
    description = data.get("description") or ""
    if not isinstance(description, str):
        doc.fail(("description",), "must be text.")
    if "prompts" not in data:
        doc.fail((), "'prompts' is missing.", "Add prompts: [\"Your prompt with {{variables}}\"].")
    if "providers" not in data:
        doc.fail((), "'providers' is missing.", "Add providers: [openai:gpt-4o-mini, local:smollm2].")
    prompts = _prompts(data["prompts"], doc)
    variants = tuple(_variant(item, ("providers", i), doc) for i, item in enumerate(_as_list(data["providers"])))
    if not variants:
        doc.fail(("providers",), "no providers are listed.", "List at least one model id, e.g. mock:echo.")
    default_vars, default_asserts, grader = _default_test(data.get("defaultTest"), doc)
    tests = _tests(data.get("tests"), doc)
    config = GridConfig(description, prompts, variants, tests, default_vars, default_asserts, grader, tuple(doc.warnings))
    if grader is None and config.uses_rubric():
        doc.fail(_first_rubric(data), "llm-rubric needs a grader model.",
                 "Set defaultTest: {options: {provider: local:smollm2}} (any model id; a local one works offline).")  # fmt: skip
    return config


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _first_rubric(data: dict[str, Any]) -> Path_:
    tests = data.get("tests")
    for i, t in enumerate(tests if isinstance(tests, list) else []):
        for j, a in enumerate((t or {}).get("assert") or [] if isinstance(t, dict) else []):
            if isinstance(a, dict) and str(a.get("type", "")).endswith("llm-rubric"):
                return ("tests", i, "assert", j)
    return ("defaultTest",)


def _prompts(value: Any, doc: _Doc) -> tuple[Prompt, ...]:
    out: list[Prompt] = []
    for i, item in enumerate(_as_list(value)):
        path: Path_ = ("prompts", i) if isinstance(value, list) else ("prompts",)
        label = ""
        if isinstance(item, dict):
            label = str(item.get("label") or "")
            item = item.get("raw", item.get("id"))
        if not isinstance(item, str) or not item.strip():
            doc.fail(path, "a prompt must be non-empty text (or {raw, label}).", 'Write e.g. "Summarise: {{text}}".')
        if item.startswith("file://"):
            target = doc.file(path, item)
            try:
                parts = re.split(r"^---\s*$", target.read_text(encoding="utf-8"), flags=re.M)
            except (OSError, UnicodeDecodeError) as exc:
                doc.fail(path, f"cannot read {target}: {exc}.", "Save it as UTF-8 text.")
            out += [Prompt(p.strip("\n"), label) for p in parts if p.strip()]
        else:
            out.append(Prompt(item, label))
    if not out:
        doc.fail(("prompts",), "no prompts are listed.", 'Add one, e.g. prompts: ["Hello"].')
    return tuple(out)


def normalize_model_id(raw: str) -> tuple[str, str | None]:
    """promptfoo's ids (``openai:chat:gpt-4o``, ``ollama:chat:llama3.2``, ``echo``) as this
    app's ``provider:model`` and an endpoint (raises InvalidModelId)."""
    text = raw.strip()
    if text == "echo":
        return "mock:echo", None
    prefix, _, rest = text.partition(":")
    prefix = prefix.strip().lower()
    if prefix in ("openai", "ollama"):
        for form in ("chat:", "completion:", "responses:"):
            if rest.startswith(form):
                rest = rest[len(form):]
        if prefix == "ollama":
            return f"openai:{rest}", "Ollama"
    return str(ModelRef.parse(f"{prefix}:{rest}")), None


def _number(value: Any, path: Path_, doc: _Doc, *, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        doc.fail(path, f"must be {'a whole number' if integer else 'a number'} (got {value!r}).",
                 "Write a plain number, without quotes.")  # fmt: skip
    return value


def _variant(item: Any, path: Path_, doc: _Doc) -> Variant:
    if isinstance(item, dict) and "id" not in item and len(item) == 1:  # {"openai:gpt-4o": {config...}}
        (key, body), = item.items()
        item = {"id": key, **(body if isinstance(body, dict) else {})}
    if isinstance(item, str):
        item = {"id": item}
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        doc.fail(path, "a provider is a model id or {id, label, config}.", "Write e.g. - openai:gpt-4o-mini.")
    for key in item:
        if key not in ("id", "label", "config"):
            doc.warn((*path, key), "ignored (a provider has id, label and config).")
    try:
        model, endpoint = normalize_model_id(item["id"])
    except AppError as exc:
        doc.fail((*path, "id") if len(item) > 1 else path, exc.message, exc.hint)
    label = item.get("label") or ""
    if not isinstance(label, str):
        doc.fail((*path, "label"), "must be text.")
    config = item.get("config") or {}
    if not isinstance(config, dict):
        doc.fail((*path, "config"), "must be a mapping (temperature, max_tokens, ...).")
    return _apply_config(Variant(model, label, endpoint), config, (*path, "config"), doc)


def _apply_config(variant: Variant, config: dict[str, Any], path: Path_, doc: _Doc) -> Variant:
    changes: dict[str, Any] = {}
    for key, value in config.items():
        at = (*path, key)
        if key in ("temperature", "top_p"):
            changes[key] = float(_number(value, at, doc))
        elif key in ("max_tokens", "seed"):
            changes[key] = _number(value, at, doc, integer=True)
        elif key == "stop":
            stops = _as_list(value)
            if not all(isinstance(s, str) and s for s in stops):
                doc.fail(at, "must be text or a list of texts.", 'Write stop: ["\\n\\n"].')
            changes["stop"] = tuple(stops)
        elif key == "system":
            if not isinstance(value, str):
                doc.fail(at, "must be text.")
            changes["system"] = value
        elif key == "adapters":
            specs = []
            for i, spec in enumerate(_as_list(value)):
                if not isinstance(spec, str) or not spec.strip():
                    doc.fail((*at, i) if isinstance(value, list) else at, "an adapter is PATH or PATH:SCALE.")
                try:
                    adapter = parse_adapter(spec)
                except AppError as exc:
                    doc.fail((*at, i) if isinstance(value, list) else at, exc.message, exc.hint)
                if doc.base_dir is not None and not Path(adapter.path).expanduser().is_absolute():
                    adapter = type(adapter)(str((doc.base_dir / adapter.path).resolve()), adapter.scale)
                specs.append(adapter)
            if specs and not ModelRef.parse(variant.model).takes_adapters:
                doc.fail(at, f"{variant.model} cannot take LoRA adapters (only local: and huggingface: models can).",
                         "Remove the adapters, or use a local model.")  # fmt: skip
            changes["adapters"] = tuple(specs)
        elif key in ("endpoint", "base_url", "apiBaseUrl"):
            if not isinstance(value, str) or not value.strip():
                doc.fail(at, "must be an endpoint name or a base URL.")
            if not variant.model.startswith("openai:"):
                doc.fail(at, "only OpenAI-compatible models (openai:...) have an endpoint.")
            changes["endpoint"] = value.strip()
        elif key in ("apiKey", "api_key"):
            doc.warn(at, "ignored: keys are never read from files (python -m app keys set ..., or the Keys dialog).")
        else:
            doc.warn(at, f"ignored (config takes {', '.join(CONFIG_KEYS)}).")
    variant = variant.with_(**changes)
    try:
        GenerationParams(temperature=variant.temperature if variant.temperature is not None else 0.7,
                         top_p=variant.top_p if variant.top_p is not None else 1.0,
                         max_tokens=variant.max_tokens, seed=variant.seed, stop=variant.stop).validated()  # fmt: skip
    except AppError as exc:
        bad = next((k for k in ("temperature", "top_p", "max_tokens", "seed", "stop") if exc.message.startswith(k)), None)
        doc.fail((*path, bad) if bad else path, exc.message, "Fix the value in the file.")
    return variant


def _default_test(value: Any, doc: _Doc) -> tuple[dict[str, Any], tuple[Assertion, ...], Variant | None]:
    if value is None:
        return {}, (), None
    path: Path_ = ("defaultTest",)
    if not isinstance(value, dict):
        doc.fail(path, "must be a mapping (vars, assert, options).")
    for key in value:
        if key not in ("vars", "assert", "options"):
            doc.warn((*path, key), "ignored (defaultTest takes vars, assert and options).")
    variables = _vars(value.get("vars"), (*path, "vars"), doc)
    asserts = _asserts(value.get("assert"), (*path, "assert"), doc)
    options = value.get("options") or {}
    if not isinstance(options, dict):
        doc.fail((*path, "options"), "must be a mapping (provider).")
    grader = options.get("provider")
    return variables, asserts, None if grader is None else _variant(grader, (*path, "options", "provider"), doc)


def _vars(value: Any, path: Path_, doc: _Doc) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        doc.fail(path, "must be a mapping of names to values.", "Write vars: {country: France}.")
    return {str(k): v for k, v in value.items()}


def _tests(value: Any, doc: _Doc) -> tuple[TestCase, ...]:
    if value is None:
        return ()
    out: list[TestCase] = []
    for i, item in enumerate(_as_list(value)):
        path: Path_ = ("tests", i) if isinstance(value, list) else ("tests",)
        if isinstance(item, str) and item.startswith("file://"):
            try:
                out += load_cases(doc.file(path, item))
            except CasesFileError as exc:
                doc.fail(path, exc.message, exc.hint)
            continue
        if not isinstance(item, dict):
            doc.fail(path, "a test is a mapping with vars and assert (or file://cases.csv).")
        for key in item:
            if key not in ("vars", "assert", "description", "options"):
                doc.warn((*path, key), "ignored (a test takes description, vars and assert).")
        description = item.get("description") or ""
        out.append(TestCase(_vars(item.get("vars"), (*path, "vars"), doc),
                            _asserts(item.get("assert"), (*path, "assert"), doc), str(description)))  # fmt: skip
    return tuple(out)


def _asserts(value: Any, path: Path_, doc: _Doc) -> tuple[Assertion, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        doc.fail(path, "must be a list of assertions.", "Write assert: [{type: contains, value: Paris}].")
    return tuple(_assertion(item, (*path, i), doc) for i, item in enumerate(value))


def _assertion(item: Any, path: Path_, doc: _Doc) -> Assertion:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        doc.fail(path, "an assertion is a mapping with a type.", "Write {type: contains, value: Paris}.")
    kind = item["type"].strip()
    if not known_type(kind):
        doc.fail((*path, "type"), f"'{kind}' is not an assertion type this app checks.",
                 "Use one of " + ", ".join(ASSERT_TYPES) + ", or not- before any of them.")  # fmt: skip
    for key in item:
        if key not in ("type", "value", "threshold", "provider", "weight", "metric"):
            doc.warn((*path, key), "ignored (an assertion takes type, value and threshold).")
    base = kind[4:] if kind.startswith("not-") else kind
    value, threshold = item.get("value"), item.get("threshold")
    if threshold is not None:
        threshold = float(_number(threshold, (*path, "threshold"), doc))
    if base in ("cost", "latency"):
        if threshold is None and value is not None:
            threshold, value = float(_number(value, (*path, "value"), doc)), None
        if threshold is None or threshold < 0:
            doc.fail(path, f"{kind} needs a threshold (the maximum {'USD' if base == 'cost' else 'milliseconds'}).",
                     f"Write {{type: {kind}, threshold: {'0.01' if base == 'cost' else '2000'}}}.")  # fmt: skip
    elif base in ("contains-any", "contains-all"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not value or not all(isinstance(v, str | int | float) for v in value):
            doc.fail((*path, "value"), f"{kind} needs a list of texts.", "Write value: [Paris, paris].")
        value = [str(v) for v in value]
    elif base == "is-json":
        if value is not None:
            doc.fail((*path, "value"), "a JSON schema for is-json is not supported.", "Remove the value: the answer is checked to be JSON.")
    elif base == "levenshtein":
        if value is None:
            doc.fail(path, "levenshtein needs a value (the expected text).", "Write {type: levenshtein, value: Paris, threshold: 2}.")
        threshold = DEFAULT_LEVENSHTEIN if threshold is None else threshold
    else:
        if value is None or isinstance(value, dict | list):
            doc.fail(path, f"{kind} needs a value (text).", f"Write {{type: {kind}, value: ...}}.")
        if base == "regex":
            try:
                re.compile(str(value))
            except re.error as exc:
                doc.fail((*path, "value"), f"not a valid regular expression: {exc}.", "Fix the pattern (Python syntax).")
        if base != "equals" or not isinstance(value, str):
            value = str(value) if not isinstance(value, str) else value
    grader = item.get("provider")
    if grader is not None and not isinstance(grader, str):
        grader = grader.get("id") if isinstance(grader, dict) else None
    return Assertion(kind, value, threshold, grader)
