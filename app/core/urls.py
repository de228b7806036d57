"""URLs safe to store and show: no credentials in them.

A base URL may carry a key: ``http://user:sk-...@host/v1`` (userinfo) or
``https://host/v1?api_key=...`` (a query value). :func:`clean_url` removes both before a URL
is written anywhere (the usage ledger, its CSV export, history) and registers the removed
values with :func:`app.core.errors.register_secret`, so that messages that still quote the
raw URL are redacted too.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from app.core.errors import redact, register_secret

MASK = "***"
"""What a secret query value is replaced with (the parameter's name is kept)."""

SECRET_PARAMS: frozenset[str] = frozenset(
    {
        "api_key", "apikey", "api-key", "x-api-key", "key", "token", "access_token",
        "id_token", "refresh_token", "auth", "auth_token", "authorization", "bearer",
        "password", "passwd", "pwd", "secret", "client_secret", "sig", "signature",
        "session", "sessionid", "session_id", "credential", "credentials", "code",
        "private_token", "subscription-key", "ocp-apim-subscription-key",
    }
)  # fmt: skip
"""Query parameter names (compared case-insensitively, ``-`` and ``_`` alike) whose values
are secrets."""

_SECRET_NORMALISED = frozenset(n.replace("-", "_") for n in SECRET_PARAMS)


def is_secret_param(name: str) -> bool:
    """True when a query parameter called ``name`` carries a secret (``api_key``, ``token``, ...)."""
    norm = name.strip().lower().replace("-", "_")
    return norm in _SECRET_NORMALISED or norm.endswith(("_key", "_token", "_secret"))


def url_secrets(url: str) -> list[str]:
    """The secret values inside ``url``: the userinfo password (or a lone user name that
    looks like a token, as in ``https://TOKEN@host``) and secret query/fragment values, each
    both as written and percent-decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon and password:
            found.append(password)
        elif not colon and len(user) >= 8:  # a token in the user slot
            found.append(user)
    for piece in (parts.query, parts.fragment):
        for name, value in parse_qsl(piece, keep_blank_values=True):
            if value and is_secret_param(name):
                found.append(value)
                found.append(quote(value, safe=""))
                found.append(quote(value))
    out: list[str] = []
    for value in found:
        for form in (value, unquote(value)):
            if form and form not in out:
                out.append(form)
    return out


def clean_url(url: str | None, *, register: bool = True) -> str | None:
    """``url`` without userinfo and with secret query values masked (``?api_key=***``);
    the fragment is dropped. Text that is not an ``http(s)`` URL (an endpoint's name, None)
    comes back unchanged except for :func:`redact`. With ``register`` (the default) the
    removed values are registered for redaction."""
    if url is None:
        return None
    text = url.strip()
    lowered = text.lower()
    if not lowered.startswith(("http://", "https://", "ws://", "wss://")):
        return redact(url)
    if register:
        for secret in url_secrets(text):
            register_secret(secret)
    try:
        parts = urlsplit(text)
        if "@" not in parts.netloc and not parts.fragment and not any(
            is_secret_param(n) for n, _ in parse_qsl(parts.query, keep_blank_values=True)
        ):
            return redact(url)  # nothing to remove: exactly as given
        host = parts.netloc.rpartition("@")[2]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(is_secret_param(n) for n, _ in pairs):
                query = urlencode([(n, MASK if is_secret_param(n) and v else v) for n, v in pairs], safe="*")
        cleaned = urlunsplit((parts.scheme, host, parts.path, query, ""))
    except ValueError:  # an unparsable URL: keep nothing after the scheme that could be a key
        scheme, _, rest = text.partition("://")
        cleaned = f"{scheme}://{rest.rpartition('@')[2].split('?', 1)[0].split('#', 1)[0]}"
    return redact(cleaned)


def register_url_secrets(url: str | None) -> None:
    """Register the secrets inside ``url`` for redaction (no-op for None or a name)."""
    if url:
        for secret in url_secrets(url.strip()):
            register_secret(secret)
