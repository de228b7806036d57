"""Token counts from an OpenAI-compatible server's own tokenizer, for servers that send no
usage (llama-cpp-python and LM Studio never do when streaming).

The server is asked where it can tell, and which way works is remembered per server:

- vLLM: ``POST /tokenize`` with the chat messages (its own template) -> ``count``;
- llama.cpp's ``llama-server``: ``POST /apply-template`` (its own template), then
  ``POST /tokenize`` of that prompt;
- llama-cpp-python: ``POST /extras/tokenize`` of the prompt rendered with the model's chat
  template, read from the GGUF file the server names in ``GET /v1/models`` when that file is
  on this computer (the usual case: a local server); without it, each message's text is
  tokenized by the server and the template's per-message overhead is added.

Otherwise the caller keeps its local estimate (tiktoken plus OpenAI's per-message overhead).
A finish reason of ``length`` means the completion is exactly ``max_tokens`` long. Counts
made here stay labelled "estimated": the server did not report them as usage.

Tools and tool calls: the tools' JSON and the calls in the messages are counted as their
JSON text on top of the messages (:func:`tools_text`); a template renders them its own way,
so such a count is always labelled an estimate.

Plain ``http.client`` with short timeouts (no proxy, no SDK): the calls block, so the
provider runs them in a thread and the window's counter on its worker thread.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from app.core.events import UsageReport
from app.core.settings import EndpointConfig
from app.core.tools import ToolSpec
from app.core.types import ChatMessage, TokenCount
from app.core.url_keys import sdk_base, url_key

log = logging.getLogger(__name__)

VLLM, LLAMACPP, LLAMA_CPP_PYTHON = "vllm", "llama.cpp", "llama-cpp-python"
METHODS = (VLLM, LLAMACPP, LLAMA_CPP_PYTHON)
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 3.0
RETRY_AFTER_S = 30.0
"""After a server could not be reached, ask it again only this much later."""
OVERHEAD_PER_MESSAGE = 4
"""Template tokens around one message when the template is unknown (ChatML: start marker,
role, newline, end marker), plus :data:`REPLY_PRIMING` once."""
REPLY_PRIMING = 3


def tools_text(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> str:
    """The JSON a request carries besides its messages' text: the tools' definitions and the
    assistant messages' tool calls (and the ids tool results answer); "" when none."""
    parts = [json.dumps([t.to_openai() for t in tools], ensure_ascii=False)] if tools else []
    for m in messages:
        if m.tool_calls:
            parts.append(json.dumps([c.to_openai() for c in m.tool_calls], ensure_ascii=False))
        if m.tool_call_id:
            parts.append(m.tool_call_id)
    return "\n".join(parts)


def estimate_prompt(model: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> TokenCount:
    """The local count of a request (tiktoken plus OpenAI's per-message overhead), with the
    tools' and calls' JSON counted as text: then always an estimate."""
    from app.core.tokens import count_chat, count_text

    count = count_chat(model, messages)
    extra = tools_text(messages, tools)
    if not extra:
        return count
    method = count.method if count.method.startswith("estimate") else f"estimate ({count.method})"
    return TokenCount(count.tokens + count_text(model, extra).tokens, exact=False, method=method + ", tools as JSON")


class _Unsupported(Exception):
    """The server does not count this way (404, 405, 501, an answer of another shape)."""


class _Unreachable(Exception):
    """The server did not answer (connection refused, timeout, 5xx): try again later."""


@dataclass(frozen=True)
class _Target:
    root: str
    base: str
    key: str | None
    kind: str
    query: str = ""
    """The base URL's query (its secret parameters included): sent with every request."""


def _roots(base_url: str) -> tuple[str, str]:
    """(server root, API base): ``http://h:8080/v1`` -> (``http://h:8080``, ``http://h:8080/v1``)."""
    base = base_url.rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    return root, base


def _request(method: str, url: str, body: Any, key: str | None, timeout: float, query: str = "") -> Any:
    """One JSON request; the decoded answer. Raises _Unsupported / _Unreachable."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(host, parts.port, timeout=CONNECT_TIMEOUT_S)
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    path = (parts.path or "/") + (f"?{query}" if query else "")
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read(4 << 20)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise _Unreachable(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    if status >= 500 and status not in (501,):
        raise _Unreachable(f"HTTP {status}")
    if status != 200:
        raise _Unsupported(f"HTTP {status}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _Unsupported("not JSON") from exc


def _dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _ids(payload: Any, field: str = "tokens") -> list[Any]:
    if isinstance(payload, dict) and isinstance(payload.get(field), list):
        return list(payload[field])
    raise _Unsupported(f"no '{field}' list in the answer")


class ServerTokenCounter:
    """Counts tokens with a server's own tokenizer; remembers per server which way works."""

    def __init__(self, timeout_s: float = READ_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._methods: dict[str, str | None] = {}
        """server root -> the method that works (None: none does)."""
        self._unreachable_until: dict[str, float] = {}
        self._bos_extra: dict[str, int] = {}
        """llama-cpp-python: tokens its /extras/tokenize adds to any text (a BOS)."""
        self._templates: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what is known
    def method(self, base_url: str) -> str | None:
        """The way ``base_url``'s server counts, None when it cannot (or it is not known yet)."""
        return self._methods.get(_roots(base_url)[0])

    def known(self, base_url: str) -> bool:
        """True once the server was asked (and answered)."""
        return _roots(base_url)[0] in self._methods

    # ------------------------------------------------------------------ counting
    def count_prompt(self, ep: EndpointConfig, key: str | None, model: str, messages: Sequence[ChatMessage],
                     tools: Sequence[ToolSpec] = ()) -> TokenCount | None:  # fmt: skip
        """The prompt as the server's tokenizer and template count it, or None (unknown). The
        tools' and calls' JSON (:func:`tools_text`) is tokenized as text and added: an estimate."""
        target = self._target(ep, key)
        if target is None:
            return None
        method = self._detect(target, model, messages)
        if method is None:
            return None
        extra = tools_text(messages, tools)
        try:
            n, exact = self._prompt(method, target, model, messages)
            if extra:
                n += self._text(method, target, model, extra)
        except (_Unsupported, _Unreachable) as exc:
            log.debug("counting at %s failed: %s", target.root, exc)
            return None
        label = "" if exact else ", template estimated"
        if extra:
            label += ", tools as JSON (estimated)"
        return TokenCount(n, exact=exact and not extra, method=f"server ({method})" + label)

    def count_text(self, ep: EndpointConfig, key: str | None, model: str, text: str) -> int | None:
        """Tokens of plain ``text`` (an answer) by the server's tokenizer, or None."""
        target = self._target(ep, key)
        if target is None:
            return None
        if not text:
            return 0
        method = self._methods.get(target.root)
        if method is None:
            return None
        try:
            return self._text(method, target, model, text)
        except (_Unsupported, _Unreachable) as exc:
            log.debug("counting text at %s failed: %s", target.root, exc)
            return None

    def refine(self, ep: EndpointConfig, key: str | None, model: str, messages: Sequence[ChatMessage],
               text: str, finish: str | None, max_tokens: int | None, report: UsageReport,
               tools: Sequence[ToolSpec] = ()) -> UsageReport:  # fmt: skip
        """A better estimate than ``report`` (a local count): the server's counts where it can
        give them, and exactly ``max_tokens`` when the answer stopped at that length."""
        prompt, completion = report.prompt_tokens, report.completion_tokens
        counted = self.count_prompt(ep, key, model, messages, tools)
        if counted is not None:
            prompt = counted.tokens
        if finish == "length" and max_tokens:
            completion = max_tokens
        else:
            n = self.count_text(ep, key, model, text) if counted is not None else None
            if n is not None:
                completion = n
        return UsageReport(prompt, completion, report.cached_prompt_tokens, estimated=True)

    # ------------------------------------------------------------------ detection
    def _target(self, ep: EndpointConfig, key: str | None) -> _Target | None:
        if ep.kind == "openai" and "api.openai.com" in ep.base_url:  # always reports usage
            return None
        base_url, query = sdk_base(ep.base_url)
        root, base = _roots(base_url)
        if time.monotonic() < self._unreachable_until.get(root, 0.0):
            return None
        return _Target(root, base, key, ep.kind, urlencode(query))

    def _order(self, kind: str) -> tuple[str, ...]:
        first = {"vllm": VLLM, "llamacpp": LLAMACPP}.get(kind)
        rest = tuple(m for m in (LLAMACPP, VLLM, LLAMA_CPP_PYTHON) if m != first)
        return (first, *rest) if first else rest

    def _detect(self, target: _Target, model: str, messages: Sequence[ChatMessage]) -> str | None:
        with self._lock:
            if target.root in self._methods:
                return self._methods[target.root]
        for method in self._order(target.kind):
            try:
                self._probe(method, target, model, messages)
            except _Unsupported:
                continue
            except _Unreachable as exc:
                log.debug("token counting: %s did not answer (%s)", target.root, exc)
                with self._lock:
                    self._unreachable_until[target.root] = time.monotonic() + RETRY_AFTER_S
                return None
            with self._lock:
                self._methods[target.root] = method
            log.info("token counting at %s: %s", target.root, method)
            return method
        with self._lock:
            self._methods[target.root] = None
        return None

    def _probe(self, method: str, target: _Target, model: str, messages: Sequence[ChatMessage]) -> None:
        if method == VLLM:
            answer = _request("POST", f"{target.root}/tokenize",
                              {"model": model, "messages": _dicts(messages), "add_generation_prompt": True},
                              target.key, self.timeout_s, target.query)  # fmt: skip
            if not (isinstance(answer, dict) and isinstance(answer.get("count"), int)):
                raise _Unsupported("no count (not vLLM)")
        elif method == LLAMACPP:
            answer = _request("POST", f"{target.root}/apply-template", {"messages": _dicts(messages)},
                              target.key, self.timeout_s, target.query)  # fmt: skip
            if not (isinstance(answer, dict) and isinstance(answer.get("prompt"), str)):
                raise _Unsupported("no prompt (not llama.cpp)")
        else:
            answer = _request("POST", f"{target.root}/extras/tokenize", {"input": "", "model": model},
                              target.key, self.timeout_s, target.query)  # fmt: skip
            with self._lock:
                self._bos_extra[target.root] = len(_ids(answer))

    # ------------------------------------------------------------------ the three ways
    def _prompt(self, method: str, target: _Target, model: str,
                messages: Sequence[ChatMessage]) -> tuple[int, bool]:  # fmt: skip
        if method == VLLM:
            answer = _request("POST", f"{target.root}/tokenize",
                              {"model": model, "messages": _dicts(messages), "add_generation_prompt": True},
                              target.key, self.timeout_s, target.query)  # fmt: skip
            count = answer.get("count") if isinstance(answer, dict) else None
            if not isinstance(count, int):
                raise _Unsupported("no count")
            return count, True
        if method == LLAMACPP:
            answer = _request("POST", f"{target.root}/apply-template", {"messages": _dicts(messages)},
                              target.key, self.timeout_s, target.query)  # fmt: skip
            prompt = answer.get("prompt") if isinstance(answer, dict) else None
            if not isinstance(prompt, str):
                raise _Unsupported("no prompt")
            tokens = _ids(_request("POST", f"{target.root}/tokenize",
                                   {"content": prompt, "add_special": True, "parse_special": True},
                                   target.key, self.timeout_s, target.query))  # fmt: skip
            return len(tokens), True
        template = self._llama_cpp_python_template(target, model)
        if template is not None:
            try:
                prompt = template.render(messages)
            except (ValueError, ImportError):
                template = None
            else:
                return self._extras_count(target, model, prompt), True
        # no template: the server's tokenizer for the text, a typical template's overhead
        total = REPLY_PRIMING + OVERHEAD_PER_MESSAGE * len(messages)
        for m in messages:
            total += self._extras_count(target, model, f"{m.role}\n{m.content}") if m.content else 1
        return total, False

    def _text(self, method: str, target: _Target, model: str, text: str) -> int:
        if method == VLLM:
            answer = _request("POST", f"{target.root}/tokenize",
                              {"model": model, "prompt": text, "add_special_tokens": False},
                              target.key, self.timeout_s, target.query)  # fmt: skip
            count = answer.get("count") if isinstance(answer, dict) else None
            if not isinstance(count, int):
                raise _Unsupported("no count")
            return count
        if method == LLAMACPP:
            return len(_ids(_request("POST", f"{target.root}/tokenize",
                                     {"content": text, "add_special": False, "parse_special": False},
                                     target.key, self.timeout_s, target.query)))  # fmt: skip
        return self._extras_count(target, model, text)

    def _extras_count(self, target: _Target, model: str, text: str) -> int:
        """llama-cpp-python's count of ``text`` (special tokens parsed), without the BOS its
        tokenize endpoint adds (its chat handler adds none to a templated prompt)."""
        tokens = _ids(_request("POST", f"{target.root}/extras/tokenize", {"input": text, "model": model},
                               target.key, self.timeout_s, target.query))  # fmt: skip
        return max(0, len(tokens) - self._bos_extra.get(target.root, 0))

    def _llama_cpp_python_template(self, target: _Target, model: str) -> Any:
        """The chat template of the GGUF the server serves, when that file is on this computer."""
        key = (target.root, model)
        with self._lock:
            if key in self._templates:
                return self._templates[key]
        template = None
        try:
            from app.providers.openai_support import model_ids

            ids = model_ids(_request("GET", f"{target.base}/models", None, target.key, self.timeout_s, target.query)) or []
        except (_Unsupported, _Unreachable):
            ids = []
        # llama-cpp-python answers any model name with its default model (the first listed)
        served = model if model in ids else (ids[0] if ids else model)
        if served.lower().endswith(".gguf"):
            from app.providers.chat_templates import gguf_template

            template = gguf_template(served)
        with self._lock:
            self._templates[key] = template
        return template


def endpoint_key(context: Any, ep: EndpointConfig) -> str | None:
    """The endpoint's key: one written into its base URL (userinfo), else the stored one
    (None when none is set or there is no keyring)."""
    in_url = url_key(ep.base_url)
    if in_url is not None and in_url.bearer:
        return in_url.bearer
    try:
        return context.secrets.get(ep.secret_name) or None
    except Exception:  # no keyring: count without a key (local servers need none)
        return None
