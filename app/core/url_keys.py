"""Base URLs that carry a key: split once, where they enter the app, into a clean URL and a
key kept in memory.

A key may be written into a base URL in two ways, and each is sent the way it was written:

- userinfo, ``http://user:KEY@host/v1`` (or ``http://KEY@host/v1``): sent as
  ``Authorization: Bearer KEY`` (never as HTTP Basic auth), instead of the keyring's key;
- a secret query value, ``http://host/v1?api_key=KEY`` (``key``, ``token``, ...; see
  :func:`app.core.urls.is_secret_param`): sent as that same query parameter on every real
  request URL (``/v1/chat/completions?api_key=KEY``).

:func:`accept_base_url` is called at every entry (the CLI's ``--base-url``,
``OPENAI_BASE_URL``, settings' endpoints, grid files and the Workbench's variants, stored
runs and conversations, requests): it checks the URL (a malformed one raises
:class:`ConfigError` naming it without its key, before anything is sent), registers the key
for redaction, remembers it in this process keyed by the clean URL, and returns the clean
URL, the only form the rest of the app sees, stores or prints. Nothing here writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from app.core.errors import ConfigError, register_secret
from app.core.urls import MASK, clean_url, is_secret_param, register_url_secrets

URL_HINT = "Give a base URL such as http://localhost:8080/v1 (a host, and a port from 1 to 65535)."


@dataclass(frozen=True)
class UrlKey:
    """The key found in a base URL: ``bearer`` (from userinfo) and/or ``query`` (secret
    query parameters, sent as they were written)."""

    bearer: str | None = None
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SplitUrl:
    """A base URL split into the ``url`` safe to store and show, and its ``key`` (or None)."""

    url: str
    key: UrlKey | None


_keys: dict[str, UrlKey] = {}
"""The keys of this process's base URLs, by clean URL (memory only)."""


def _is_url(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://"))


def split_base_url(raw: str) -> SplitUrl:
    """``raw`` checked and split: the URL without userinfo, secret query values (or masked
    ``***`` ones, as history stores them) and fragment, path without a trailing ``/``; and
    the key. Raises :class:`ConfigError` (naming the URL without its key) when ``raw`` is
    not an ``http(s)`` URL with a host and a valid port."""
    text = raw.strip()
    register_url_secrets(text)  # before any message could quote it
    shown = clean_url(text, register=False) or ""
    if not _is_url(text):
        raise ConfigError(f"The base URL '{shown}' is not valid: it must start with http:// or https://.",
                          hint=URL_HINT)  # fmt: skip
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise ConfigError(f"The base URL '{shown}' is not valid: it contains spaces or control characters.",
                          hint=URL_HINT)  # fmt: skip
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        text = str(exc).lower()
        reason = ("the port is not a number from 1 to 65535" if "port" in text else
                  "the IPv6 host in brackets is not valid (or its ']' is missing)" if "ipv6" in text else text)
        raise ConfigError(f"The base URL '{shown}' is not valid: {reason}.", hint=URL_HINT) from None
    if not parts.hostname:
        raise ConfigError(f"The base URL '{shown}' is not valid: it names no host.", hint=URL_HINT)
    if port == 0:
        raise ConfigError(f"The base URL '{shown}' is not valid: the port is not a number from 1 to 65535.",
                          hint=URL_HINT)  # fmt: skip
    bearer: str | None = None
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        token = password if colon else (user if len(user) >= 8 else "")  # as url_secrets reads it
        bearer = unquote(token) or None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = tuple((n, v) for n, v in pairs if is_secret_param(n) and v and v != MASK)
    kept = [(n, v) for n, v in pairs if not is_secret_param(n)]
    path = parts.path.rstrip("/")
    url = urlunsplit((parts.scheme.lower(), host if at else parts.netloc, path, urlencode(kept), ""))
    key = UrlKey(bearer, secret) if bearer or secret else None
    return SplitUrl(url, key)


def accept_base_url(raw: str) -> str:
    """The clean form of ``raw`` (see :func:`split_base_url`, which raises for a malformed
    URL); its key, if any, is registered for redaction and remembered for requests to the
    clean URL (a later key for the same clean URL replaces it)."""
    split = split_base_url(raw)
    if split.key is not None:
        for value in (split.key.bearer, *(v for _, v in split.key.query)):
            if value:
                register_secret(value)
        _keys[split.url] = split.key
    return split.url


def remember_key(url: str, key: str) -> str:
    """Send ``key`` (as ``Authorization: Bearer``) with requests to the base URL ``url``
    (memory only: a grid file's ``apiKey``); returns the clean URL."""
    clean = accept_base_url(url)
    register_secret(key)
    _keys[clean] = UrlKey(key)
    return clean


def accept_endpoint(value: str | None) -> str | None:
    """An endpoint as given (a name, or None) unchanged; a base URL through
    :func:`accept_base_url`."""
    if value is None or not _is_url(value):
        return value
    return accept_base_url(value)


def url_key(url: str) -> UrlKey | None:
    """The key that came with the (clean) base URL ``url`` in this process, or None."""
    return _keys.get(url.strip().rstrip("/")) if url else None


def sdk_base(base_url: str) -> tuple[str, dict[str, str]]:
    """``base_url`` without its query, and the query parameters every request carries: its
    own plus its secret ones (the OpenAI SDK would glue a query inside the base URL into the
    request path)."""
    parts = urlsplit(base_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    key = url_key(base_url)
    if key is not None:
        query.update(key.query)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


def api_url(base_url: str, path: str) -> str:
    """The real request URL of ``path`` (``models``, ``/tokenize``) under ``base_url``, with
    the base URL's query and secret query parameters (how a query-form key is sent)."""
    base, query = sdk_base(base_url)
    return f"{base}/{path.lstrip('/')}" + (f"?{urlencode(query)}" if query else "")


def forget_url_keys() -> None:
    """Drop every remembered key (tests; a new session)."""
    _keys.clear()
