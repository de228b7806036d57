"""Constrained decoding of in-process models with llguidance: an answer that must follow a
JSON Schema (or be any JSON object), and tool calls that must be valid calls of an offered
tool in the template's own syntax.

:func:`plan_for` reads a request (tools, ``tool_choice``, ``response_schema``) against the
model's chat template and gives a :class:`LocalPlan`: the tools to render, the call syntax to
parse, and the llguidance grammar (None: unconstrained). :class:`Constraint` runs a grammar
as a mask over each step's logits: on the CPU fast path's loop directly, on transformers'
``generate`` through :func:`logits_processor`. Masked tokens get ``-inf`` before sampling
(and before temperature / top-k / top-p), so greedy and sampled decoding both stay inside
the grammar. The token lens records the model's own (unmasked) distribution.

With ``tool_choice`` ``auto`` the model writes freely until it starts a call (``<tool_call>``,
or a ``{`` opening the answer for Llama 3); from there the call is constrained. ``required``
(or a named function) constrains the whole answer to calls. llguidance is imported inside the
functions.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import InvalidParams, ProviderError, ToolSchemaError
from app.core.tools import ResponseSchema, ToolSpec
from app.core.types import GenerationRequest
from app.providers.local_tools import HERMES, ToolSyntax, require_syntax, template_text

JSON_STYLE: dict[str, Any] = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
"""JSON as ``json.dumps`` writes it: no runs of whitespace for a model to get lost in."""
MAX_CALLS = 8
"""Calls in one answer at most (``required``, parallel calls allowed)."""


@dataclass(frozen=True, slots=True)
class LocalPlan:
    """What a request asks of an in-process model beyond plain text."""

    tools: tuple[ToolSpec, ...] = ()
    """Offered through the chat template (empty: none, or ``tool_choice`` ``none``)."""
    syntax: ToolSyntax | None = None
    """How the model writes calls (None: its output is all text)."""
    grammar: str | None = None
    """The llguidance grammar the answer is held to (None: unconstrained)."""


def _json(schema: Any) -> str:
    """A ``%json`` body in JSON_STYLE."""
    body: dict[str, Any] = dict(schema) if isinstance(schema, Mapping) else {"type": "object"}
    own = body.get("x-guidance")
    body["x-guidance"] = {**JSON_STYLE, **(own if isinstance(own, Mapping) else {})}
    return json.dumps(body)


def call_schema(tools: Sequence[ToolSpec], args_key: str) -> dict[str, Any]:
    """A JSON Schema of one valid call of any of ``tools`` (``{"name", args_key}``)."""
    return {"anyOf": [{"type": "object", "additionalProperties": False, "required": ["name", args_key],
                       "properties": {"name": {"const": t.name}, args_key: dict(t.parameters)}} for t in tools]}  # fmt: skip


def _literal(text: str, special: bool) -> str:
    """``text`` in a Lark rule: as a special token (``<tool_call>``) when the tokenizer has it as one."""
    return text if special else json.dumps(text)


def tools_grammar(tools: Sequence[ToolSpec], syntax: ToolSyntax, mode: str, parallel: bool,
                  answer: ResponseSchema | None = None, special: frozenset[str] = frozenset()) -> str:  # fmt: skip
    """The Lark grammar (llguidance's dialect) of an answer with calls of ``tools``.

    ``mode``: ``required`` (only calls) or ``auto`` (text, and calls once one starts; with an
    ``answer`` schema: that JSON answer or calls)."""
    calls = call_schema(tools, syntax.args_key)
    more = MAX_CALLS - 1 if parallel else 0
    several = f' ("\\n" tc){{0,{more}}}' if more else ""
    if syntax.kind == HERMES.kind:
        start, end = syntax.triggers[0], syntax.end
        open_ = _literal(start, start in special)
        close = _literal(end, end in special)
        call = f'{open_} "\\n" %json {_json(calls)} "\\n" {close}'
        if mode == "required":
            return f"%llguidance {{}}\nstart: tc{several}\ntc: {call}\n"
        if answer is not None:
            return f"%llguidance {{}}\nstart: %json {_json(answer.schema)} | tc{several}\ntc: {call}\n"
        if start in special:
            head = f"tag: TEXT {open_}"
        else:
            head = f"tag_trig[lazy]: TEXT {open_}\ntag: tag_trig"
        return (f'%llguidance {{}}\nstart: tag{{0,{more + 1}}} TEXT\nTEXT: /(.|\\n)*/\n'
                f'{head} "\\n" %json {_json(calls)} "\\n" {close}\n')  # fmt: skip
    if mode == "required":
        return f"%llguidance {{}}\nstart: %json {_json(calls)}\n"
    if answer is not None:
        either = {"anyOf": [*calls["anyOf"], dict(answer.schema or {"type": "object"})]}
        return f"%llguidance {{}}\nstart: %json {_json(either)}\n"
    return f"%llguidance {{}}\nstart: TEXT | %json {_json(calls)}\nTEXT: /[^{{](.|\\n)*/\n"


def schema_grammar(schema: ResponseSchema) -> str:
    """The grammar of an answer that follows ``schema`` (any JSON object in JSON mode)."""
    from llguidance import LLMatcher

    return str(LLMatcher.grammar_from_json_schema(dict(schema.schema or {"type": "object"}), overrides=JSON_STYLE))  # type: ignore[arg-type]


def plan_for(request: GenerationRequest, tokenizer: Any) -> LocalPlan:
    """The plan of ``request`` for a model with ``tokenizer`` (raises :class:`InvalidParams`
    when it sends tools to a model whose template has no tool support, or names a function
    it does not offer)."""
    choice = request.tool_choice or "auto"
    tools = request.tools if choice != "none" else ()
    if not tools:
        return LocalPlan(grammar=schema_grammar(request.response_schema) if request.response_schema else None)
    syntax = require_syntax(template_text(tokenizer))
    if choice not in ("auto", "required"):
        tools = tuple(t for t in tools if t.name == choice)
        if not tools:
            raise InvalidParams(f"tool_choice names '{choice}', which is not among the request's tools.",
                                hint="Name one of the offered functions, or use auto / none / required.")  # fmt: skip
    mode = "auto" if choice == "auto" else "required"
    parallel = request.parallel_tool_calls is not False and choice in ("auto", "required")
    special = frozenset(t for t in (*syntax.triggers, syntax.end) if t and _is_special(tokenizer, t))
    return LocalPlan(request.tools, syntax, tools_grammar(tools, syntax, mode, parallel, request.response_schema, special))


def _is_special(tokenizer: Any, text: str) -> bool:
    """True when ``text`` is one added token of ``tokenizer`` (llguidance sees those as special)."""
    added = getattr(tokenizer, "get_added_vocab", None)
    return callable(added) and text in added()


_TOKENIZERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, tuple[int, ...]], Any]] = weakref.WeakKeyDictionary()


def ll_tokenizer(tokenizer: Any, vocab: int, eos_ids: Sequence[int]) -> Any:
    """llguidance's view of ``tokenizer`` (built once per tokenizer: ~1 s for a large vocabulary)."""
    import llguidance.hf

    key = (vocab, tuple(sorted(eos_ids)))
    cache = _TOKENIZERS.setdefault(tokenizer, {})
    if key not in cache:
        try:
            cache[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=max(vocab, len(tokenizer)),
                                                      eos_token=list(key[1]) or None)  # fmt: skip
        except ValueError as exc:
            raise InvalidParams(f"Constrained decoding needs a fast tokenizer: {exc}.",
                                hint="Use a model with a tokenizer.json, or send no schema / tools.") from None  # fmt: skip
    return cache[key]


class Constraint:
    """A grammar held over one generation: :meth:`mask` a step's logits, then :meth:`advance`
    with the token chosen."""

    def __init__(self, tokenizer: Any, grammar: str, vocab: int, eos_ids: Sequence[int]) -> None:
        from llguidance import LLMatcher

        ll = ll_tokenizer(tokenizer, vocab, eos_ids)
        failed, messages = LLMatcher.validate_grammar_with_warnings(grammar, ll)
        if failed:
            raise ToolSchemaError(f"The schema cannot be used to constrain this model: {messages[0][:300]}",
                                  hint="Simplify the JSON Schema (see llguidance's supported keywords).")  # fmt: skip
        self.matcher = LLMatcher(ll, grammar, log_level=0)
        self.size = int(ll.vocab_size)
        self._mask: Any = None

    def start(self, ids: Sequence[int]) -> None:
        """The answer's given start (``GenerationRequest.prefix``) is already written."""
        if ids and not self.matcher.consume_tokens(list(ids)):
            raise InvalidParams("The answer's given start does not fit the schema or tool call format.",
                                hint="Change or remove the start of the answer.")  # fmt: skip

    def mask(self, scores: Any) -> Any:
        """Set the logits of tokens the grammar does not allow next to -inf (in place; 1-D or [1, V])."""
        import torch

        allowed = torch.frombuffer(bytearray(self.matcher.compute_logit_bias()), dtype=torch.uint8)
        if self.matcher.is_error():
            raise ProviderError(f"Constrained decoding failed: {self.matcher.get_error()[:300]}")
        row = scores.view(-1, scores.shape[-1])
        width = min(self.size, row.shape[-1])
        blocked = allowed[:width].eq(0).to(row.device)
        row[:, :width].masked_fill_(blocked, float("-inf"))
        if row.shape[-1] > width:
            row[:, width:] = float("-inf")
        return scores

    def advance(self, token: int) -> None:
        """The token chosen at this step."""
        if not self.matcher.consume_token(int(token)):
            raise ProviderError(f"Constrained decoding failed: {self.matcher.get_error()[:300]}")


def logits_processor(constraint: Constraint, prompt_len: int) -> Any:
    """A transformers logits processor holding ``generate`` to ``constraint`` (it sees each
    chosen token in the next step's ``input_ids``)."""
    from transformers import LogitsProcessor

    class _Grammar(LogitsProcessor):
        def __init__(self) -> None:
            self.seen = prompt_len

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for token in input_ids[0, self.seen :].tolist():
                constraint.advance(token)
            self.seen = int(input_ids.shape[1])
            return constraint.mask(scores)

    return _Grammar()
