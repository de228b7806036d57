"""``models``: every provider's models grouped, or one OpenAI-compatible server's /v1/models."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from app.cli.common import EXIT_OK, run_with_services
from app.core.provider import as_endpoints
from app.core.registry import endpoint_provider_id, provider_spec
from app.core.types import ModelInfo

if TYPE_CHECKING:
    from app.core.services import Services

STATE_LABELS = {
    "ready": "ready",
    "available": "available",
    "needs_key": "needs key",
    "not_downloaded": "not downloaded",
    "loading": "loading",
    "unavailable": "unavailable",
}


def provider_title(provider_id: str) -> str:
    """The heading of a provider's models: its registry label (the id when it has none)."""
    spec = provider_spec(provider_id)
    return (spec.label if spec is not None else "") or provider_id


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``models`` subcommand."""
    p = sub.add_parser(
        "models", help="list models", description="List models from every provider, or one server."
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--endpoint", metavar="NAME", help="list a named endpoint's /v1/models")
    where.add_argument(
        "--base-url", metavar="URL", help="list an OpenAI-compatible server's /v1/models"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_models)


def format_listing(models: list[ModelInfo], errors: dict[str, str]) -> str:
    """Models grouped by provider, then one note per provider that failed."""
    lines: list[str] = []
    groups: dict[str, list[ModelInfo]] = {}
    for info in models:
        groups.setdefault(info.ref.provider, []).append(info)
    width = max((len(str(m.ref)) for m in models), default=10)
    for provider, infos in groups.items():
        lines.append(f"{provider_title(provider)}:")
        for m in infos:
            state = STATE_LABELS.get(m.state, m.state)
            extra = f"  [{m.endpoint}]" if m.endpoint else ""
            extra += f"  (slow path: {m.fast_path})" if m.fast_path else ""
            lines.append(f"  {str(m.ref):<{width}}  {state:<14}  {m.display_name}{extra}")
        lines.append("")
    if not models:
        lines.append("No models found.")
    if errors:
        lines.append("Notes:")
        lines.extend(f"  {name}: {text}" for name, text in errors.items())
    return "\n".join(lines).rstrip() + "\n"


def key_notes(services: Services, models: list[ModelInfo]) -> dict[str, str]:
    """One note per endpoint whose models need a key, saying how to set it."""
    notes: dict[str, str] = {}
    for m in models:
        if m.state != "needs_key" or not m.endpoint:
            continue
        ep = services.settings.endpoint(m.endpoint)
        secret = ep.secret_name if ep is not None else "openai"
        notes.setdefault(m.endpoint, f"needs a key - python -m app keys set {secret}")
    return notes


def run_models(args: argparse.Namespace) -> int:
    """Run ``models``; return the exit code (errors propagate to the CLI's handler)."""
    endpoint = args.endpoint or args.base_url

    async def body(services: Services) -> tuple[list[ModelInfo], dict[str, str]]:
        if endpoint:
            return list(await services.openai().list_endpoint_models(endpoint)), {}
        listing = await services.list_all_models()
        errors = dict(listing.errors)
        serving = endpoint_provider_id()
        endpoints = as_endpoints(services.registry.loaded().get(serving))
        for name, text in (endpoints.endpoint_errors() if endpoints is not None else {}).items():
            errors.setdefault(f"{serving} ({name})", text)
        errors.update(key_notes(services, listing.models))
        return listing.models, errors

    models, errors = run_with_services(body)
    if args.json:
        payload = {"models": [m.to_dict() for m in models], "errors": errors}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_listing(models, errors))
    sys.stdout.flush()
    return EXIT_OK
