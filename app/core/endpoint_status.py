"""What an OpenAI-compatible endpoint's state is, in a few words, and a quiet look for the
common local servers (Ollama, LM Studio, llama.cpp, vLLM) on their default ports.

- :func:`short_state` turns a listing error into what the model picker shows next to the
  endpoint: ``unreachable: connection refused``, ``key refused (401)``, ...
- :func:`probe` asks ``GET <base>/models`` with short timeouts (a refused port answers at
  once, a silent one is given up after about a second), in threads: it never blocks the
  event loop and never raises.
- :func:`check` is the Settings dialog's Test button: one endpoint as edited (not saved yet).

Plain ``http.client`` (imported on first use): no SDK, no proxy (the servers are on this computer or named by URL).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.core.settings import EndpointConfig
from app.core.url_keys import api_url, url_key
from app.core.urls import clean_url

LOCAL_KINDS = ("ollama", "lmstudio", "llamacpp", "vllm")
"""The kinds of the built-in local server profiles that are looked for at start."""
PROBE_CONNECT_S = 0.3
PROBE_READ_S = 1.0
CHECK_CONNECT_S = 5.0
CHECK_READ_S = 15.0
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class EndpointState:
    """One endpoint's state: ``text`` in a few words (the picker), ``detail`` the whole message."""

    name: str
    text: str
    ok: bool
    detail: str = ""
    models: tuple[str, ...] = ()


_RULES: tuple[tuple[str, str], ...] = (
    (r"connection refused|errno 111|ECONNREFUSED", "unreachable: connection refused"),
    (r"name or service not known|nodename nor servname|getaddrinfo|gaierror|temporary failure in name",
     "unreachable: unknown host"),
    (r"did not list its models within|did not answer within|timed out|timeout", "unreachable: no answer (timed out)"),
    (r"network is unreachable|no route to host|errno 113|errno 101", "unreachable: no route to host"),
    (r"connection was dropped|reset by peer|errno 104", "unreachable: connection dropped"),
    (r"certificate|ssl", "unreachable: TLS/certificate problem"),
    (r"\(401\)|\(403\)|invalid api key|incorrect api key|refused the request", "key refused"),
    (r"no api key is set|needs a key|no key", "needs key"),
    (r"no secure keyring|keyring", "needs key (no keyring)"),
    (r"does not list models \(404\)|\(404\)", "no model list here (404): check the URL"),
    (r"not an event stream|did not answer get /models with a model list|text/html", "not an OpenAI-compatible API"),
    (r"rate limit|\(429\)", "rate limited (429)"),
    (r"\(5\d\d\)|server error|failed \(", "server error"),
)  # fmt: skip


def short_state(message: str) -> str:
    """A listing error in a few words: ``unreachable: connection refused``."""
    low = message.lower()
    for pattern, text in _RULES:
        if re.search(pattern, low):
            if text == "key refused":
                code = re.search(r"\((40[13])\)", message)
                return f"key refused ({code.group(1)})" if code else text
            return text
    first = message.strip().split(". ")[0].strip().rstrip(".")
    return "error: " + (first[:60] + "…" if len(first) > 60 else first)


def diagnose(base_url: str, timeout_s: float = 1.0) -> str | None:
    """Why a server cannot be reached, found by connecting once (blocking, ``timeout_s`` at
    most): ``unreachable: connection refused`` / ``unknown host`` / ``no answer (timed out)``
    / ``no route to host``; None when a connection can be made (the problem is elsewhere)."""
    import socket

    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except ConnectionRefusedError:
        return "unreachable: connection refused"
    except socket.gaierror:
        return "unreachable: unknown host"
    except TimeoutError:
        return "unreachable: no answer (timed out)"
    except OSError as exc:
        return short_state(str(exc)) if "unreachable" in short_state(str(exc)) else "unreachable: no route to host"
    return None


VAGUE = ("all connection attempts failed", "connecterror", "connection error")
"""Words of a connection failure that does not say why (httpx's)."""


def model_ids(payload: Any) -> list[str] | None:
    """Model ids in a ``GET /models`` answer (``data[].id``, ``models[].name``), or None."""
    items: Any = payload
    if isinstance(payload, dict):
        items = payload.get("data") if isinstance(payload.get("data"), list) else payload.get("models")
        if items is None and "data" in payload:
            items = []
    if not isinstance(items, list):
        return None
    out: list[str] = []
    for item in items:
        name = item
        if isinstance(item, dict):
            name = next((item[k] for k in ("id", "name", "model") if isinstance(item.get(k), str)), None)
        if isinstance(name, str) and name.strip() and name.strip() not in out:
            out.append(name.strip())
    return sorted(out)


def _get(url: str, key: str | None, connect_s: float, read_s: float) -> tuple[int, bytes]:
    import http.client  # here, not at start (~6 ms, with the email parser): probes run in threads

    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "", parts.port, timeout=connect_s)
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read_s)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(4 << 20)
    finally:
        conn.close()


def _describe_failure(exc: BaseException, where: str, connect_s: float, read_s: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"Could not connect to {where}: connection refused. Is the server running?"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer within {max(connect_s, read_s):g} s (timed out)."
    return f"Could not connect to {where}: {type(exc).__name__}: {exc}"


def list_models_now(ep: EndpointConfig, key: str | None, *, connect_s: float = CHECK_CONNECT_S,
                    read_s: float = CHECK_READ_S) -> EndpointState:  # fmt: skip
    """Ask one endpoint for its models (blocking); never raises."""
    import http.client

    where = clean_url(ep.base_url) or ep.base_url
    started = time.perf_counter()
    try:
        in_url = url_key(ep.base_url)  # a key written into the base URL is sent as written
        status, body = _get(api_url(ep.base_url, "models"), (in_url.bearer if in_url else None) or key,
                            connect_s, read_s)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        detail = _describe_failure(exc, where, connect_s, read_s)
        return EndpointState(ep.name, short_state(detail), False, detail)
    ms = (time.perf_counter() - started) * 1000
    if status in (401, 403):
        detail = f"{where} refused the key ({status})."
        return EndpointState(ep.name, f"key refused ({status})", False, detail)
    if status == 404:
        return EndpointState(ep.name, "no model list here (404): check the URL", False,
                             f"{where} has no GET /models (404). The base URL usually ends in /v1.")  # fmt: skip
    if status != 200:
        return EndpointState(ep.name, f"server error ({status})", False, f"{where} answered HTTP {status}.")
    try:
        ids = model_ids(json.loads(body))
    except ValueError:
        ids = None
    if ids is None:
        return EndpointState(ep.name, "not an OpenAI-compatible API", False,
                             f"{where} did not answer GET /models with a model list. Check the base URL.")  # fmt: skip
    sample = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
    detail = f"Connected to {ep.name} in {ms:.0f} ms: {len(ids)} model{'' if len(ids) == 1 else 's'}" + (
        f" ({sample})." if ids else ".")
    return EndpointState(ep.name, "ready", True, detail, tuple(ids))


async def check(ep: EndpointConfig, key: str | None) -> EndpointState:
    """The Test button: list ``ep``'s models in a thread (the loop never waits on the network)."""
    return await asyncio.to_thread(list_models_now, ep, key)


def is_local(ep: EndpointConfig) -> bool:
    """True for an endpoint on this computer."""
    host = (urlsplit(ep.base_url).hostname or "").lower()
    return host in LOCAL_HOSTS or host.startswith("127.")


def probe_candidates(endpoints: Sequence[EndpointConfig]) -> list[EndpointConfig]:
    """The local server profiles that are switched off (the enabled ones are listed anyway)."""
    return [ep for ep in endpoints if not ep.enabled and ep.kind in LOCAL_KINDS and is_local(ep)]


async def probe(endpoints: Sequence[EndpointConfig]) -> list[EndpointState]:
    """Look for the switched-off local servers on their ports, all at once, quietly: only
    those that answer with a model list come back."""
    candidates = probe_candidates(endpoints)
    if not candidates:
        return []
    states = await asyncio.gather(*(asyncio.to_thread(list_models_now, ep, None, connect_s=PROBE_CONNECT_S,
                                                      read_s=PROBE_READ_S) for ep in candidates))  # fmt: skip
    return [s for s in states if s.ok]
