"""Model prices: ``resources/pricing.json`` plus the user's overrides, in exact Decimal arithmetic.

Prices are USD per 1M tokens. Only the ``openai`` provider is priced from the table; mock,
local and Hugging Face models are free (0); anything unknown costs ``None`` (shown as
"unknown", never as a guess). A dated snapshot such as ``gpt-4o-mini-2024-07-18`` uses the
price of its base name; other variants (``gpt-4o-search-preview``) are unknown unless listed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from app.core.errors import ConfigError
from app.core.events import UsageReport
from app.core.paths import resources_dir
from app.core.registry import is_free, is_priced
from app.core.types import ModelRef

if TYPE_CHECKING:
    from app.core.settings import EndpointConfig, PriceOverride

PER_TOKENS = Decimal(1_000_000)
# What may follow a known name and still mean the same model: dates, -MMDD, -latest, -preview.
_SNAPSHOT_SUFFIX = re.compile(r"^(?:-(?:\d{4}-\d{2}-\d{2}|\d{4}|latest|preview))+$")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per 1M tokens. ``cached_input`` None means cached tokens are billed as input."""

    input: Decimal
    cached_input: Decimal | None
    output: Decimal

    def cost(self, usage: UsageReport) -> Decimal:
        """Exact cost of ``usage``; cached prompt tokens are billed at ``cached_input``."""
        cached = max(0, min(usage.cached_prompt_tokens, usage.prompt_tokens))
        uncached = usage.prompt_tokens - cached
        cached_price = self.input if self.cached_input is None else self.cached_input
        total = uncached * self.input + cached * cached_price + usage.completion_tokens * self.output
        return total / PER_TOKENS


def _decimal(value: Any, where: str, hint: str) -> Decimal:
    try:
        if isinstance(value, float | bool):
            raise InvalidOperation  # floats are inexact: prices must be decimal strings
        dec = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(f"{where}: '{value}' is not a price.", hint=hint) from exc
    if not dec.is_finite() or dec < 0:
        raise ConfigError(f"{where}: '{value}' is not a price (must be 0 or more).", hint=hint)
    return dec


def _price(entry: Any, where: str, hint: str) -> ModelPrice:
    if not isinstance(entry, Mapping) or "input" not in entry or "output" not in entry:
        raise ConfigError(f"{where} needs 'input' and 'output' prices.", hint=hint)
    cached = entry.get("cached_input")
    return ModelPrice(
        input=_decimal(entry["input"], f"{where} input", hint),
        cached_input=None if cached is None else _decimal(cached, f"{where} cached_input", hint),
        output=_decimal(entry["output"], f"{where} output", hint),
    )


def default_pricing_path() -> Path:
    """The bundled price table."""
    return resources_dir() / "pricing.json"


class PriceTable:
    """The price table with overrides. Build it with :meth:`load`."""

    def __init__(
        self,
        models: Mapping[str, ModelPrice],
        *,
        checked: str = "",
        source: str = "",
        overrides: Mapping[str, ModelPrice] | None = None,
    ) -> None:
        self._models = {k.lower(): v for k, v in models.items()}
        self._overrides = {k.strip().lower(): v for k, v in (overrides or {}).items()}
        self.checked = checked
        """The date (YYYY-MM-DD) the bundled prices were checked."""
        self.source = source
        """Where the bundled prices come from."""
        self.warnings: list[str] = []
        """Overrides skipped by a non-strict :meth:`load`, as user messages."""

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, PriceOverride] | None = None,
        path: Path | None = None,
        *,
        strict: bool = True,
    ) -> PriceTable:
        """Read the table (default: resources/pricing.json) and apply ``overrides``.

        ``overrides`` are keyed by model name (``gpt-4o``) or full id (``openai:gpt-4o``).
        A bad file raises :class:`ConfigError` that says what to fix; so does a bad override,
        unless ``strict`` is False: then it is skipped and described in ``warnings`` (use that
        at app start so one typo in the settings cannot stop the app).
        """
        path = path or default_pricing_path()
        file_hint = f"Fix or restore {path} (reinstalling the app restores it)."
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"The price table {path} cannot be read ({exc.strerror}).", hint=file_hint) from exc
        except ValueError as exc:
            raise ConfigError(f"The price table {path} is not valid JSON ({exc}).", hint=file_hint) from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
            raise ConfigError(f"The price table {path} has no 'models' object.", hint=file_hint)
        if raw.get("unit", "per 1M tokens") != "per 1M tokens" or raw.get("currency", "USD") != "USD":
            raise ConfigError(f"The price table {path} must be in USD per 1M tokens.", hint=file_hint)
        models = {name: _price(entry, f"Price of '{name}' in {path.name}", file_hint) for name, entry in raw["models"].items()}
        parsed: dict[str, ModelPrice] = {}
        warnings: list[str] = []
        for key, ov in (overrides or {}).items():
            data = ov.model_dump() if hasattr(ov, "model_dump") else dict(cast(Mapping[str, Any], ov))
            try:
                parsed[key] = _price(
                    data,
                    f"Your price override for '{key}'",
                    "Fix it in Settings > Prices: write prices as numbers like 2.50 (USD per 1M tokens).",
                )
            except ConfigError as exc:
                if strict:
                    raise
                warnings.append(exc.user_message())
        table = cls(models, checked=str(raw.get("checked", "")), source=str(raw.get("source", "")), overrides=parsed)
        table.warnings = warnings
        return table

    def models(self) -> dict[str, ModelPrice]:
        """The bundled prices by model name (overrides not applied)."""
        return dict(self._models)

    def override_for(self, model: ModelRef) -> ModelPrice | None:
        """The user's override for ``model`` (by full id, then by model name), or None."""
        full = f"{model.provider}:{model.name}".lower()
        return self._overrides.get(full) or self._overrides.get(model.name.strip().lower())

    def price_for(self, model: ModelRef) -> ModelPrice | None:
        """The price of ``model``: a full-id override, else (openai only) the model name in
        overrides then the table, exact first, then a dated snapshot of a known name."""
        full = f"{model.provider}:{model.name}".lower()
        if full in self._overrides:
            return self._overrides[full]
        if not is_priced(model.provider):
            return None
        name = model.name.strip().lower()
        for table in (self._overrides, self._models):
            if name in table:
                return table[name]
        for table in (self._overrides, self._models):
            best = max(
                (k for k in table if ":" not in k and name.startswith(k) and _SNAPSHOT_SUFFIX.match(name[len(k) :])),
                key=len,
                default=None,
            )
            if best is not None:
                return table[best]
        return None

    def cost(self, model: ModelRef, usage: UsageReport, endpoint: EndpointConfig | None = None) -> Decimal | None:
        """Exact USD cost of ``usage`` on ``model`` served at ``endpoint`` (None: OpenAI's own
        API): 0 for free providers, None when the price is unknown.

        OpenAI's price table applies to OpenAI's own endpoint only. Another OpenAI-compatible
        server is free when it runs on this machine and unknown elsewhere, unless the user
        set an override for the full model id (or the model name).
        """
        if is_priced(model.provider) and endpoint is not None and not is_openai_endpoint(endpoint):
            override = self.override_for(model)
            if override is not None:
                return override.cost(usage)
            return Decimal(0) if is_loopback(endpoint.base_url) else None
        price = self.price_for(model)
        if price is not None:
            return price.cost(usage)
        if is_free(model.provider):
            return Decimal(0)
        return None


def is_openai_endpoint(endpoint: EndpointConfig) -> bool:
    """True for OpenAI's own API (the built-in profile, or a base URL on api.openai.com)."""
    return endpoint.kind == "openai" or "api.openai.com" in endpoint.base_url


def is_loopback(url: str) -> bool:
    """True for http(s) URLs on this machine (localhost, 127.0.0.0/8, ::1)."""
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")
