"""The grid's value types: prompts, variants (the columns), test cases with their assertions
(the rows) and the whole :class:`GridConfig`, in promptfoo's vocabulary.

``GridConfig.to_dict()`` gives the promptfoo-shaped data that grid files hold (and that the
run store keeps as a run's full configuration); :mod:`app.core.grid.config` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.core.errors import AppError, InvalidParams
from app.core.grid import limits
from app.core.grid.prompts import chat_messages
from app.core.grid.templates import Rendered, render_template, render_value, template_names
from app.core.grid.tool_config import tool_config
from app.core.tools import ResponseSchema, ToolSpec
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef
from app.core.url_keys import accept_endpoint
from app.core.urls import clean_url

ASSERT_TYPES: tuple[str, ...] = (
    "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any", "icontains-all",
    "starts-with", "regex", "is-json", "contains-json", "levenshtein", "cost", "latency", "llm-rubric",
    "is-valid-openai-tools-call", "tool-call-f1", "javascript", "python", "similar", "perplexity",
    "perplexity-score", "finish-reason",
)  # fmt: skip
"""The assertion types (each may also be written with ``not-`` in front, but those in
:data:`NO_NOT`)."""
NO_NOT: frozenset[str] = frozenset({"is-valid-openai-tools-call", "perplexity", "perplexity-score", "finish-reason"})
"""Types without a ``not-`` form (promptfoo does not negate them)."""
DEFAULT_LEVENSHTEIN = 5.0
"""promptfoo's default maximum edit distance for ``levenshtein``."""


class MissingVariables(InvalidParams):
    """A template names variables its test case does not give (``names``). promptfoo renders
    them empty; the grid warns with this message instead of failing."""

    def __init__(self, names: Sequence[str], where: str = "The prompt") -> None:
        self.names = tuple(names)
        listed = ", ".join("{{" + n + "}}" for n in self.names)
        super().__init__(f"{where} uses {listed} but the test case has no such variable (rendered empty).",
                         hint="Add the variable to the case (vars), or fix its name in the prompt.")  # fmt: skip


def var_text(value: Any) -> str:
    """A variable's value as the Workbench shows it (lists and objects as JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def template_vars(template: str) -> list[str]:
    """The variable names a template reads, in order of first use."""
    return template_names(template)


def render(template: str, variables: Mapping[str, Any], *, where: str = "The prompt") -> str:
    """``template`` rendered as promptfoo does (nunjucks semantics: :mod:`app.core.grid.templates`;
    undefined variables render empty); raises InvalidParams for a bad template and LimitError
    past :data:`MAX_PROMPT_CHARS`."""
    return render_template(template, variables, where=where).text


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
    weight: float = 1.0
    """Its share of the test's score (promptfoo's weighted mean; 0: counted for pass/fail only)."""
    metric: str | None = None
    """A named score this assertion feeds (a column of its own in the results)."""
    transform: str | None = None
    """JavaScript (or ``file://x.js`` / ``file://x.py``) applied to the output for this check only."""

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
        if self.weight != 1.0:
            out["weight"] = self.weight
        if self.metric:
            out["metric"] = self.metric
        if self.transform:
            out["transform"] = self.transform
        return out


@dataclass(frozen=True, slots=True)
class TestCase:
    """One row's variables and assertions, and its ``options`` (a grader, a
    ``response_format``, a prefix and suffix for the prompt)."""

    __test__ = False  # not a pytest class

    vars: Mapping[str, Any] = field(default_factory=dict)
    asserts: tuple[Assertion, ...] = ()
    description: str = ""
    threshold: float | None = None
    """The weighted score the test needs (then it decides pass/fail, not each assertion)."""
    transform: str | None = None
    """``options.transform``: applied to the output before the assertions."""
    provider: Variant | None = None
    """``options.provider``: the grader of this test's model-graded assertions."""
    response_schema: ResponseSchema | None = None
    has_response_format: bool = False
    """True when ``options.response_format`` is given (``response_schema`` None: text)."""
    prefix: str = ""
    suffix: str = ""
    store_output_as: str = ""
    """``options.storeOutputAs``: later tests of the same prompt and provider get the answer as this variable."""
    conversation: str = ""
    """Which conversation the test's ``_conversation`` follows (a scenario's own; "" the grid's)."""

    def with_(self, **changes: Any) -> TestCase:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """As a grid file holds it."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["vars"] = dict(self.vars)
        if self.asserts:
            out["assert"] = [a.to_dict() for a in self.asserts]
        if self.threshold is not None:
            out["threshold"] = self.threshold
        options: dict[str, Any] = {}
        if self.transform:
            options["transform"] = self.transform
        if self.provider is not None:
            options["provider"] = self.provider.to_dict()
        if self.has_response_format:
            options["response_format"] = (self.response_schema.to_openai() if self.response_schema is not None
                                          else {"type": "text"})  # fmt: skip
        for name, key in (("prefix", "prefix"), ("suffix", "suffix"), ("store_output_as", "storeOutputAs")):
            if getattr(self, name):
                options[key] = getattr(self, name)
        if options:
            out["options"] = options
        if self.conversation:
            out["metadata"] = {"conversationId": self.conversation}
        return out


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt template. When the rendered text is a JSON list of ``{role, content}`` it is
    sent as those chat messages (promptfoo's chat prompts)."""

    template: str
    label: str = ""
    response_schema: ResponseSchema | None = None
    has_response_format: bool = False
    """True when the prompt's ``config.response_format`` is given (``response_schema`` None:
    text); it replaces the provider's, and a test's own replaces it (promptfoo's merge)."""

    def to_dict(self) -> str | dict[str, Any]:
        """A plain string, or ``{raw, label, config}``."""
        if not self.label and not self.has_response_format:
            return self.template
        out: dict[str, Any] = {"raw": self.template}
        if self.label:
            out["label"] = self.label
        if self.has_response_format:
            out["config"] = {"response_format": self.response_schema.to_openai() if self.response_schema is not None
                             else {"type": "text"}}  # fmt: skip
        return out

    def render(self, variables: Mapping[str, Any]) -> Rendered:
        """The prompt's text for ``variables``, as promptfoo renders it: a template that is
        JSON has the strings inside it rendered (then written back as JSON, indented 2), any
        other is rendered whole."""
        stripped = self.template.strip()
        if stripped[:1] in ("[", "{"):
            try:
                data = json.loads(stripped)
            except ValueError:
                data = None
            if isinstance(data, list | dict):
                value, undefined = render_value(data, variables)
                text = json.dumps(value, indent=2, ensure_ascii=False)
                if len(text) > limits.MAX_PROMPT_CHARS:
                    return render_template(text, {})  # raises the limit's error
                return Rendered(text, undefined)
        return render_template(self.template, variables)

    def messages(self, variables: Mapping[str, Any]) -> list[ChatMessage]:
        """The chat messages of this prompt for ``variables``."""
        return chat_messages(self.render(variables).text)


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
    prompts: tuple[str, ...] = ()
    """promptfoo's ``providers[].prompts``: the labels of the prompts this variant runs (all
    when empty)."""
    unpriced: bool = False
    """True for ``apiBaseUrl`` on a server that is not OpenAI's: its cost is unknown, never $0."""
    transform: str | None = None
    """promptfoo's ``providers[].transform``: applied to this variant's output first, before
    the test's ``options.transform`` and the assertions."""

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
            url = self.endpoint.startswith(("http://", "https://"))
            out[("apiBaseUrl" if self.unpriced else "base_url") if url else "endpoint"] = self.endpoint
        out.update(tool_config(self.tools, self.tool_choice, self.parallel_tool_calls, self.response_schema))
        return out

    def to_dict(self) -> str | dict[str, Any]:
        """The id alone, or ``{id, label, config}``."""
        config = self.config_dict()
        if not config and not self.label and not self.prompts and not self.transform:
            return self.model
        out: dict[str, Any] = {"id": self.model}
        if self.label:
            out["label"] = self.label
        if self.prompts:
            out["prompts"] = list(self.prompts)
        if self.transform:
            out["transform"] = self.transform
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
    repeat: int = 0
    """Which of the ``repeat`` runs of its test this row is (0 for the first)."""

    @property
    def label(self) -> str:
        """``test 2`` or its description (``· run 3`` for a repeated run)."""
        name = self.test.description or (f"test {self.test_index + 1}" if self.test_index is not None else "prompt")
        return name + (f" · run {self.repeat + 1}" if self.repeat else "")


def _metric_rendered(a: Assertion, variables: Mapping[str, Any]) -> Assertion:
    """``a`` with its ``metric`` name rendered with the test's vars (``metric: "{{topic}}"``), as
    promptfoo does; a name that fails to render stays as written, as there."""
    if not a.metric or "{" not in a.metric:
        return a
    try:
        return replace(a, metric=render_template(a.metric, variables, where="A metric name").text)
    except AppError:
        return a


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
    repeat: int = 1
    """How many times each cell is sent (promptfoo's ``evaluateOptions.repeat``)."""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """What the parser ignored (unknown keys...), as sentences."""
    default_transform: str | None = None
    """``defaultTest.options.transform`` (a test's own transform replaces it)."""
    derived_metrics: tuple[tuple[str, str], ...] = ()
    """``derivedMetrics``: (name, arithmetic over the named scores) per column."""

    def rows(self) -> list[Row]:
        """Every (prompt, test) pair; a grid without tests has one row per prompt."""
        tests: list[tuple[int | None, TestCase]] = list(enumerate(self.tests)) or [(None, TestCase())]
        out: list[Row] = []
        for p_index, prompt in enumerate(self.prompts):
            for t_index, test in tests:
                variables = {**dict(self.default_vars), **dict(test.vars)}
                shown = replace(prompt, template=test.prefix + prompt.template + test.suffix) if test.prefix or test.suffix else prompt
                asserts = tuple(_metric_rendered(a, variables) for a in (*self.default_asserts, *test.asserts))
                for r in range(max(1, self.repeat)):
                    out.append(Row(len(out), p_index, t_index, shown, test, asserts, variables, r))
        return out

    def with_(self, **changes: Any) -> GridConfig:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def sequential(self) -> bool:
        """True when tests depend on earlier answers (``_conversation``, ``storeOutputAs``):
        each prompt and provider then runs its tests one after another, in order."""
        return any("_conversation" in p.template for p in self.prompts) or any(t.store_output_as for t in self.tests)

    def uses_rubric(self) -> bool:
        """True when an llm-rubric assertion has no grader of its own (so it needs
        ``defaultTest.options.provider``)."""
        def ungraded(asserts: Sequence[Assertion]) -> bool:
            return any(a.base == "llm-rubric" and not a.provider for a in asserts)

        return any(t.provider is None and ungraded((*self.default_asserts, *t.asserts)) for t in self.tests or (TestCase(),))

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
        if self.default_transform:
            default.setdefault("options", {})["transform"] = self.default_transform
        if default:
            out["defaultTest"] = default
        out["tests"] = [t.to_dict() for t in self.tests]
        if self.derived_metrics:
            out["derivedMetrics"] = [{"name": n, "value": v} for n, v in self.derived_metrics]
        if self.repeat > 1:
            out["evaluateOptions"] = {"repeat": self.repeat}
        return out
