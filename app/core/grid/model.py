"""The grid's value types: prompts, variants (the columns), test cases with their assertions
(the rows) and the whole :class:`GridConfig`, in promptfoo's vocabulary.

``GridConfig.to_dict()`` gives the promptfoo-shaped data that grid files hold (and that the
run store keeps as a run's full configuration); :mod:`app.core.grid.config` reads it back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.core.errors import AppError, InvalidParams
from app.core.grid.limits import MAX_PROMPT_CHARS, LimitError
from app.core.grid.tool_config import tool_config
from app.core.tools import ResponseSchema, ToolSpec
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.core.url_keys import accept_endpoint
from app.core.urls import clean_url

ASSERT_TYPES: tuple[str, ...] = (
    "equals", "contains", "icontains", "contains-any", "contains-all", "starts-with", "regex",
    "is-json", "contains-json", "levenshtein", "cost", "latency", "llm-rubric", "is-valid-openai-tools-call",
    "tool-call-f1",
)  # fmt: skip
"""The assertion types (each may also be written with ``not-`` in front, but those in
:data:`NO_NOT`)."""
NO_NOT: frozenset[str] = frozenset({"is-valid-openai-tools-call"})
"""Types without a ``not-`` form (promptfoo does not negate them)."""
DEFAULT_LEVENSHTEIN = 5.0
"""promptfoo's default maximum edit distance for ``levenshtein``."""
_VAR = re.compile(r"\{\{\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*\}\}")


class MissingVariables(InvalidParams):
    """A template names variables its test case does not give (``names``)."""

    def __init__(self, names: Sequence[str], where: str = "The prompt") -> None:
        self.names = tuple(names)
        listed = ", ".join("{{" + n + "}}" for n in self.names)
        super().__init__(f"{where} uses {listed} but the test case has no such variable.",
                         hint="Add the variable to the case (vars), or fix its name in the prompt.")  # fmt: skip


def _lookup(data: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    value: Any = data
    for part in dotted.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def var_text(value: Any) -> str:
    """A variable's value as it is put into a template (lists and objects as JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def template_vars(template: str) -> list[str]:
    """The variable names a template uses, in order of first use."""
    seen: dict[str, None] = {}
    for m in _VAR.finditer(template):
        seen.setdefault(m.group(1), None)
    return list(seen)


def _bounded_text(value: Any, room: int) -> str:
    """:func:`var_text` of ``value``, cut once it is longer than ``room`` (a list or object
    that expands past it is never built whole)."""
    if not isinstance(value, list | dict):
        return var_text(value)
    parts: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(ensure_ascii=False).iterencode(value):
        parts.append(chunk)
        size += len(chunk)
        if size > room:
            break
    return "".join(parts)


def render(template: str, variables: Mapping[str, Any], *, where: str = "The prompt") -> str:
    """``template`` with each ``{{name}}`` (or ``{{ name.key }}``) replaced by its value;
    raises :class:`MissingVariables` naming every variable the case lacks, and LimitError
    for a prompt longer than :data:`MAX_PROMPT_CHARS`."""
    missing: list[str] = []
    size = [len(template)]

    def sub(m: re.Match[str]) -> str:
        found, value = _lookup(variables, m.group(1))
        if not found:
            if m.group(1) not in missing:
                missing.append(m.group(1))
            return m.group(0)
        text = _bounded_text(value, MAX_PROMPT_CHARS)
        size[0] += len(text) - len(m.group(0))
        if size[0] > MAX_PROMPT_CHARS:
            raise LimitError(f"{where} is longer than the limit of {MAX_PROMPT_CHARS:,} characters once its "
                             f"variables are filled in.", hint="Use shorter variables.")  # fmt: skip
        return text

    out = _VAR.sub(sub, template)
    if missing:
        raise MissingVariables(missing, where)
    if len(out) > MAX_PROMPT_CHARS:
        raise LimitError(f"{where} is longer than the limit of {MAX_PROMPT_CHARS:,} characters.",
                         hint="Use a shorter prompt.")  # fmt: skip
    return out


def parse_adapter(spec: str) -> AdapterSpec:
    """``PATH[:SCALE]`` (a trailing part that is not a number stays part of the path)."""
    path, sep, scale_text = spec.strip().rpartition(":")
    if sep and path:
        try:
            scale = float(scale_text)
        except ValueError:
            return AdapterSpec(spec.strip())
        if not 0.0 <= scale <= 10.0:
            raise InvalidParams(f"LoRA scale must be between 0 and 10 (got {scale_text}).",
                                hint="Write it as PATH:0.8.")  # fmt: skip
        return AdapterSpec(path, scale=scale)
    return AdapterSpec(spec.strip())


def adapter_text(spec: AdapterSpec) -> str:
    """The ``PATH[:SCALE]`` form of an adapter (scale 1 left out)."""
    return spec.path if spec.scale == 1.0 else f"{spec.path}:{spec.scale:g}"


@dataclass(frozen=True, slots=True)
class Assertion:
    """One check of an answer: ``type`` as written (``not-contains`` too), its ``value``
    (text, a list for contains-any/-all, a rubric for llm-rubric) and ``threshold`` (the
    maximum distance, USD or milliseconds)."""

    type: str
    value: Any = None
    threshold: float | None = None
    provider: str | None = None
    """A grader for this llm-rubric (default: ``defaultTest.options.provider``)."""

    @property
    def negated(self) -> bool:
        """True for the ``not-`` forms."""
        return self.type.startswith("not-")

    @property
    def base(self) -> str:
        """The type without ``not-``."""
        return self.type[4:] if self.negated else self.type

    def to_dict(self) -> dict[str, Any]:
        """As a grid file holds it."""
        out: dict[str, Any] = {"type": self.type}
        if self.value is not None:
            out["value"] = self.value
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.provider:
            out["provider"] = self.provider
        return out


@dataclass(frozen=True, slots=True)
class TestCase:
    """One row's variables and assertions."""

    __test__ = False  # not a pytest class

    vars: Mapping[str, Any] = field(default_factory=dict)
    asserts: tuple[Assertion, ...] = ()
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As a grid file holds it."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["vars"] = dict(self.vars)
        if self.asserts:
            out["assert"] = [a.to_dict() for a in self.asserts]
        return out


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt template. When the rendered text is a JSON list of ``{role, content}`` it is
    sent as those chat messages (promptfoo's chat prompts)."""

    template: str
    label: str = ""

    def to_dict(self) -> str | dict[str, str]:
        """A plain string, or ``{raw, label}``."""
        return {"raw": self.template, "label": self.label} if self.label else self.template

    def messages(self, variables: Mapping[str, Any]) -> list[ChatMessage]:
        """The chat messages of this prompt for ``variables`` (raises MissingVariables)."""
        text = render(self.template, variables)
        stripped = text.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            try:
                data = json.loads(stripped)
            except ValueError:
                data = None
            if isinstance(data, list) and data and all(
                isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
                for m in data
            ):
                return [ChatMessage(m["role"], m["content"]) for m in data]
        return [ChatMessage("user", text)]


@dataclass(frozen=True, slots=True)
class Variant:
    """A column: a model with its endpoint, adapters, parameters, system prompt, tools and
    response schema, under a label. Parameters left None take the app's defaults."""

    model: str
    label: str = ""
    endpoint: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    system: str = ""
    adapters: tuple[AdapterSpec, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    response_schema: ResponseSchema | None = None

    def __post_init__(self) -> None:
        # a base URL's key goes to memory (grid files, the Workbench, stored runs): the
        # stored configuration only ever holds the clean URL; a malformed one fails at run
        try:
            endpoint = accept_endpoint(self.endpoint)
        except AppError:
            endpoint = clean_url(self.endpoint)
        object.__setattr__(self, "endpoint", endpoint)

    @property
    def ref(self) -> ModelRef:
        """The parsed model id (raises InvalidModelId)."""
        return ModelRef.parse(self.model)

    @property
    def title(self) -> str:
        """The label, else the model id with its adapters."""
        if self.label:
            return self.label
        extra = " + " + ", ".join(adapter_text(a) for a in self.adapters) if self.adapters else ""
        return self.model + extra

    def params(self, default_temperature: Callable[[str], float] | None = None) -> GenerationParams:
        """The generation parameters (validated; raises InvalidParams)."""
        base = GenerationParams()
        temperature = self.temperature
        if temperature is None:
            temperature = default_temperature(self.model) if default_temperature else base.temperature
        return GenerationParams(
            temperature=temperature,
            top_p=base.top_p if self.top_p is None else self.top_p,
            max_tokens=base.max_tokens if self.max_tokens is None else self.max_tokens,
            seed=self.seed,
            stop=tuple(self.stop),
        ).validated()

    def request(self, messages: Sequence[ChatMessage],
                default_temperature: Callable[[str], float] | None = None) -> GenerationRequest:  # fmt: skip
        """The request this variant sends for ``messages`` (its system prompt first)."""
        ref = self.ref
        msgs = list(messages)
        if self.system.strip():
            msgs = [ChatMessage("system", self.system), *[m for m in msgs if m.role != "system"]]
        endpoint = self.endpoint if ref.caps.endpoints else None
        adapters = self.adapters if ref.takes_adapters else ()
        return GenerationRequest(ref, tuple(msgs), self.params(default_temperature), endpoint, tuple(adapters),
                                 tools=self.tools, tool_choice=self.tool_choice,
                                 parallel_tool_calls=self.parallel_tool_calls, response_schema=self.response_schema)  # fmt: skip

    def with_(self, **changes: Any) -> Variant:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def config_dict(self) -> dict[str, Any]:
        """The ``config`` part of a grid file's provider entry (only what is set)."""
        out: dict[str, Any] = {}
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.stop:
            out["stop"] = list(self.stop)
        if self.system:
            out["system"] = self.system
        if self.adapters:
            out["adapters"] = [adapter_text(a) for a in self.adapters]
        if self.endpoint:
            out["base_url" if self.endpoint.startswith(("http://", "https://")) else "endpoint"] = self.endpoint
        out.update(tool_config(self.tools, self.tool_choice, self.parallel_tool_calls, self.response_schema))
        return out

    def to_dict(self) -> str | dict[str, Any]:
        """The id alone, or ``{id, label, config}``."""
        config = self.config_dict()
        if not config and not self.label:
            return self.model
        out: dict[str, Any] = {"id": self.model}
        if self.label:
            out["label"] = self.label
        if config:
            out["config"] = config
        return out


@dataclass(frozen=True, slots=True)
class Row:
    """A row of the grid: one prompt with one test case."""

    index: int
    prompt_index: int
    test_index: int | None
    prompt: Prompt
    test: TestCase
    asserts: tuple[Assertion, ...]
    vars: Mapping[str, Any]

    @property
    def label(self) -> str:
        """``test 2`` or its description (with the prompt's label when there are several)."""
        name = self.test.description or (f"test {self.test_index + 1}" if self.test_index is not None else "prompt")
        return name


@dataclass(frozen=True)
class GridConfig:
    """A whole grid: prompts x test cases (rows) against variants (columns)."""

    description: str = ""
    prompts: tuple[Prompt, ...] = ()
    variants: tuple[Variant, ...] = ()
    tests: tuple[TestCase, ...] = ()
    default_vars: Mapping[str, Any] = field(default_factory=dict)
    default_asserts: tuple[Assertion, ...] = ()
    grader: Variant | None = None
    """The model that grades ``llm-rubric`` (``defaultTest.options.provider``)."""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """What the parser ignored (unknown keys...), as sentences."""

    def rows(self) -> list[Row]:
        """Every (prompt, test) pair; a grid without tests has one row per prompt."""
        tests: list[tuple[int | None, TestCase]] = list(enumerate(self.tests)) or [(None, TestCase())]
        out: list[Row] = []
        for p_index, prompt in enumerate(self.prompts):
            for t_index, test in tests:
                variables = {**dict(self.default_vars), **dict(test.vars)}
                out.append(Row(len(out), p_index, t_index, prompt, test,
                               (*self.default_asserts, *test.asserts), variables))  # fmt: skip
        return out

    def with_(self, **changes: Any) -> GridConfig:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def uses_rubric(self) -> bool:
        """True when an llm-rubric assertion has no grader of its own (so it needs
        ``defaultTest.options.provider``)."""
        every = (*self.default_asserts, *(x for t in self.tests for x in t.asserts))
        return any(a.base == "llm-rubric" and not a.provider for a in every)

    def to_dict(self) -> dict[str, Any]:
        """The promptfoo-shaped data of a grid file."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["prompts"] = [p.to_dict() for p in self.prompts]
        out["providers"] = [v.to_dict() for v in self.variants]
        default: dict[str, Any] = {}
        if self.default_vars:
            default["vars"] = dict(self.default_vars)
        if self.default_asserts:
            default["assert"] = [a.to_dict() for a in self.default_asserts]
        if self.grader is not None:
            default["options"] = {"provider": self.grader.to_dict()}
        if default:
            out["defaultTest"] = default
        out["tests"] = [t.to_dict() for t in self.tests]
        return out
