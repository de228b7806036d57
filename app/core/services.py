"""The composition root: builds paths, settings, secrets, providers, prices, ledger, history
and the engine once, for the CLI, the ``LLMModel`` facade, the UI and the self-test."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from app.core.engine import Engine
from app.core.history import HistoryStore
from app.core.paths import AppPaths
from app.core.pricing import PriceTable
from app.core.provider import EndpointProvider, ProviderContext, ProviderRegistry
from app.core.runs import RunScheduler
from app.core.secrets import SecretStore
from app.core.settings import Settings, SettingsStore
from app.core.types import PROVIDER_IDS, ModelInfo
from app.core.usage import UsageLedger

log = logging.getLogger(__name__)

BUNDLED_MODEL_ID = "local:smollm2"
FALLBACK_MODEL_ID = "mock:echo"
DEFAULT_OPENAI_MODEL = "openai:gpt-4o-mini"


@dataclass
class ModelListing:
    """All models from every provider; ``errors`` maps a provider/endpoint to its error text."""

    models: list[ModelInfo]
    errors: dict[str, str]


@dataclass
class Services:
    """Everything the app runs on. Build with :meth:`create`; close with :meth:`aclose`."""

    paths: AppPaths
    settings_store: SettingsStore
    settings: Settings
    secrets: SecretStore
    registry: ProviderRegistry
    prices: PriceTable
    ledger: UsageLedger
    history: HistoryStore
    engine: Engine
    scheduler: RunScheduler

    @classmethod
    def create(cls, paths: AppPaths | None = None, *, secrets: SecretStore | None = None) -> Services:
        """Build the services (no heavy imports: providers load on first use)."""
        paths = (paths or AppPaths.default()).ensure()
        store = SettingsStore(paths.settings_file)
        settings = store.load()
        secrets = secrets or SecretStore(session_only=settings.session_only_secrets)
        registry = ProviderRegistry(ProviderContext(settings=settings, secrets=secrets, paths=paths))
        prices = PriceTable.load(settings.price_overrides, strict=False)
        ledger = UsageLedger(paths.usage_db)
        history = HistoryStore(paths.history_db)
        engine = Engine(registry, prices, ledger)
        scheduler = RunScheduler(engine)
        return cls(paths, store, settings, secrets, registry, prices, ledger, history, engine, scheduler)

    def openai(self) -> EndpointProvider:
        """The ``openai`` provider (endpoint tests, model lists per endpoint)."""
        return cast(EndpointProvider, self.registry.get("openai"))

    def warnings(self) -> list[str]:
        """Problems found at start (corrupt files moved aside, bad price overrides)."""
        found: list[str] = list(self.settings_store.warnings)
        for part in (self.prices, self.ledger, self.history):
            found.extend(getattr(part, "warnings", []) or [])
        return found

    def save_settings(self) -> None:
        """Persist the current settings atomically."""
        self.settings_store.save(self.settings)

    def default_model(self) -> str:
        """The settings' default, else OpenAI when a key exists, else the bundled model."""
        if self.settings.default_model:
            return self.settings.default_model
        try:
            if self.secrets.get("openai"):
                return DEFAULT_OPENAI_MODEL
        except Exception:  # no keyring: fall through to the offline default
            log.debug("no keyring while choosing the default model", exc_info=True)
        return BUNDLED_MODEL_ID if local_models_available() else FALLBACK_MODEL_ID

    async def list_all_models(self) -> ModelListing:
        """Ask every provider for its models; a provider that fails is reported, not raised."""
        models: list[ModelInfo] = []
        errors: dict[str, str] = {}
        for pid in reversed(PROVIDER_IDS):  # the offline, in-process ones first
            try:
                provider = self.registry.get(pid)
                models.extend(await provider.list_models())
            except Exception as exc:  # one provider's failure must not hide the others
                errors[pid] = str(exc)
        return ModelListing(models, errors)

    async def aclose(self) -> None:
        """Stop every run, then close providers and databases."""
        await self.scheduler.aclose()
        await self.registry.aclose()
        self.ledger.close()
        self.history.close()


def local_models_available() -> bool:
    """True when torch and transformers can be imported (the full flavour)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
