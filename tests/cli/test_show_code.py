"""``ask --show-code``: the programs, run against the loopback server (or the same tiny local
model), send the same request as the app, and never contain the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.core.paths import AppPaths
from app.core.secrets import SecretStore
from app.core.settings import Settings, SettingsStore
from tests.cli.test_ask import ledger_rows
from tests.support.openai_server import OpenAIServer, text

KEY = "sk-loopbackkey-0123456789abcdef"


@pytest.fixture
def keyed_server() -> Iterator[OpenAIServer]:
    """A loopback server that wants a key, as the endpoint "Loop" of the settings (key in the keyring)."""
    with OpenAIServer(require_key=KEY, default=text("Hello", " there")) as server:
        paths = AppPaths.default().ensure()
        SettingsStore(paths.settings_file).save(Settings(endpoints=[server.endpoint("Loop", needs_key=True)]))
        SecretStore().set("endpoint:Loop", KEY)
        yield server


ARGS = ["-m", "openai:gpt-4o-mini", "--endpoint", "Loop", "--system", "Be terse", "--temperature", "0.3",
        "--top-p", "0.9", "--max-tokens", "40", "--seed", "5", "--stop", "END", "--stop", "\n\n"]


def show_code(capsys: pytest.CaptureFixture[str], language: str, args: list[str]) -> str:
    assert main(["ask", *args, "--show-code", language, "What's up? It's \"quoted\" & $HOME"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def run_program(command: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(command, capture_output=True, text=True, env={**env, **env_extra}, timeout=120)


def test_python_and_curl_send_the_apps_request_and_hold_no_key(
    keyed_server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", *ARGS, "What's up? It's \"quoted\" & $HOME"]) == 0
    capsys.readouterr()
    (app_request,) = keyed_server.chat_requests
    python = show_code(capsys, "python", ARGS)
    curl = show_code(capsys, "curl", ARGS)
    assert len(keyed_server.chat_requests) == 1 and len(ledger_rows()) == 1  # showing code sends nothing
    for program in (python, curl):
        assert KEY not in program and "LOOP_API_KEY" in program
    (tmp_path / "p.py").write_text(python, encoding="utf-8")
    (tmp_path / "c.sh").write_text(curl, encoding="utf-8")
    result = run_program([sys.executable, str(tmp_path / "p.py")], {"LOOP_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello there")
    result = run_program(["sh", str(tmp_path / "c.sh")], {"LOOP_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert '"content": " there"' in result.stdout.replace('":"', '": "') and "data: [DONE]" in result.stdout
    _, from_python, from_curl = keyed_server.chat_requests
    assert from_python.json == app_request.json
    assert from_curl.json == app_request.json
    assert from_python.authorization == from_curl.authorization == app_request.authorization == f"Bearer {KEY}"
    assert app_request.json["messages"] == [{"role": "system", "content": "Be terse"},
                                            {"role": "user", "content": "What's up? It's \"quoted\" & $HOME"}]


def test_show_code_says_when_there_is_no_program(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "--show-code", "python", "hi"]) == 2
    assert "mock provider runs inside the app" in capsys.readouterr().err
    assert main(["ask", "-m", "local:smollm2", "--show-code", "curl", "hi"]) == 2
    assert "no curl command" in capsys.readouterr().err
    assert not ledger_rows()


@pytest.fixture(scope="module")
def tiny_two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from tests.providers.local_fixtures import build_adapter, build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("code-tiny") / "tiny-llama")
    root = tmp_path_factory.mktemp("code-lora")
    return model, build_adapter(model, root / "ada", r=4, seed=1), build_adapter(model, root / "adb", r=8, seed=2)


@pytest.mark.parametrize("two", [False, True], ids=["one adapter", "two adapters"])
def test_the_transformers_program_generates_the_apps_answer(
    tiny_two: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], two: bool
) -> None:
    from app.core.paths import AppPaths
    from app.core.settings import SettingsStore

    store = SettingsStore(AppPaths.default().ensure().settings_file)  # the app in float32, as the program
    settings = store.load()
    settings.local.dtype = "float32"
    store.save(settings)
    model, a, b = tiny_two
    args = ["-m", f"local:{model}", "--temperature", "0", "--max-tokens", "10", "--lora", f"{a}:0.7"]
    if two:
        args += ["--lora", f"{b}:0.5"]
    assert main(["ask", *args, "--json", "hello world"]) == 0
    answer = json.loads(capsys.readouterr().out.splitlines()[-1])["text"]
    program = tmp_path / "gen.py"
    assert main(["ask", *args, "--show-code", "transformers", "hello world"]) == 0
    program.write_text(capsys.readouterr().out, encoding="utf-8")
    result = run_program([sys.executable, str(program)], {})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.rstrip("\n") == answer
