"""Typed, versioned settings in one JSON file under the user config dir, written atomically.

A corrupt file is moved aside (``settings.json.corrupt-<time>``) with a warning, never a crash.
Keys are never stored here: :class:`EndpointConfig` only says whether a key is needed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from app.core.errors import ConfigError
from app.core.mcp_config import McpServerConfig
from app.core.model_fields import Record, ValidationError, spec
from app.core.sqlite_db import aside_path
from app.core.url_keys import accept_base_url, split_base_url

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1


class RetryPolicy(Record):
    """One retry policy for remote providers (the SDK's own retries are switched off)."""

    max_attempts: int = spec(default=3, ge=1, le=10)
    base_delay_s: float = spec(default=0.5, ge=0.0, le=60.0)
    max_delay_s: float = spec(default=8.0, ge=0.0, le=600.0)
    jitter: float = spec(default=0.25, ge=0.0, le=1.0)
    respect_retry_after: bool = True
    max_retry_after_s: float = spec(default=60.0, ge=0.0, le=3600.0)


def _base_url(value: str) -> str:
    try:
        return accept_base_url(value)  # a key inside it stays in memory, never in the file
    except ConfigError as exc:
        raise ValueError(exc.message) from None


EndpointKind = Literal["openai", "ollama", "lmstudio", "llamacpp", "vllm", "custom"]


class EndpointConfig(Record):
    """A named OpenAI-compatible endpoint. Its key (if any) lives in the keyring under
    ``endpoint:<name>`` (the built-in OpenAI endpoint uses ``openai``)."""

    name: str
    base_url: str = spec(check=_base_url)
    kind: EndpointKind = "custom"
    needs_key: bool = False
    enabled: bool = True
    timeout_s: float = spec(default=600.0, gt=0)
    connect_timeout_s: float = spec(default=10.0, gt=0)
    send_stream_options: bool = True

    @property
    def secret_name(self) -> str:
        """The keyring entry name of this endpoint's key."""
        return "openai" if self.kind == "openai" else f"endpoint:{self.name}"


DEFAULT_ENDPOINT_NAME = "OpenAI"
"""The built-in endpoint that ``openai:`` models use when no endpoint is named."""
BASE_URL_ENV = "OPENAI_BASE_URL"
"""Read (never stored) for the built-in OpenAI endpoint, as the OpenAI SDK does."""


def env_base_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``OPENAI_BASE_URL`` (clean: a key inside it stays in memory, see
    :mod:`app.core.url_keys`) when it holds an http(s) URL, else None. Raises
    :class:`ConfigError` when it is a malformed one."""
    value = (os.environ if environ is None else environ).get(BASE_URL_ENV, "").strip()
    if not value.lower().startswith(("http://", "https://")):
        return None
    try:
        return accept_base_url(value)
    except ConfigError as exc:
        raise ConfigError(f"{BASE_URL_ENV}: {exc.message}", hint=exc.hint) from None


def split_url_key(url: str) -> tuple[str, str | None]:
    """``url`` without the key inside it, and that key: ``http://user:KEY@host/v1`` and
    ``https://host/v1?api_key=KEY`` give (``http://host/v1``, ``KEY``). Other query values
    stay; the fragment goes. A malformed URL comes back as given, with no key."""
    try:
        split = split_base_url(url)
    except ConfigError:
        return url.strip(), None
    if split.key is None:
        return split.url, None
    return split.url, split.key.bearer or split.key.query[0][1]


def default_endpoints() -> list[EndpointConfig]:
    """The built-in profiles: OpenAI plus the common local servers."""
    return [
        EndpointConfig(name="OpenAI", base_url="https://api.openai.com/v1", kind="openai", needs_key=True),
        EndpointConfig(name="Ollama", base_url="http://localhost:11434/v1", kind="ollama", enabled=False),
        EndpointConfig(name="LM Studio", base_url="http://localhost:1234/v1", kind="lmstudio", enabled=False),
        EndpointConfig(name="llama.cpp server", base_url="http://localhost:8080/v1", kind="llamacpp", enabled=False),
        EndpointConfig(name="vLLM", base_url="http://localhost:8000/v1", kind="vllm", enabled=False),
    ]


class PriceOverride(Record):
    """USD per 1M tokens for one model id (overrides resources/pricing.json)."""

    input: str
    cached_input: str | None = None
    output: str


class LocalModelSettings(Record):
    """Device, dtype and safety options for in-process models."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # int8 / int4 / int4-qkv8: weight-only quantized linear layers (CPU only; int4-qkv8: int8
    # q/k/v, int4 elsewhere); auto on CPU = int4 (measured in benchmarks/bench_local.py)
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8", "int4", "int4-qkv8"] = "auto"
    threads: int | None = spec(default=None, ge=1, le=256)
    trust_remote_code: list[str] = spec(default_factory=list)
    # prefix reuse: the KV of this many recent sequences is kept per loaded model, within this
    # many MB (0 turns it off); a request reuses the longest common token prefix
    prefix_cache_entries: int = spec(default=4, ge=0, le=64)
    prefix_cache_mb: int = spec(default=512, ge=0, le=65536)


class Preset(Record):
    """A saved set of generation parameters (see GenerationParams.to_dict)."""

    name: str
    params: dict[str, Any]
    system_prompt: str = ""
    tools: dict[str, Any] | None = None
    """The Tools panel's content (app.core.tool_setup.ToolSetup.to_json); None: leave it as it is."""


class UiSettings(Record):
    """How the window looks and which key sends."""

    theme: Literal["system", "light", "dark"] = "system"
    font_size: int | None = spec(default=None, ge=6, le=32)
    """Points; None: the system's size."""
    enter_sends: bool = False
    """Enter sends (Shift+Enter: a new line); Ctrl+Enter always sends."""


class Settings(Record):
    """All user settings. Bump SETTINGS_VERSION and migrate in :func:`_migrate` on changes."""

    version: int = SETTINGS_VERSION
    default_model: str | None = None
    endpoints: list[EndpointConfig] = spec(default_factory=default_endpoints)
    retry: RetryPolicy = spec(default_factory=RetryPolicy)
    price_overrides: dict[str, PriceOverride] = spec(default_factory=dict)
    local: LocalModelSettings = spec(default_factory=LocalModelSettings)
    presets: list[Preset] = spec(default_factory=list)
    session_only_secrets: bool = False
    last_conversation_id: str | None = None
    last_model: str | None = None
    """The model the window used last; it starts on it when ``default_model`` is automatic
    (so a start asks the keyring nothing)."""
    last_endpoint: str | None = None
    """The endpoint :attr:`last_model` was used at (None: the built-in one, or none)."""
    recent_local_models: list[str] = spec(default_factory=list)
    max_concurrent_per_endpoint: int = spec(default=4, ge=1, le=64)
    """How many requests the run scheduler sends to one remote endpoint at once."""
    workbench_budget_usd: float = spec(default=0.10, ge=0.0, le=100_000.0)
    """The Workbench asks before a run whose estimated cost may be above this (USD)."""
    ui: UiSettings = spec(default_factory=lambda: UiSettings())
    """The window's appearance and keys."""
    show_probabilities: bool = False
    """View > Show probabilities: chat answers ask for token probabilities and show them."""
    probabilities_top_k: int = spec(default=5, ge=0, le=20)
    """How many alternatives per token the probabilities view asks for (0-20)."""
    mcp_servers: list[McpServerConfig] = spec(default_factory=list)
    """MCP servers whose tools the model may call (secrets as ``keyring:NAME``, see mcp_config)."""
    serve_queue_limit: int = spec(default=16, ge=1, le=1024)
    """The local server (``serve``) answers 429 past this many requests waiting or running."""
    serve_proxy: bool = False
    """The window's Server panel: also offer the configured endpoints' models (``--proxy``)."""
    serve_cors_origins: list[str] = spec(default_factory=list)
    """The window's Server panel: web origins allowed by CORS (empty: no CORS headers)."""
    max_tool_steps: int = spec(default=8, ge=1, le=100)
    """The tool loop stops after this many model requests in one answer (said when reached)."""
    stop_on_tool_error: bool = False
    """An MCP server that fails a call (crash, hang, error): stop the answer there (True) or
    give the model the error result and go on (False, the default)."""
    default_grader: str | None = None
    """The model id that grades a grid's llm-rubric when the file names none (None: OpenAI's)."""

    def endpoint(self, name: str) -> EndpointConfig | None:
        """The endpoint called ``name`` (case-insensitive), or None."""
        for ep in self.endpoints:
            if ep.name.lower() == name.lower():
                return ep
        return None

    def resolve_endpoint(self, name_or_url: str | None) -> EndpointConfig:
        """Where an ``openai:`` request goes: a configured endpoint by name, an ad-hoc
        ``http(s)://`` base URL (a configured endpoint with that URL when there is one), or
        the built-in OpenAI endpoint for None. Raises :class:`ConfigError` for unknown names."""
        if name_or_url is None or not name_or_url.strip():
            ep = self.endpoint(DEFAULT_ENDPOINT_NAME) or next((e for e in self.endpoints if e.kind == "openai"), None)
            if ep is None:
                raise ConfigError("No OpenAI endpoint is configured.",
                                  hint="Add one in Settings > Endpoints, or pass --base-url.")  # fmt: skip
            return self._with_env(ep)
        value = name_or_url.strip()
        if value.lower().startswith(("http://", "https://")):
            url = accept_base_url(value)  # stored runs and conversations hold clean URLs already
            for ep in self.endpoints:
                if ep.base_url == url:
                    return ep
            return EndpointConfig(name=url, base_url=url, kind="custom", needs_key=False)
        found = self.endpoint(value)
        if found is None:
            names = ", ".join(e.name for e in self.endpoints) or "none"
            raise ConfigError(f"There is no endpoint called '{value}'.",
                              hint=f"Use one of: {names}; or pass a base URL such as http://localhost:8080/v1.")  # fmt: skip
        return self._with_env(found)

    @staticmethod
    def _with_env(ep: EndpointConfig) -> EndpointConfig:
        """The built-in OpenAI endpoint at ``OPENAI_BASE_URL`` when that is set (a copy: the
        environment's URL is never saved)."""
        url = env_base_url() if ep.kind == "openai" and ep.name == DEFAULT_ENDPOINT_NAME else None
        return ep.model_copy(update={"base_url": url}) if url and url != ep.base_url else ep


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    version = int(data.get("version", 0) or 0)
    if version < 1:
        data["version"] = 1
    return data


def _drop(data: Any, loc: tuple[int | str, ...]) -> Any:
    """``data`` without the value at ``loc`` (or the nearest enclosing dict entry / list item),
    or None when there is nothing to remove. Only the containers on the way are copied (a
    deep copy of a file nested a few hundred levels deep would overflow the stack)."""
    path = list(loc)
    while path:
        chain = [data]
        try:
            for part in path[:-1]:
                chain.append(chain[-1][part])
        except (KeyError, IndexError, TypeError):
            path.pop()
            continue
        parent, last = chain[-1], path[-1]
        if (isinstance(parent, dict) and last in parent) or (
            isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent)
        ):
            copies = [container.copy() for container in chain]
            for outer, part, inner in zip(copies, path, copies[1:], strict=False):
                outer[part] = inner
            del copies[-1][last]
            return copies[0]
        path.pop()
    return None


def _salvage(raw: Any, exc: ValidationError) -> tuple[Settings, list[str]] | None:
    """Settings from ``raw`` with each invalid value removed (so it takes its default), and the
    dotted names of what was removed; None when nothing valid can be kept."""
    if not isinstance(raw, dict):
        return None
    data: Any = raw
    dropped: list[str] = []
    for _ in range(100):  # one invalid value per round: list indexes shift as items go
        errors = exc.errors()
        loc = tuple(errors[0]["loc"]) if errors else ()
        data = _drop(data, loc) if loc else None
        if data is None:
            return None
        dropped.append(".".join(str(part) for part in loc))
        try:
            return Settings.model_validate(_migrate(data)), dropped
        except ValidationError as again:
            exc = again
    return None


class SettingsStore:
    """Loads and saves :class:`Settings` at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []

    def load(self) -> Settings:
        """Load settings; missing file -> defaults; corrupt file -> moved aside + defaults.

        A file that parses but holds invalid values (one out of range, one bad endpoint) keeps
        every valid setting: only the invalid ones fall back to their defaults; the original
        is moved aside for reference and the repaired settings are written back.
        """
        if not self.path.exists():
            return Settings()
        raw: Any = None
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("top level is not an object")
            return Settings.model_validate(_migrate(raw))
        except ValidationError as exc:
            salvaged = _salvage(raw, exc)
            if salvaged is not None:
                settings, dropped = salvaged
                aside = self._move_aside()
                msg = (
                    f"Settings file {self.path} had invalid values ({', '.join(dropped)}); those were reset "
                    f"to their defaults and the other settings kept. The original was moved to {aside}."
                )
                log.info(msg)  # shown once, by whoever reads ``warnings`` (not also by logging's stderr)
                self.warnings.append(msg)
                try:
                    self.save(settings)
                except OSError:
                    log.warning("could not write the repaired settings to %s", self.path, exc_info=True)
                return settings
            return self._reset(exc)
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep for json
            return self._reset(exc)

    def _move_aside(self) -> Path:
        aside = aside_path(self.path)  # unique: two files moved aside in one second do not collide
        try:
            os.replace(self.path, aside)
        except OSError:
            aside = self.path
        return aside

    def _reset(self, exc: Exception) -> Settings:
        aside = self._move_aside()
        why = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        msg = f"Settings file {self.path} could not be read ({why}); it was moved to {aside} and defaults are used."
        log.info(msg)
        self.warnings.append(msg)
        return Settings()

    def save(self, settings: Settings) -> None:
        """Write atomically: temp file in the same folder, fsync, then rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = settings.model_dump(mode="json")
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
