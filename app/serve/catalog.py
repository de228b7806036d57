"""Which models the server offers and what a client's model id runs.

Offered: the in-process models the picker knows (the bundled model, recent local folders and
GGUFs, the Hugging Face cache), the ``mock:`` models, each registered LoRA adapter on each
in-process model as ``BASE+NAME`` (``local:smollm2+allcaps``), and, with ``proxy``, the
configured endpoints' models as ``openai:MODEL@ENDPOINT`` (forwarded with the app's keyring
key, so other tools never hold it). Any other in-process or mock id the providers accept
works too (``local:/path/to/model``, ``mock:lorem?n=50``); remote ids only with ``proxy``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from app.core.errors import AppError, NoSuchModel
from app.core.provider import ProviderRegistry
from app.core.registry import endpoint_provider_id, providers
from app.core.settings import Settings
from app.core.types import AdapterSpec, ModelRef

log = logging.getLogger(__name__)
ADAPTER_SEP = "+"
ENDPOINT_SEP = "@"


@dataclass(frozen=True, slots=True)
class Target:
    """What a model id runs: the model, its endpoint (proxied models) and adapters."""

    ref: ModelRef
    endpoint: str | None = None
    adapters: tuple[AdapterSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Offered:
    """One entry of ``GET /v1/models``."""

    id: str
    owned_by: str


class Catalog:
    """The server's model list and id resolution (adapters may change while it runs)."""

    def __init__(self, registry: ProviderRegistry, settings: Settings, *,
                 adapters: Mapping[str, AdapterSpec] | None = None, proxy: bool = False) -> None:  # fmt: skip
        self.registry = registry
        self.settings = settings
        self.adapters: dict[str, AdapterSpec] = dict(adapters or {})
        self.proxy = proxy

    async def models(self) -> list[Offered]:
        """Every model id a client may send (a provider that fails to list is left out)."""
        out: list[Offered] = []
        remote = endpoint_provider_id()
        for spec in reversed(providers()):  # the offline, in-process ones first
            if spec.id == remote and not self.proxy:
                continue
            try:
                infos = await self.registry.get(spec.id).list_models()
            except Exception:  # one provider's failure must not hide the others
                log.warning("the %s models could not be listed", spec.id, exc_info=True)
                continue
            for info in infos:
                if info.state in ("unavailable", "needs_key"):
                    continue
                if spec.id == remote:
                    suffix = f"{ENDPOINT_SEP}{info.endpoint}" if info.endpoint else ""
                    out.append(Offered(f"{info.ref}{suffix}", info.endpoint or spec.id))
                    continue
                out.append(Offered(str(info.ref), spec.id))
                if spec.in_process:
                    out.extend(Offered(f"{info.ref}{ADAPTER_SEP}{name}", spec.id) for name in sorted(self.adapters))
        return out

    def resolve(self, model_id: str) -> Target:
        """The target of ``model_id``; :class:`NoSuchModel` (404) when this server does not offer it."""
        base, sep, name = model_id.rpartition(ADAPTER_SEP)
        if sep and name in self.adapters:
            target = self._plain(base, model_id)
            if not target.ref.in_process:
                raise NoSuchModel(f"The model '{model_id}' does not exist: adapters apply to in-process models.",
                                  hint="Name an in-process model before the '+', e.g. local:smollm2+NAME.")  # fmt: skip
            return Target(target.ref, None, (self.adapters[name],))
        return self._plain(model_id, model_id)

    def _plain(self, text: str, model_id: str) -> Target:
        try:
            ref = ModelRef.parse(text)
        except AppError:
            raise NoSuchModel(f"The model '{model_id}' does not exist.",
                              hint="Use one of the ids GET /v1/models lists.") from None  # fmt: skip
        if not ref.caps.endpoints:
            return Target(ref)
        if not self.proxy:
            raise NoSuchModel(f"The model '{model_id}' does not exist: remote models are offered only with --proxy.",
                              hint="Start the server with --proxy to forward requests to the configured endpoints.")  # fmt: skip
        name, sep, endpoint = ref.name.rpartition(ENDPOINT_SEP)
        if sep and name and self.settings.endpoint(endpoint) is not None:
            return Target(ModelRef(ref.provider, name), endpoint)
        return Target(ref)
