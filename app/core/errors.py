"""One error tree. Every error carries a message and a hint telling the user what to do.

Messages must never contain API keys: :func:`redact` is applied to every message.
"""

from __future__ import annotations

import re

_KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.]{8,}"),
    re.compile(r"(?i)(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9_\-\.]{8,}"),
]
_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret value so that :func:`redact` removes it from any text."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Replace anything that looks like an API key (or a registered secret) by ``***``."""
    for secret in sorted(_known_secrets, key=len, reverse=True):  # longest first: a short secret
        if secret in text:  # inside a longer one must not leave the rest of the longer one showing
            text = text.replace(secret, "***")
    for pat in _KEY_PATTERNS:
        text = pat.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def join_sentences(*parts: str) -> str:
    """``parts`` joined by spaces, each that lacks a full stop given one ("Rate limit
    reached. Wait a moment.", not "Rate limit reached Wait a moment")."""
    out: list[str] = []
    for part in parts:
        text = part.strip()
        if not text:
            continue
        if out and not out[-1].rstrip("\"')]").endswith((".", "!", "?", ":", "…")):
            out[-1] += "."
        out.append(text)
    return " ".join(out)


class AppError(Exception):
    """Base of every error the app raises on purpose."""

    default_hint = ""
    bad_input = False
    """True for a provider error that is the caller's input (the CLI exits 2, not 1)."""
    result: object = None
    """For a generation that failed: its :class:`~app.core.generation.GenerationResult` as the
    ledger recorded it (usage estimated from the partial text, cost), else None."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = redact(message)
        self.hint = redact(hint if hint is not None else self.default_hint)
        super().__init__(self.user_message())

    def user_message(self) -> str:
        """Message plus hint, as shown to the user (joined as sentences)."""
        return join_sentences(self.message, self.hint)


class InvalidParams(AppError):
    """A generation parameter is out of range (raised before anything is sent)."""


class InvalidModelId(AppError):
    """A model id is malformed or names an unknown provider."""


class ConfigError(AppError):
    """Settings, endpoints or pricing data are wrong."""


class StorageError(AppError):
    """A database or file of the app could not be read or written for a reason that is not
    damage (no permission, disk full, a read-only folder). Nothing is moved aside."""

    default_hint = "Check the disk space and the permissions of the app's data folder."


class StorageBusy(StorageError):
    """Another instance (or program) holds the database longer than the busy timeout.

    Busy is never damage: the file is left exactly as it is."""

    default_hint = (
        "Nothing was lost or moved. Wait for the other instance to finish (or close it) and "
        "try again."
    )


class ProviderError(AppError):
    """Anything a provider reports.

    ``retryable`` marks errors a retry may fix (each class has its default; a particular
    error may say otherwise, e.g. a timeout on a server that answered nothing for minutes).
    ``retry_after`` is the wait in seconds a server asked for (``Retry-After``), or None.
    """

    default_retryable = False

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool | None = None,
                 retry_after: float | None = None) -> None:  # fmt: skip
        self.retryable: bool = self.default_retryable if retryable is None else retryable
        self.retry_after: float | None = retry_after
        super().__init__(message, hint=hint)


class AuthError(ProviderError):
    """The key is missing, wrong or lacks permission."""

    default_hint = "Check the API key (python -m app keys set PROVIDER, or the Keys dialog)."


class RateLimited(ProviderError):
    """Too many requests or quota exceeded."""

    default_retryable = True
    default_hint = "Wait a moment and try again, or check your plan's limits."


class RetryAfterTooLong(RateLimited):
    """The server asked to wait longer than the retry policy's maximum: failed at once.

    ``retry_after`` holds the seconds the server asked for."""

    default_retryable = False
    default_hint = (
        "Try again later, or raise the longest Retry-After wait in Settings > Retries."
    )


class Unreachable(ProviderError):
    """The server could not be reached or timed out."""

    default_retryable = True
    default_hint = "Check that the server is running and the base URL is right, and your network."


class ServerError(ProviderError):
    """The server failed (5xx)."""

    default_retryable = True
    default_hint = "The server had a problem; try again in a moment."


class ModelNotFound(ProviderError):
    """The model does not exist on that provider/endpoint, or is not downloaded."""

    default_hint = "Pick a model from the list (python -m app models)."


class NoSuchModel(ModelNotFound):
    """A model id names nothing here (a ``local:`` path that does not exist, an unknown
    ``mock:`` model): bad input, like a malformed id (the CLI exits 2)."""

    bad_input = True


class ContextTooLong(ProviderError):
    """The request does not fit the model's context window."""

    default_hint = "Shorten the conversation or the prompt, or lower max tokens."


class BadRequest(ProviderError):
    """The server rejected the request as malformed."""

    default_hint = "Check the parameters; some servers do not support every option."


class StreamInterrupted(ProviderError):
    """The stream was cut mid-way. The text received so far is in ``partial_text``."""

    default_hint = "The text received so far was kept. Regenerate to try again."

    def __init__(self, message: str, *, hint: str | None = None, partial_text: str = "") -> None:
        self.partial_text = partial_text
        super().__init__(message, hint=hint)


class ModelLoadError(ProviderError):
    """A local model could not be loaded; the previously loaded model stays usable."""


class AdapterError(AppError):
    """A LoRA adapter is missing, corrupt, or does not fit the loaded model."""


class ToolSchemaError(ConfigError):
    """A tool definition or a response schema is not valid (named with its file, tool and
    JSON path; raised before anything is sent)."""


class ToolError(AppError):
    """A tool call could not be carried out (an MCP server that failed to start, crashed,
    hung past its timeout or answered an error). The run turns it into an error result the
    model and the user see; it never breaks the app."""


class ApprovalNeeded(ToolError):
    """A tool call needs the user's approval and there is no one to ask (no terminal, no
    ``--yes``): the run stops before the call (the CLI exits 1)."""


class SecretsError(AppError):
    """The secret store failed."""


class NoKeyringError(SecretsError):
    """No secure OS keyring is available."""

    default_hint = (
        "Install and unlock a Secret Service (e.g. gnome-keyring or KWallet), or choose "
        "'session only' to keep the key in memory until the app closes."
    )
