"""Get code: a standalone program that sends the same request as the app.

- :func:`openai_python`: Python with the ``openai`` SDK (OpenAI and any compatible server);
- :func:`curl_program`: a shell script with ``curl`` (the same JSON body);
- :func:`transformers_python`: Python with transformers + peft for in-process models, with
  the same adapters and scales (combined as the app combines them), parameters and seed.

The key is read from an environment variable in the program, never written into it. The
HTTP body is the app's own (the OpenAI provider's ``build_body``): see :func:`http_target`.
"""

from __future__ import annotations

import json
import pprint
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from app.core.errors import InvalidParams
from app.core.types import AdapterSpec, GenerationParams, GenerationRequest
from app.core.url_keys import url_key

if TYPE_CHECKING:
    from app.core.services import Services
    from app.core.settings import EndpointConfig

Language = Literal["python", "curl", "transformers"]
LANGUAGES: tuple[str, ...] = ("python", "curl", "transformers")


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """Where and what an OpenAI-compatible request sends. ``key_env`` names the environment
    variable holding the key (None: the endpoint needs none)."""

    base_url: str
    key_env: str | None
    body: dict[str, Any]
    title: str
    key_param: str | None = None
    """The query parameter the key goes in (a key written as ``?api_key=`` into the base
    URL); None: it goes in the Authorization header."""


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """How an in-process model is loaded: a folder or Hub id (``gguf_file`` for a .gguf in
    that folder), its dtype and device as the settings name them (``auto``: chosen at run
    time the way the app chooses)."""

    location: str
    gguf_file: str | None
    dtype: str
    device: str
    title: str


def key_env_for(endpoint: EndpointConfig) -> str | None:
    """The environment variable a program reads the endpoint's key from."""
    if endpoint.kind == "openai":
        return "OPENAI_API_KEY"
    if not endpoint.needs_key:
        return None
    return re.sub(r"[^A-Z0-9]+", "_", endpoint.name.upper()).strip("_") + "_API_KEY"


def http_target(services: Services, request: GenerationRequest) -> HttpTarget:
    """The app's own request body for ``request`` (an ``openai:`` model) and its endpoint."""
    endpoint = services.settings.resolve_endpoint(request.endpoint)
    body = dict(services.openai().build_body(request, endpoint))
    if endpoint.send_stream_options:
        body["stream_options"] = {"include_usage": True}
    in_url = url_key(endpoint.base_url)  # a key that came in the URL: read from the environment too
    key_env = key_env_for(endpoint) or ("OPENAI_API_KEY" if in_url else None)
    key_param = in_url.query[0][0] if in_url and in_url.query and not in_url.bearer else None
    return HttpTarget(endpoint.base_url, key_env, body, f"{request.model} at {endpoint.base_url}", key_param)


def _split(target: HttpTarget) -> tuple[str, list[tuple[str, str]]]:
    """The base URL without its query, and that query's (never secret) parameters."""
    parts = urlsplit(target.base_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), parse_qsl(parts.query, keep_blank_values=True)


def _py(value: Any, indent: int = 4) -> str:
    text = pprint.pformat(value, width=96 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def python_reader(body: dict[str, Any], stubs: Mapping[str, str] | None = None, max_steps: int = 8) -> str:
    """The part of :func:`openai_python` that sends the request and reads the stream: it
    prints the text as it comes and the usage. With ``tools`` in the body it is the app's
    tool loop: each step builds the tool calls from their streamed pieces (by ``index``),
    answers them with the ``stubs`` (function name -> result) as ``tool`` messages and sends
    again, until an answer without calls, a call without a result (printed; the app stops
    there too) or ``max_steps`` requests."""
    if "tools" not in body:
        return """stream = client.chat.completions.create(**request)
usage = None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if getattr(chunk, "usage", None):
        usage = chunk.usage
print()
"""
    return f"""STUBS = {_py(dict(stubs or {}), 0)}  # results for the calls, by function name
MAX_STEPS = {max_steps}  # the app's max_tool_steps
messages = request.pop("messages")
usage = None
for step in range(1, MAX_STEPS + 1):
    stream = client.chat.completions.create(messages=messages, **request)
    text = ""
    tool_calls = {{}}  # index -> {{"id", "name", "arguments"}}: the calls, built from their streamed pieces
    for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None and delta.content:
            text += delta.content
            print(delta.content, end="", flush=True)
        for piece in (delta.tool_calls or []) if delta is not None else []:
            call = tool_calls.setdefault(piece.index, {{"id": "", "name": "", "arguments": ""}})
            call["id"] = piece.id or call["id"]
            if piece.function is not None:
                call["name"] = piece.function.name or call["name"]
                call["arguments"] += piece.function.arguments or ""
        if getattr(chunk, "usage", None):
            usage = chunk.usage
    print()
    calls = [tool_calls[index] for index in sorted(tool_calls)]
    if not calls:  # the answer
        break
    for call in calls:
        print(f"tool call {{call['id']}}: {{call['name']}}({{call['arguments']}})")
    missing = [call["name"] for call in calls if call["name"] not in STUBS]
    if missing:  # the app stops here too (finish_reason "tool_calls")
        print(f"no result for {{', '.join(missing)}}: stopped")
        break
    if step == MAX_STEPS:
        print(f"stopped after {{MAX_STEPS}} steps (max_tool_steps)")
        break
    messages = messages + [{{"role": "assistant", "content": text or None, "tool_calls": [
        {{"id": c["id"], "type": "function", "function": {{"name": c["name"], "arguments": c["arguments"]}}}}
        for c in calls]}}]
    for call in calls:  # each result goes back as a "tool" message with the call's id
        messages.append({{"role": "tool", "tool_call_id": call["id"], "content": STUBS[call["name"]]}})
"""


def openai_python(target: HttpTarget, stubs: Mapping[str, str] | None = None, max_steps: int = 8) -> str:
    """A Python program that streams the answer with the openai SDK (the request's tools,
    tool choice and response format included: they are in the body; with tools, the tool
    loop answering the calls with ``stubs``, see :func:`python_reader`)."""
    body = dict(target.body)
    args = "".join(f"    {k!r}: {_py(v)},\n" for k, v in body.items())
    key = f'os.environ["{target.key_env}"]' if target.key_env else 'os.environ.get("OPENAI_API_KEY", "not-needed")'
    note = "" if target.key_env else "# this endpoint needs no key (the SDK wants one, any text will do)\n"
    run = f"{target.key_env}=... python3 this_file.py" if target.key_env else "python3 this_file.py"
    base, plain = _split(target)
    query = [f"{n!r}: {v!r}" for n, v in plain]
    if target.key_param:  # the key goes in the query, as the base URL had it
        query.append(f"{target.key_param!r}: {key}")
        key = '"not-needed"'
    extra = f", default_query={{{', '.join(query)}}}" if query else ""
    return f'''#!/usr/bin/env python3
"""The same request as LLM Playground sent: {target.title}.

Run: {run}   (needs: pip install openai)
"""
import os

from openai import OpenAI

{note}client = OpenAI(base_url={base!r}, api_key={key}{extra})
request = {{
{args}}}
{python_reader(body, stubs, max_steps)}if usage is not None:
    print(f"[{{usage.prompt_tokens}} prompt + {{usage.completion_tokens}} completion tokens]")
'''


def curl_program(target: HttpTarget) -> str:
    """A shell script that streams the answer with curl (the same JSON body)."""
    body = dict(target.body)
    extra = body.pop("extra_body", None) or {}
    body.update(extra)  # the SDK merges extra_body into the JSON body; so does curl here
    auth = f'  -H "Authorization: Bearer ${target.key_env}" \\\n' if target.key_env and not target.key_param else ""
    run = f"{target.key_env}=... sh this_file.sh" if target.key_env else "sh this_file.sh"
    base, plain = _split(target)
    url = re.sub(r'([$`"\\])', r"\\\1", f"{base}/chat/completions" + (f"?{urlencode(plain)}" if plain else ""))
    if target.key_param:  # the key goes in the query, as the base URL had it
        url += f"{'&' if plain else '?'}{quote(target.key_param)}=${{{target.key_env}}}"
    calls = ("# A tool call streams in choices[0].delta.tool_calls pieces (by index). This is the first request\n"
             "# of the tool loop: the next one adds the assistant message with the calls and one \"tool\" message\n"
             "# per result (with its tool_call_id), as python -m app ask --show-code python writes it.\n"
             if "tools" in body else "")  # fmt: skip
    return f"""#!/bin/sh
# The same request as LLM Playground sent: {target.title}.
# Run: {run}   (the answer streams as server-sent events)
{calls}curl -sS -N "{url}" \\
  -H "Content-Type: application/json" \\
{auth}  -d @- <<'JSON'
{json.dumps(body, indent=2, ensure_ascii=False)}
JSON
"""


def _generate_kwargs(params: GenerationParams) -> dict[str, Any]:
    """The ``generate`` options the app's local generation uses for ``params``."""
    return {"max_new_tokens": params.max_tokens or 512, **params.sampling_kwargs()}


def _adapter_code(adapters: Sequence[AdapterSpec]) -> str:
    if not adapters:
        return ""
    names = [f"a{i}" for i in range(len(adapters))]
    lines = ["from peft import PeftModel", "from peft.tuners.lora import LoraLayer", ""]
    for i, (name, spec) in enumerate(zip(names, adapters, strict=True)):
        if i == 0:
            lines.append(f"model = PeftModel.from_pretrained(model, {spec.path!r}, adapter_name={name!r})")
        else:
            lines.append(f"model.load_adapter({spec.path!r}, adapter_name={name!r})")
    if len(adapters) == 1:
        lines += ["# the adapter's scale multiplies its LoRA scaling",
                  "for module in model.modules():",
                  f"    if isinstance(module, LoraLayer) and {names[0]!r} in module.scaling:",
                  f"        module.scaling[{names[0]!r}] *= {adapters[0].scale!r}"]  # fmt: skip
    else:
        weights = [a.scale for a in adapters]
        lines += ["# several adapters: one weighted combination ('cat' is exact for any ranks)",
                  f'model.add_weighted_adapter({names!r}, {weights!r}, "combined", combination_type="cat")',
                  "for module in model.modules():",
                  '    if isinstance(module, LoraLayer) and "combined" in module.scaling:',
                  '        module.scaling["combined"] = 1.0',
                  'model.base_model.set_adapter("combined")']  # fmt: skip
    return "\n".join(lines) + "\n"


def _device_code(target: LocalTarget) -> str:
    if target.device == "auto":
        device = ('DEVICE = "cuda" if torch.cuda.is_available() else '
                  '("mps" if torch.backends.mps.is_available() else "cpu")')  # fmt: skip
    else:
        device = f"DEVICE = {target.device!r}"
    if target.dtype in ("auto", "int8", "int4", "int4-qkv8"):
        # on the CPU the app runs its own weight-only int8/int4 kernels (the fast path); this
        # program runs the plain bf16 weights, so a greedy answer can differ in a few tokens
        dtype = ("# The app itself runs int8/int4 weight-only kernels on the CPU; plain bf16 here.\n"
                 'DTYPE = {"cuda": torch.bfloat16, "mps": torch.float16}.get(DEVICE, torch.bfloat16)')  # fmt: skip
    else:
        dtype = f"DTYPE = torch.{target.dtype}"
    return f"{device}\n{dtype}"


def transformers_python(target: LocalTarget, request: GenerationRequest) -> str:
    """A Python program that generates the same answer in-process with transformers (+ peft)."""
    params = request.params
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    gguf = f", gguf_file={target.gguf_file!r}" if target.gguf_file else ""
    seed = f"torch.manual_seed({params.seed})\n" if params.seed is not None else ""
    stops = list(params.stop)
    adapter_note = ", ".join(a.label for a in request.adapters) or "none"
    return f'''#!/usr/bin/env python3
"""The same generation as LLM Playground ran: {target.title} (adapters: {adapter_note}).

Run: python3 this_file.py   (needs: pip install torch transformers peft{" gguf" if target.gguf_file else ""})
"""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL = {target.location!r}
messages = {_py(messages, 0)}
STOP = {stops!r}

{_device_code(target)}
tokenizer = AutoTokenizer.from_pretrained(MODEL{gguf})
model = AutoModelForCausalLM.from_pretrained(MODEL{gguf}, dtype=DTYPE).to(DEVICE)
{_adapter_code(request.adapters)}model.eval()

if tokenizer.chat_template:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
else:  # no chat template: the app's plain layout
    text = "".join(f"{{m['role']}}: {{m['content']}}\\n" for m in messages) + "assistant:"
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
input_ids = torch.tensor([list(ids)], dtype=torch.long, device=DEVICE)
pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
{seed}with torch.inference_mode():
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pad_token_id=pad,
                         **{_py(_generate_kwargs(params), 25)})
answer = tokenizer.decode(out[0, input_ids.shape[1]:].tolist(), skip_special_tokens=True)
for stop in STOP:  # the app ends the answer at the first stop sequence
    if stop in answer:
        answer = answer[: answer.index(stop)]
print(answer)
'''


def program(language: str, request: GenerationRequest, *, http: HttpTarget | None = None,
            local: LocalTarget | None = None, stubs: Mapping[str, str] | None = None,
            max_steps: int = 8) -> str:  # fmt: skip
    """The program in ``language`` for ``request`` (raises InvalidParams when that language
    does not fit the model: curl needs an HTTP server, transformers an in-process model);
    ``stubs`` and ``max_steps``: the tool loop's results and limit (python)."""
    if language not in LANGUAGES:
        raise InvalidParams(f"There is no code for '{language}'.", hint="Use python, curl or transformers.")
    if not (request.model.in_process or request.model.caps.endpoints):
        raise InvalidParams(f"The {request.model.provider} provider runs inside the app, so there is no program for it.",
                            hint="Pick an OpenAI-compatible or an in-process model.")  # fmt: skip
    if request.model.in_process:
        if language == "curl" or local is None:
            raise InvalidParams(f"{request.model} runs in-process (no HTTP server), so there is no curl command.",
                                hint="Use --show-code transformers (or python) for this model.")  # fmt: skip
        return transformers_python(local, request)
    if language == "transformers" or http is None:
        raise InvalidParams(f"{request.model} is served over HTTP, not in-process.",
                            hint="Use --show-code python or curl for this model.")  # fmt: skip
    return curl_program(http) if language == "curl" else openai_python(http, stubs, max_steps)


__all__ = ["HttpTarget", "LANGUAGES", "LocalTarget", "curl_program", "http_target", "key_env_for",
           "openai_python", "program", "python_reader", "transformers_python"]
