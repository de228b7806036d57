"""The composition root: builds paths, settings, secrets, providers, prices, ledger, history
and the engine once, for the CLI, the ``LLMModel`` facade, the UI and the self-test."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from app.core import endpoint_status
from app.core.endpoint_status import EndpointState
from app.core.engine import Engine
from app.core.errors import AppError
from app.core.history import HistoryStore
from app.core.paths import AppPaths
from app.core.pricing import PriceTable
from app.core.provider import EndpointProvider, ProviderContext, ProviderRegistry, as_endpoints
from app.core.registry import endpoint_provider_id, provider_ids
from app.core.secrets import SecretStore
from app.core.settings import Settings, SettingsStore
from app.core.types import ModelInfo, ModelRef
from app.core.usage import UsageLedger

if TYPE_CHECKING:
    from app.core.runs import RunScheduler

log = logging.getLogger(__name__)

BUNDLED_MODEL_ID = "local:smollm2"
FALLBACK_MODEL_ID = "mock:echo"
DEFAULT_OPENAI_MODEL = "openai:gpt-4o-mini"


@dataclass
class ModelListing:
    """All models from every provider; ``errors`` maps a provider to its error text;
    ``endpoints`` has the state of every OpenAI-compatible endpoint listed (enabled ones,
    and switched-off local servers found running), by name."""

    models: list[ModelInfo]
    errors: dict[str, str]
    endpoints: dict[str, EndpointState] = field(default_factory=dict)


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
    probe_local_servers: bool = False
    """Look for the switched-off local servers when listing (the window does; scripts do not)."""
    _scheduler: RunScheduler | None = field(default=None, init=False, repr=False)

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
        try:
            history = HistoryStore(paths.history_db)
        except BaseException:  # e.g. StorageBusy: another instance holds the history; try again later
            ledger.close()
            raise
        return cls(paths, store, settings, secrets, registry, prices, ledger, history, Engine(registry, prices, ledger))

    @property
    def scheduler(self) -> RunScheduler:
        """The run scheduler over :attr:`engine`, built on first use (its run events, ~14
        dataclasses, are not needed before the window is usable)."""
        if self._scheduler is None:
            from app.core.runs import RunScheduler

            self._scheduler = RunScheduler(self.engine)
        return self._scheduler

    def openai(self) -> EndpointProvider:
        """The provider that serves the endpoints (``openai``: endpoint tests, model lists per endpoint)."""
        return cast(EndpointProvider, self.registry.get(endpoint_provider_id()))

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

    def start_model(self) -> tuple[str, str | None]:
        """The model and endpoint the window starts on: the settings' default; else the one it
        used last, while its endpoint still exists; else :meth:`default_model`, which asks the
        keyring (slow at start: importing keyring and finding its backend), so only the first
        start asks."""
        settings = self.settings
        if settings.default_model:
            return settings.default_model, None
        model, endpoint = settings.last_model, settings.last_endpoint
        if model:
            try:
                ModelRef.parse(model)
                if endpoint is not None:
                    settings.resolve_endpoint(endpoint)
            except AppError:
                log.debug("the remembered model %s at %s is gone", model, endpoint)
            else:
                return model, endpoint
        return self.default_model(), None

    async def list_all_models(self, *, probe: bool | None = None) -> ModelListing:
        """Ask every provider for its models; a provider that fails is reported, not raised.
        Every enabled endpoint gets a state; with ``probe`` (default:
        :attr:`probe_local_servers`) the switched-off local server profiles (Ollama, LM Studio, llama.cpp, vLLM) are looked for on their ports at the
        same time, quietly, and those that answer are listed too."""
        if probe is None:
            probe = self.probe_local_servers
        if not self.secrets.session_only:  # import keyring and find its backend off the GUI thread
            await asyncio.to_thread(self.secrets.available)
        probing = asyncio.ensure_future(endpoint_status.probe(self.settings.endpoints)) if probe else None
        models: list[ModelInfo] = []
        errors: dict[str, str] = {}
        for pid in reversed(provider_ids()):  # the offline, in-process ones first
            try:
                provider = self.registry.get(pid)
                models.extend(await provider.list_models())
            except Exception as exc:  # one provider's failure must not hide the others
                errors[pid] = str(exc)
        endpoints = self._endpoint_states(models)
        vague = [st for st in endpoints.values()
                 if not st.ok and any(w in st.detail.lower() for w in endpoint_status.VAGUE)]  # fmt: skip
        if vague:  # "All connection attempts failed": connect once to say why
            urls = [self.settings.resolve_endpoint(st.name).base_url for st in vague]
            reasons = await asyncio.gather(*(asyncio.to_thread(endpoint_status.diagnose, u) for u in urls))
            for st, why in zip(vague, reasons, strict=True):
                if why is not None:
                    endpoints[st.name] = EndpointState(st.name, why, False, st.detail)
        serving = endpoint_provider_id()
        if endpoints and serving in errors and not any(st.ok for st in endpoints.values()):
            errors.pop(serving)  # "no endpoint answered": each endpoint says why
        for found in (await probing) if probing is not None else []:
            if found.name in endpoints:
                continue
            endpoints[found.name] = EndpointState(found.name, "found running", True,
                                                  found.detail + " It is switched off in Settings; its models "
                                                  "work from the picker.", found.models)  # fmt: skip
            models.extend(ModelInfo(ModelRef(serving, mid), f"{mid} ({found.name})", endpoint=found.name,
                                    state="ready", description=f"via {found.name} (found running)")
                          for mid in found.models)  # fmt: skip
        return ModelListing(models, errors, endpoints)

    def _endpoint_states(self, models: list[ModelInfo]) -> dict[str, EndpointState]:
        """The state of every enabled endpoint after the endpoints provider listed them."""
        serving = endpoint_provider_id()
        provider = as_endpoints(self.registry.loaded().get(serving))
        failures = provider.endpoint_errors() if provider is not None else {}
        out: dict[str, EndpointState] = {}
        for ep in self.settings.endpoints:
            if not ep.enabled:
                continue
            listed = [m for m in models if m.ref.provider == serving and m.endpoint == ep.name]
            if ep.name in failures:
                detail = failures[ep.name]
                out[ep.name] = EndpointState(ep.name, endpoint_status.short_state(detail), False, detail)
            elif any(m.state == "needs_key" for m in listed):
                out[ep.name] = EndpointState(ep.name, "needs key", False,
                                             f"No API key is set for {ep.name}: add it in API keys.")  # fmt: skip
            elif provider is None:
                out[ep.name] = EndpointState(ep.name, "not listed", False, "The OpenAI provider is not available.")
            else:
                n = len(listed)
                out[ep.name] = EndpointState(ep.name, "ready" if n else "no models", bool(n),
                                             f"{ep.name} serves {n} model{'' if n == 1 else 's'}.",
                                             tuple(m.ref.name for m in listed))  # fmt: skip
        return out

    async def aclose(self) -> None:
        """Stop every run, then close providers and databases."""
        if self._scheduler is not None:
            await self._scheduler.aclose()
        await self.registry.aclose()
        self.ledger.close()
        self.history.close()


def local_models_available() -> bool:
    """True when torch and transformers can be imported (the full flavour)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
