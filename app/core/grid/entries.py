"""Reading the entries of a grid file: providers (model ids, ``{id, label, config}``) and
assertions, each checked with the line and key of any error."""

from __future__ import annotations

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
from app.core.grid.tool_config import (
    TOOL_KEYS,
    read_json_schema,
    read_response_format,
    read_tool_choice,
    read_tools,
)
from app.core.types import GenerationParams, ModelRef
from app.core.url_keys import accept_endpoint

CONFIG_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop", "system", "adapters", "endpoint", "base_url",
               "apiBaseUrl", *TOOL_KEYS)  # fmt: skip


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
        elif key in ("apiKey", "api_key"):
            doc.warn(at, "ignored: keys are never read from files (python -m app keys set ..., or the Keys dialog).")
        elif key != "tool_choice":
            doc.warn(at, f"ignored (config takes {', '.join(CONFIG_KEYS)}).")
    if "tool_choice" in config:  # after the tools it may name
        changes["tool_choice"] = read_tool_choice(config["tool_choice"], changes.get("tools", ()),
                                                  (*path, "tool_choice"), doc)  # fmt: skip
    variant = variant.with_(**changes)
    try:
        GenerationParams(temperature=variant.temperature if variant.temperature is not None else 0.7,
                         top_p=variant.top_p if variant.top_p is not None else 1.0,
                         max_tokens=variant.max_tokens, seed=variant.seed, stop=variant.stop).validated()  # fmt: skip
    except AppError as exc:
        bad = next((k for k in ("temperature", "top_p", "max_tokens", "seed", "stop") if exc.message.startswith(k)), None)
        doc.fail((*path, bad) if bad else path, exc.message, "Fix the value in the file.")
    return variant


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
                 "Remove the not-, or check the calls with not-tool-call-f1.")  # fmt: skip
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
