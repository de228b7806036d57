"""``LLMModel``: the seed's synchronous API over the core engine (mock and loopback OpenAI)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from app.core.errors import AdapterError, AuthError, InvalidModelId, InvalidParams, ModelNotFound
from app.core.secrets import MemoryKeyring
from app.core.services import Services
from app.core.usage import UsageLedger
from app.llm import LLMModel, ModelType
from tests.support.openai_server import OpenAIServer, text


@pytest.fixture
def llm() -> Iterator[LLMModel]:
    model = LLMModel("echo", ModelType.mock)
    try:
        yield model
    finally:
        model.close()


def test_generate_response(llm: LLMModel) -> None:
    assert llm.generate_response("hello facade") == "hello facade"
    assert llm.generate_response("a b c d e", max_new_tokens=2) == "a b"
    assert llm.generate_response("x", model_name="fixed?text=other") == "other"
    assert llm.model_id == "mock:echo"  # a per-call model does not switch


def test_bad_parameters_raise_clear_errors(llm: LLMModel) -> None:
    with pytest.raises(InvalidParams, match="temperature must be between 0 and 2"):
        llm.generate_response("hi", temperature=3.0)
    with pytest.raises(InvalidParams, match="max_tokens"):
        llm.generate_response("hi", max_new_tokens=0)
    with pytest.raises(InvalidModelId, match="Unknown model type"):
        LLMModel("x", "nonsense")


def test_count_tokens(llm: LLMModel) -> None:
    assert llm.count_tokens("one two three") == 3
    llm.switch_model("openai:gpt-4o")
    assert llm.count_tokens("Grüße aus München: 日本語のテキスト") == 12
    llm.switch_model("gpt-4")  # a bare name stays with the current provider
    assert llm.model_id == "openai:gpt-4"
    assert llm.count_tokens("Grüße aus München: 日本語のテキスト") == 14


def test_switch_model_and_info(llm: LLMModel) -> None:
    info = llm.get_model_info()
    assert info["id"] == "mock:echo" and info["state"] == "ready"
    llm.switch_model("markdown")
    assert llm.get_model_info()["id"] == "mock:markdown"
    assert "```python" in llm.generate_response("show me")
    llm.switch_model("mock:fixed?text=switched")
    assert llm.generate_response("x") == "switched"


def test_load_model_checks_the_name() -> None:
    with LLMModel("nope", "mock") as model:
        with pytest.raises(ModelNotFound, match="no mock model 'nope'"):
            model.load_model()
    with LLMModel("echo", "mock") as model:
        model.load_model()


def test_usage_stats_are_real_figures(app_home: Path) -> None:
    with LLMModel("echo", "mock") as model:
        model.generate_response("one two three")
        model.generate_response("four five")
        stats = model.get_token_usage_stats()
    assert stats["requests"] == 2
    assert stats["prompt_tokens"] == (3 + 3) + (2 + 3)
    assert stats["completion_tokens"] == 5
    assert stats["total_tokens"] == 16
    assert stats["cost_usd"] == 0.0
    assert stats["all_time"]["requests"] == 2
    # the same figures are in the ledger on disk
    ledger = UsageLedger(Services.create().paths.usage_db)
    try:
        totals = ledger.totals(model="mock:echo")
        assert (totals.requests, totals.prompt_tokens, totals.completion_tokens) == (2, 11, 5)
    finally:
        ledger.close()
    # a second instance has its own session but sees the ledger's all-time totals
    with LLMModel("echo", "mock") as other:
        other.generate_response("six")
        stats2 = other.get_token_usage_stats()
    assert stats2["requests"] == 1 and stats2["all_time"]["requests"] == 3


def test_shared_services_are_not_closed() -> None:
    services = Services.create()
    try:
        with LLMModel("echo", "mock", services=services) as model:
            assert model.generate_response("shared") == "shared"
        assert services.ledger.totals().requests == 1  # still open after the facade closed
    finally:
        asyncio.run(services.aclose())


def test_lora_on_a_remote_or_mock_model_is_an_adapter_error(llm: LLMModel) -> None:
    with pytest.raises(AdapterError, match="cannot be applied"):
        llm.apply_lora_adapter("/tmp/adapter")
    llm.switch_model("openai:gpt-4o-mini")
    with pytest.raises(AdapterError, match="local or Hugging Face model"):
        llm.apply_lora_adapter("/tmp/adapter")


def test_closed_model_refuses_work() -> None:
    model = LLMModel("echo", "mock")
    model.close()
    model.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        model.generate_response("hi")


KEY = "sk-facade-session-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=("gpt-4o-mini", "test-model")) as srv:
        yield srv


def test_openai_via_the_loopback_server(server: OpenAIServer) -> None:
    with (
        LLMModel("echo", "mock") as mock,
        LLMModel("gpt-4o-mini", "openai", endpoint=server.base_url) as remote,
    ):
        mock_info, remote_info = mock.get_model_info(), remote.get_model_info()
        assert set(mock_info) == set(remote_info)
        assert remote_info["id"] == "openai:gpt-4o-mini"
        assert remote_info["endpoint"] == server.base_url
        server.enqueue(text("Hi", " there", prompt_tokens=9, completion_tokens=2))
        assert remote.generate_response("hello", max_new_tokens=5, temperature=0.1) == "Hi there"
        body = server.chat_requests[-1].json
        assert body["temperature"] == 0.1 and body["messages"][-1]["content"] == "hello"
        stats = remote.get_token_usage_stats()
        assert (stats["requests"], stats["prompt_tokens"], stats["completion_tokens"]) == (1, 9, 2)
        assert stats["cost_usd"] == 0.0  # loopback servers are free
        remote.load_model()  # the server lists it
        remote.switch_model("not-served")
        with pytest.raises(ModelNotFound, match="no model 'not-served'"):
            remote.load_model()
        with pytest.raises(AdapterError, match="cannot be applied"):
            remote.apply_lora_adapter("/tmp/adapter")


def test_api_key_is_session_only(app_home: Path) -> None:
    ring = MemoryKeyring()
    before = keyring.get_keyring()
    keyring.set_keyring(ring)
    try:
        locked = OpenAIServer(require_key=KEY).start()
        try:
            with LLMModel("gpt-4o-mini", "openai", KEY, endpoint=locked.base_url) as model:
                assert model.generate_response("hi") == "Hello from the loopback server."
            assert locked.chat_requests[-1].authorization == f"Bearer {KEY}"
            with LLMModel("gpt-4o-mini", "openai", endpoint=locked.base_url) as keyless:
                with pytest.raises(AuthError) as info:
                    keyless.generate_response("hi")
            assert KEY not in str(info.value)
        finally:
            locked.stop()
    finally:
        keyring.set_keyring(before)
    assert ring.entries == {}  # nothing went to the keyring
    on_disk = "".join(p.read_bytes().decode("latin-1") for p in app_home.rglob("*") if p.is_file())
    assert KEY not in on_disk


@pytest.fixture(scope="module")
def tiny_local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random Llama folder and a non-zero LoRA adapter for it (no network)."""
    from tests.providers.local_fixtures import build_adapter, build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("llm-tiny") / "tiny-llama")
    adapter = build_adapter(model, tmp_path_factory.mktemp("llm-lora") / "ada", r=4, seed=1)
    return model, adapter


def test_local_model_with_lora(tiny_local: tuple[Path, Path]) -> None:
    model_dir, adapter_dir = tiny_local
    with LLMModel(str(model_dir), ModelType.local) as llm:
        info = llm.get_model_info()
        with LLMModel("echo", "mock") as mock:
            assert set(info) == set(mock.get_model_info())
        assert info["state"] == "available" and info["supports_adapters"] is True
        llm.load_model()
        assert llm.get_model_info()["state"] == "ready"
        base = llm.generate_response("hello world", max_new_tokens=8, temperature=0.0)
        assert base and base == llm.generate_response(
            "hello world", max_new_tokens=8, temperature=0.0
        )
        assert llm.count_tokens("hello world") > 0

        adapter = llm.apply_lora_adapter(str(adapter_dir))
        assert adapter["rank"] == 4 and adapter["active"] is True
        tuned = llm.generate_response("hello world", max_new_tokens=8, temperature=0.0)
        assert tuned != base  # the adapter changed the answer

        stats = llm.get_token_usage_stats()
        assert stats["requests"] == 3 and stats["completion_tokens"] > 0

        llm.switch_model("mock:echo")  # unloads the local model
        assert llm.generate_response("back to mock") == "back to mock"
        llm.switch_model(f"local:{model_dir}")
        assert llm.get_model_info()["state"] == "available"  # it was unloaded
        assert llm.active_adapters == ()
        assert llm.generate_response("hello world", max_new_tokens=8, temperature=0.0) == base


def test_local_lora_that_does_not_exist(tiny_local: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, _ = tiny_local
    with LLMModel(str(model_dir), "local") as llm:
        with pytest.raises(AdapterError):
            llm.apply_lora_adapter(str(tmp_path / "missing"))
        assert llm.active_adapters == ()


def test_count_tokens_estimate_of_a_short_text_is_not_zero() -> None:
    with LLMModel("/nonexistent/model", ModelType.local) as llm:
        assert llm.count_tokens("abc") == 1
        assert llm.count_tokens("") == 0


def test_the_seeds_upper_case_model_types_are_aliases() -> None:
    assert ModelType.MOCK is ModelType.mock and ModelType.OPENAI is ModelType.openai
    assert ModelType.HUGGINGFACE is ModelType.huggingface and ModelType.LOCAL is ModelType.local
    assert ModelType["MOCK"] is ModelType("mock") and len(list(ModelType)) == 4  # no new members
    with LLMModel("echo", ModelType.MOCK) as model:  # the seed's calls, as it wrote them
        model.load_model()
        assert model.generate_response("seed api", max_new_tokens=10) == "seed api"
        assert model.count_tokens("one two") == 2
        assert model.get_model_info()["provider"] == "mock"
        stats = model._get_token_usage_stats()
        assert stats == model.get_token_usage_stats()
        assert stats["requests"] == 1 and stats["completion_tokens"] == 2
    with LLMModel("echo", "MOCK") as model:
        assert model.model_id == "mock:echo"


CLOSE_SCRIPT = """
import sys
from app.core.services import Services
from app.llm import LLMModel, ModelType

url, shared = sys.argv[1], sys.argv[2] == "shared"
services = Services.create() if shared else None
with LLMModel("test-model", ModelType.OPENAI, endpoint=url, services=services) as llm:
    print(llm.generate_response("hi"), flush=True)
    print(llm.generate_response("again"), flush=True)
print("closed", flush=True)
"""


@pytest.mark.parametrize("services", ["own", "shared"])
def test_closing_after_an_openai_generation_leaves_no_pending_task(
    server: OpenAIServer, services: str
) -> None:
    """The SDK leaves its stream's async generators suspended; closing the facade finalises
    them on its loop, so nothing is destroyed pending ("Task was destroyed but it is pending!")
    or finalised on a closed loop ("Exception ignored")."""
    import subprocess
    import sys

    server.enqueue(text("Hello", " there"), text("Once", " more"))
    run = subprocess.run([sys.executable, "-c", CLOSE_SCRIPT, server.base_url, services],
                         capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["Hello there", "Once more", "closed"]
    assert "Task was destroyed" not in run.stderr
    assert "Exception ignored" not in run.stderr and "Traceback" not in run.stderr


def test_a_model_left_open_is_closed_at_exit() -> None:
    """The at-exit hook closes a model the script did not close, and a closed model's hook is
    gone (an open one would keep nothing alive: the hook holds it weakly)."""
    import atexit
    import gc
    import weakref

    model = LLMModel("echo", ModelType.mock)
    model.generate_response("hi")
    model._at_exit()  # what atexit runs
    assert model._closed
    assert atexit.unregister(model._at_exit) is None  # unregistered by close (no error either way)
    left = LLMModel("echo", ModelType.mock)
    ref = weakref.ref(left)
    hook = left._at_exit
    left.close()
    del left
    gc.collect()
    assert ref() is None
    hook()  # the model is gone: nothing to do


@pytest.mark.slow
def test_a_script_that_never_closes_its_local_model_exits_cleanly(tmp_path: Path) -> None:
    """The bundled model's worker thread, left running into the interpreter's exit, aborted
    the process (SIGABRT: "terminate called without an active exception")."""
    import os
    import subprocess
    import sys

    script = (
        "from app.llm import LLMModel\n"
        "m = LLMModel('smollm2', 'local')\n"
        "for _ in range(2):\n"
        "    print(m.generate_response('Write a short story about a robot.', temperature=0, max_new_tokens=48)[:20])\n"
    )
    env = {**os.environ, "LLM_PLAYGROUND_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "terminate called" not in done.stderr and done.stdout.strip()

