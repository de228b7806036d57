"""Reading the entries of a grid file: providers (model ids, ``{id, label, config}``) and
assertions, each checked with the line and key of any error."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from app.core.errors import AppError
from app.core.grid.cases import known_type
from app.core.grid.doc import Doc, Path_
from app.core.grid.model import (
    ASSERT_TYPES,
    DEFAULT_LEVENSHTEIN,
    NO_NOT,
    Assertion,
    Variant,
    parse_adapter,
)
from app.core.grid.sandbox import regex_problem
from app.core.grid.tool_config import (
    TOOL_KEYS,
    read_json_schema,
    read_response_format,
    read_tool_choice,
    read_tools,
)
from app.core.secrets import ENV_KEY_PREFIX
from app.core.types import GenerationParams, ModelRef
from app.core.url_keys import accept_endpoint, remember_key

CONFIG_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop", "system", "adapters", "endpoint", "base_url",
               "apiBaseUrl", "apiKey", "apiKeyEnvar", *TOOL_KEYS)  # fmt: skip


def as_list(value: Any) -> list[Any]:
    """``value`` itself when it is a list, else a list of it."""
    return value if isinstance(value, list) else [value]


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


def _number(value: Any, path: Path_, doc: Doc, *, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        doc.fail(path, f"must be {'a whole number' if integer else 'a number'} (got {value!r}).",
                 "Write a plain number, without quotes.")  # fmt: skip
    return value


def variant_entry(item: Any, path: Path_, doc: Doc) -> Variant:
    if isinstance(item, dict) and "id" not in item and len(item) == 1:  # {"openai:gpt-4o": {config...}}
        (key, body), = item.items()
        item = {"id": key, **(body if isinstance(body, dict) else {})}
    if isinstance(item, str):
        item = {"id": item}
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        doc.fail(path, "a provider is a model id or {id, label, config}.", "Write e.g. - openai:gpt-4o-mini.")
    for key in item:
        if key in ("env", "delay"):
            doc.fail((*path, key), f"a provider's '{key}' is not supported here.", "Remove it; nothing was sent.")
        if key not in ("id", "label", "config", "prompts", "transform"):
            doc.warn((*path, key), "ignored (a provider has id, label, config, prompts and transform).")
    refs = as_list(item.get("prompts") or [])
    if not all(isinstance(r, str) and r.strip() for r in refs):
        doc.fail((*path, "prompts"), "must be a list of prompt labels.", "Write prompts: [my_prompt].")
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
    transform = transform_value(item["transform"], (*path, "transform"), doc) if item.get("transform") is not None else None
    variant = Variant(model, label, endpoint, prompts=tuple(r.strip() for r in refs), transform=transform)
    return _apply_config(variant, config, (*path, "config"), doc)


def _apply_config(variant: Variant, config: dict[str, Any], path: Path_, doc: Doc) -> Variant:
    changes: dict[str, Any] = {}
    for key, value in config.items():
        at = (*path, key)
        if key in ("temperature", "top_p"):
            changes[key] = float(_number(value, at, doc))
        elif key in ("max_tokens", "seed"):
            changes[key] = _number(value, at, doc, integer=True)
        elif key == "stop":
            stops = as_list(value)
            if not all(isinstance(s, str) and s for s in stops):
                doc.fail(at, "must be text or a list of texts.", 'Write stop: ["\\n\\n"].')
            changes["stop"] = tuple(stops)
        elif key == "system":
            if not isinstance(value, str):
                doc.fail(at, "must be text.")
            changes["system"] = value
        elif key == "adapters":
            specs = []
            for i, spec in enumerate(as_list(value)):
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
            try:
                changes["endpoint"] = accept_endpoint(value.strip())  # a key inside: memory only
            except AppError as exc:
                doc.fail(at, exc.message, exc.hint)
        elif key == "tools":
            changes["tools"] = read_tools(value, at, doc)
        elif key == "response_format":
            changes["response_schema"] = read_response_format(value, at, doc)
        elif key == "parallel_tool_calls":
            if not isinstance(value, bool):
                doc.fail(at, f"must be true or false (got {value!r}).")
            changes["parallel_tool_calls"] = value
        elif key in ("apiKey", "api_key", "apiKeyEnvar"):
            if not isinstance(value, str) or not value.strip():
                doc.fail(at, "must be text.")
        elif key != "tool_choice":
            doc.warn(at, f"ignored (config takes {', '.join(CONFIG_KEYS)}).")
    if "tool_choice" in config:  # after the tools it may name
        changes["tool_choice"] = read_tool_choice(config["tool_choice"], changes.get("tools", ()),
                                                  (*path, "tool_choice"), doc)  # fmt: skip
    if config.get("apiBaseUrl") and changes.get("endpoint", "").startswith(("http://", "https://")):
        changes["unpriced"] = "api.openai.com" not in changes["endpoint"]
    _api_key(variant, config, changes, path, doc)
    variant = variant.with_(**changes)
    try:
        GenerationParams(temperature=variant.temperature if variant.temperature is not None else 0.7,
                         top_p=variant.top_p if variant.top_p is not None else 1.0,
                         max_tokens=variant.max_tokens, seed=variant.seed, stop=variant.stop).validated()  # fmt: skip
    except AppError as exc:
        bad = next((k for k in ("temperature", "top_p", "max_tokens", "seed", "stop") if exc.message.startswith(k)), None)
        doc.fail((*path, bad) if bad else path, exc.message, "Fix the value in the file.")
    return variant


def _api_key(variant: Variant, config: dict[str, Any], changes: dict[str, Any], path: Path_, doc: Doc) -> None:
    """``apiKey`` / ``apiKeyEnvar`` with an ``apiBaseUrl``: the key is kept in memory for that
    base URL (this process's requests to it), never in the variant, the stored run or an export."""
    key = config.get("apiKey") or config.get("api_key")
    if key is None and config.get("apiKeyEnvar"):
        key = _env_key(str(config["apiKeyEnvar"]).strip(), (*path, "apiKeyEnvar"), doc)
    if not key:
        return
    if not variant.model.startswith("openai:"):
        doc.fail((*path, "apiKey"), "only OpenAI-compatible models (openai:...) take an apiKey.")
    url = changes.get("endpoint") or variant.endpoint
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        doc.fail((*path, "apiKey" if "apiKeyEnvar" not in config else "apiKeyEnvar"),
                 "a key in a grid file goes with an apiBaseUrl (it is used for that server only).",
                 "For OpenAI's own API keep the key in the keyring (python -m app keys set openai) or OPENAI_API_KEY.")  # fmt: skip
    changes["endpoint"] = remember_key(url, str(key).strip())


def _env_key(name: str, path: Path_, doc: Doc) -> str:
    """The key of ``apiKeyEnvar: NAME``: the environment variable, else the keyring entry
    ``env:NAME``; neither: the file is refused (nothing sent)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        doc.fail(path, f"'{name}' is not an environment variable name.", "Write e.g. apiKeyEnvar: MY_API_KEY.")
    key = (os.environ.get(name) or "").strip()
    if not key and doc.keys is not None:
        try:
            key = (doc.keys(ENV_KEY_PREFIX + name) or "").strip()
        except AppError:  # no keyring (or a locked one): as if nothing were stored
            key = ""
    if not key:
        doc.fail(path, f"the environment variable {name} is not set and the keyring has no {ENV_KEY_PREFIX}{name} key.",
                 f"Store the key with: python -m app keys set {ENV_KEY_PREFIX}{name} (it is read from stdin), "
                 f"or export {name}=...")  # fmt: skip
    return key


def assertions(value: Any, path: Path_, doc: Doc) -> tuple[Assertion, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        doc.fail(path, "must be a list of assertions.", "Write assert: [{type: contains, value: Paris}].")
    return tuple(_assertion(item, (*path, i), doc) for i, item in enumerate(value))


def _assertion(item: Any, path: Path_, doc: Doc) -> Assertion:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        doc.fail(path, "an assertion is a mapping with a type.", "Write {type: contains, value: Paris}.")
    kind = item["type"].strip()
    if kind.startswith("not-") and kind[4:] in NO_NOT:
        doc.fail((*path, "type"), f"{kind[4:]} has no not- form (promptfoo does not negate it).",
                 "Remove the not-." + (" Check the calls with not-tool-call-f1." if "tool" in kind else ""))  # fmt: skip
    if not known_type(kind):
        doc.fail((*path, "type"), f"'{kind}' is not an assertion type this app checks.",
                 "Use one of " + ", ".join(ASSERT_TYPES) + ", or not- before any of them.")  # fmt: skip
    for key in item:
        if key not in ASSERT_KEYS:
            doc.warn((*path, key), f"ignored (an assertion takes {', '.join(ASSERT_KEYS)}).")
    base = kind[4:] if kind.startswith("not-") else kind
    value, threshold = item.get("value"), item.get("threshold")
    if threshold is not None:
        threshold = float(_number(threshold, (*path, "threshold"), doc))
    extra = _scoring(item, path, doc)
    if base in ("javascript", "python"):
        if not isinstance(value, str) or not value.strip():
            doc.fail((*path, "value"), f"{kind} needs code (an expression, a function body or file://script).",
                     "Write {type: javascript, value: \"output.includes('Paris')\"}.")  # fmt: skip
        value = script_value(value, (".py",) if base == "python" else (".js", ".cjs", ".mjs"), (*path, "value"), doc)
    elif base in ("perplexity", "perplexity-score"):
        if value is not None:
            doc.warn((*path, "value"), "ignored (give the limit as threshold).")
            value = None
    elif base == "similar":
        if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
            value = [str(v) for v in value]
        elif not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
            doc.fail((*path, "value"), "similar needs the expected text (or a list of texts).",
                     "Write {type: similar, value: The capital is Paris, threshold: 0.8}.")  # fmt: skip
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            doc.fail((*path, "threshold"), f"must be from -1 to 1 (got {threshold:g}).", "The default is 0.75.")
    elif base in ("cost", "latency"):
        if threshold is None and value is not None:
            threshold, value = float(_number(value, (*path, "value"), doc)), None
        if threshold is None or threshold < 0:
            doc.fail(path, f"{kind} needs a threshold (the maximum {'USD' if base == 'cost' else 'milliseconds'}).",
                     f"Write {{type: {kind}, threshold: {'0.01' if base == 'cost' else '2000'}}}.")  # fmt: skip
    elif base in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not value or not all(isinstance(v, str | int | float) for v in value):
            doc.fail((*path, "value"), f"{kind} needs a list of texts.", "Write value: [Paris, paris].")
        value = [str(v) for v in value]
    elif base in ("is-json", "contains-json"):
        if value is not None and value != "":
            value = read_json_schema(value, (*path, "value"), doc)
        else:
            value = None
    elif base == "is-valid-openai-tools-call":
        if value is not None:
            doc.warn((*path, "value"), "ignored (the calls are checked against the provider's config.tools).")
            value = None
    elif base == "tool-call-f1":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            doc.fail((*path, "value"), f"{kind} needs the list of function names the model should call.",
                     "Write {type: tool-call-f1, value: [get_weather, get_time]}.")  # fmt: skip
        value = [v.strip() for v in value]
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            doc.fail((*path, "threshold"), f"must be from 0 to 1 (got {threshold:g}).", "The default, 1, needs every name.")
    elif base == "levenshtein":
        if value is None:
            doc.fail(path, "levenshtein needs a value (the expected text).", "Write {type: levenshtein, value: Paris, threshold: 2}.")
        threshold = DEFAULT_LEVENSHTEIN if threshold is None else threshold
    else:
        if value is None or (isinstance(value, dict | list) and base != "equals"):
            doc.fail(path, f"{kind} needs a value (text).", f"Write {{type: {kind}, value: ...}}.")
        if base == "regex" and (problem := regex_problem(str(value))) is not None:
            doc.fail((*path, "value"), f"not a valid JavaScript regular expression: {problem}.",
                     "Fix the pattern (promptfoo's regex is JavaScript's RegExp, without flags).")  # fmt: skip
        if base != "equals" or not isinstance(value, str):
            value = str(value) if not isinstance(value, str) else value
    grader = item.get("provider")
    if grader is not None and not isinstance(grader, str):
        grader = grader.get("id") if isinstance(grader, dict) else None
    return Assertion(kind, value, threshold, grader, **extra)


ASSERT_KEYS = ("type", "value", "threshold", "provider", "weight", "metric", "transform")


def _scoring(item: dict[str, Any], path: Path_, doc: Doc) -> dict[str, Any]:
    """An assertion's ``weight``, ``metric`` and ``transform``."""
    out: dict[str, Any] = {}
    if item.get("weight") is not None:
        weight = float(_number(item["weight"], (*path, "weight"), doc))
        if weight < 0:
            doc.fail((*path, "weight"), f"must be 0 or more (got {weight:g}).", "The default is 1.")
        out["weight"] = weight
    if item.get("metric") is not None:
        if not isinstance(item["metric"], str) or not item["metric"].strip():
            doc.fail((*path, "metric"), "must be a name (text).", "Write metric: accuracy.")
        out["metric"] = item["metric"].strip()
    if item.get("transform") is not None:
        out["transform"] = transform_value(item["transform"], (*path, "transform"), doc)
    return out


def script_value(value: str, suffixes: tuple[str, ...], path: Path_, doc: Doc) -> str:
    """Inline code as it is; ``file://script[:function]`` with the path made absolute (it
    must exist and end in one of ``suffixes``)."""
    if not value.startswith("file://") or doc.base_dir is None:
        return value  # a stored run's paths are absolute already; a file gone since fails its check then
    from app.core.grid.assert_scripts import split_file_ref

    ref, function = split_file_ref(value.removeprefix("file://"))
    if not ref.endswith(suffixes):
        doc.fail(path, f"'{ref}' is not a {' or '.join(suffixes)} file.", "Point file:// at a script of that language.")
    target = doc.file(path, ref).resolve()
    return f"file://{target}" + (f":{function}" if function else "")


def transform_value(value: Any, path: Path_, doc: Doc) -> str:
    """A ``transform``: inline JavaScript, or ``file://x.js`` / ``file://x.py`` (made absolute)."""
    if not isinstance(value, str) or not value.strip():
        doc.fail(path, "a transform is JavaScript code or file://script.js / file://script.py.",
                 "Write transform: output.trim().")  # fmt: skip
    return script_value(value.strip(), (".js", ".cjs", ".mjs", ".py"), path, doc)


def case_scoring(item: dict[str, Any], path: Path_, doc: Doc) -> dict[str, Any]:
    """A test's (or defaultTest's) ``threshold`` and ``options.transform`` as TestCase fields."""
    out: dict[str, Any] = {}
    if item.get("threshold") is not None:
        out["threshold"] = float(_number(item["threshold"], (*path, "threshold"), doc))
    options = item.get("options")
    if isinstance(options, dict) and options.get("transform") is not None:
        out["transform"] = transform_value(options["transform"], (*path, "options", "transform"), doc)
    return out


def derived_metrics(value: Any, doc: Doc) -> tuple[tuple[str, str], ...]:
    """``derivedMetrics: [{name, value}]`` (each value checked as arithmetic)."""
    from app.core.grid.scoring import check_expression

    if value is None:
        return ()
    if not isinstance(value, list):
        doc.fail(("derivedMetrics",), "must be a list of {name, value}.", "Write derivedMetrics: [{name: f1, value: 2 * p * r / (p + r)}].")
    out: list[tuple[str, str]] = []
    for i, entry in enumerate(value):
        at: Path_ = ("derivedMetrics", i)
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("value"), str):
            doc.fail(at, "a derived metric is {name, value} with value an expression over named scores.",
                     "Write {name: f1, value: 2 * precision * recall / (precision + recall)}.")  # fmt: skip
        try:
            check_expression(entry["value"])
        except AppError as exc:
            doc.fail((*at, "value"), f"{exc.message}.", "Use numbers, metric names, + - * / % ** and min, max, abs, sqrt, log, exp, round.")
        out.append((entry["name"], entry["value"]))
    return tuple(out)
