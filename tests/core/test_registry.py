"""The provider registry: adding a provider is one module and one entry, and every list of
providers (CLI titles, picker groups and hints, ModelType, lanes, pricing) follows it; no code
outside a provider's own modules and the registry compares provider ids."""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.core import registry
from app.core.events import Finished, StreamEvent, TextDelta, UsageReport
from app.core.registry import Capabilities, ProviderSpec
from app.core.types import ChatMessage, GenerationRequest, ModelInfo, ModelRef, TokenCount

ROOT = Path(__file__).resolve().parents[2]
FAKE = ProviderSpec("fake", "tests.core.test_registry:FakeProvider", Capabilities(prefix=True), free=True,
                    label="Fake (a test)", group="Fake models", hints=("fake:one",))  # fmt: skip


class FakeProvider:
    """A provider in one small module: two models, a fixed answer, words as tokens."""

    id = "fake"

    def __init__(self, context: Any = None) -> None:
        self.context = context

    async def list_models(self) -> list[ModelInfo]:
        return [self.model_info("one"), self.model_info("two")]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        for word in ("fake", " answer"):
            yield TextDelta(word)
            await asyncio.sleep(0)
        yield UsageReport(3, 2)
        yield Finished("stop")

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        return TokenCount(1 + sum(len(m.content.split()) for m in messages), True, "words")

    def model_info(self, model: str) -> ModelInfo:
        return ModelInfo(ModelRef("fake", model), model.title(), state="ready")

    async def aclose(self) -> None:
        return None


@pytest.fixture
def fake_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderSpec]:
    monkeypatch.setattr(registry, "PROVIDERS", (*registry.PROVIDERS, FAKE))
    yield FAKE


def test_the_registry_declares_what_each_provider_can_do() -> None:
    caps = {p.id: p.caps for p in registry.providers()}
    assert set(caps) == {"openai", "huggingface", "local", "mock"}
    assert [p for p, c in caps.items() if c.endpoints] == ["openai"] == [registry.endpoint_provider_id()]
    assert {p for p, c in caps.items() if c.adapters} == {"huggingface", "local"} == {
        p.id for p in registry.providers() if p.in_process}  # fmt: skip
    assert [p for p, c in caps.items() if c.server_token_count] == ["openai"]
    assert all(c.logprobs and c.prefix for c in caps.values())
    assert caps["openai"].tools and caps["openai"].structured_output  # tools / response_format sent
    assert {"huggingface", "local"} <= {p for p, c in caps.items() if c.tools and c.structured_output}
    assert caps["mock"].tools and not caps["mock"].structured_output  # mock:tools calls the offered tools
    assert ModelRef.parse("local:smollm2").caps is caps["local"] and ModelRef.parse("openai:x").caps.endpoints
    assert registry.capabilities("nope") == Capabilities() and registry.provider_spec("nope") is None


def test_a_registered_provider_shows_up_everywhere(fake_registered: ProviderSpec, run: Callable[..., Any]) -> None:
    from app.cli.count import count_for
    from app.cli.models import format_listing
    from app.core.provider import ProviderRegistry
    from app.core.services import Services
    from app.ui.widgets.model_picker import _group_rank, group_of, group_order, typed_hints

    ref = ModelRef.parse("fake:one")  # a known provider id now
    assert ref.caps.prefix and not ref.caps.endpoints and not ref.in_process and not ref.takes_adapters
    info = FakeProvider().model_info("one")
    assert "Fake (a test):\n  fake:one" in format_listing([info], {})
    assert group_of(info) == "Fake models" and group_order()[-1] == "Fake models"
    assert _group_rank("Fake models") > _group_rank("Mock (testing)") and "fake:one" in typed_hints()
    assert "fake" in ProviderRegistry(None).ids  # type: ignore[arg-type]

    services = Services.create()
    try:
        listing = run(services.list_all_models(probe=False))
        assert [str(m.ref) for m in listing.models if m.ref.provider == "fake"] == ["fake:one", "fake:two"]
        assert services.scheduler.lane_key(GenerationRequest(ref, ())) == "fake"
        result = run(services.scheduler.run(GenerationRequest(ref, (ChatMessage("user", "hi there"),))))
        assert result.text == "fake answer"
        assert services.engine.cost(ref, UsageReport(3, 2)) == Decimal(0)  # declared free
        [rec] = services.ledger.recent()
        assert (rec.provider, rec.model, rec.prompt_tokens, rec.cost_usd) == ("fake", "one", 3, "0")
        shim = SimpleNamespace(registry=services.registry)
        assert count_for(shim, ref, "two words", chat=False) == TokenCount(2, True, "words")  # type: ignore[arg-type]
    finally:
        run(services.aclose())


def test_model_type_derives_from_the_registry() -> None:
    # ModelType is made when app.llm is imported: register first, in a fresh interpreter
    code = ("from app.core import registry\n"
            "registry.PROVIDERS = (*registry.PROVIDERS, registry.ProviderSpec('fake', 'x:y'))\n"
            "from app.llm import ModelType\n"
            "import json; print(json.dumps([[t.value for t in ModelType], ModelType.FAKE is ModelType('fake')]))\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == [["openai", "huggingface", "local", "mock", "fake"], True]


# -- the rule: provider ids are compared only in their own modules and the registry ---------------

REGISTRY_FILES = {"app/core/registry.py", "app/core/types.py", "app/core/provider.py"}
NOT_PROVIDER_IDS = {  # the same words meaning something else (path, comparison): why it stays
    ("app/cli/keys.py", "text.lower() == 'openai'"): "the OpenAI key's secret name",
    ("app/ui/widgets/keys_dialog.py", "'openai' not in entries"): "the OpenAI key's secret name",
    ("app/ui/widgets/keys_dialog.py", "e.secret_name != 'openai'"): "the OpenAI key's secret name",
    ("app/core/grid/entries.py", "prefix in ('openai', 'ollama')"): "promptfoo's provider ids in a grid file",
}


def own_modules() -> set[str]:
    """Each provider's own modules: app/providers/<id>*.py and the module its factory names."""
    own = {f"{p.factory.partition(':')[0].replace('.', '/')}.py" for p in registry.providers()}
    for spec in registry.providers():
        own |= {str(f.relative_to(ROOT)) for f in (ROOT / "app/providers").glob(f"{spec.id}*.py")}
    return own


def provider_id_comparisons(path: Path) -> list[str]:
    """Comparisons (==, !=, in, not in) with a provider id literal, except an endpoint's kind."""
    ids = set(registry.provider_ids())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        literals = [e for o in operands for e in (o.elts if isinstance(o, ast.Tuple | ast.List | ast.Set) else [o])
                    if isinstance(e, ast.Constant) and e.value in ids]  # fmt: skip
        kind = any(isinstance(o, ast.Attribute) and o.attr == "kind" or "'kind'" in ast.unparse(o) for o in operands)
        if literals and not kind:
            found.append(ast.unparse(node))
    return found


def test_no_provider_id_is_compared_outside_its_modules_and_the_registry() -> None:
    allowed = REGISTRY_FILES | own_modules()
    offending = [f"{rel}: {text}" for f in sorted((ROOT / "app").rglob("*.py"))
                 if (rel := str(f.relative_to(ROOT))) not in allowed
                 for text in provider_id_comparisons(f) if (rel, text) not in NOT_PROVIDER_IDS]  # fmt: skip
    assert offending == [], "ask the registry (ref.caps, provider_spec) instead of comparing provider ids"


def test_the_rule_catches_a_comparison(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f(ref, ep):\n    return ref.provider == 'openai' or ep.kind == 'openai' "
                      "or ref.provider in ('local', 'huggingface')\n")  # fmt: skip
    assert provider_id_comparisons(sample) == ["ref.provider == 'openai'", "ref.provider in ('local', 'huggingface')"]
    assert "app/providers/transformers.py" in own_modules() and "app/providers/openai_tokens.py" in own_modules()
