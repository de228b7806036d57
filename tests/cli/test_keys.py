"""``python -m app keys``: keys go to the keyring via stdin, are listed masked, never land in files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from app.cli import main
from app.core.secrets import SERVICE, MemoryKeyring

KEY = "sk-test-CLI-0123456789abcdWXYZ"


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """An in-memory keyring as the process-wide backend (restored afterwards)."""
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(before)


def all_files_text(root: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file())


def test_set_list_delete(
    memory_keyring: MemoryKeyring,
    app_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(KEY + "\n"))
    assert main(["keys", "set", "openai"]) == 0
    out, err = capsys.readouterr()
    assert memory_keyring.get_password(SERVICE, "openai") == KEY
    assert "sk-…WXYZ" in out
    assert KEY not in out + err

    assert main(["keys", "list"]) == 0
    out, err = capsys.readouterr()
    assert "openai" in out and "sk-…WXYZ" in out and "(keyring)" in out
    assert KEY not in out + err
    assert KEY not in all_files_text(app_home)

    assert main(["keys", "delete", "openai"]) == 0
    assert "Deleted the key for openai" in capsys.readouterr().out
    assert memory_keyring.get_password(SERVICE, "openai") is None
    assert main(["keys", "list"]) == 0
    assert "No keys stored" in capsys.readouterr().out


def test_endpoint_names_map_to_entries(
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret-for-vllm-1234"))
    assert main(["keys", "set", "vllm"]) == 0  # an endpoint from the settings, any case
    assert memory_keyring.get_password(SERVICE, "endpoint:vLLM") == "secret-for-vllm-1234"
    monkeypatch.setattr(sys, "stdin", io.StringIO("another-secret-5678"))
    assert main(["keys", "set", "endpoint:my-box"]) == 0
    assert memory_keyring.get_password(SERVICE, "endpoint:my-box") == "another-secret-5678"
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "endpoint:vLLM" in out and "endpoint:my-box" in out and "…5678" in out
    assert "another-secret" not in out


def test_unknown_name_and_empty_key(
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["keys", "set", "nowhere"]) == 2
    assert "neither 'openai' nor an endpoint" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["keys", "set", "openai"]) == 2
    assert "No key was given" in capsys.readouterr().err
    assert main(["keys", "set"]) == 2
    assert "needs a name" in capsys.readouterr().err
    assert memory_keyring.entries == {}


def test_environment_key_is_listed_as_such(
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-000000001111")
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "sk-…1111" in out and "(environment)" in out and "from-env" not in out


def test_no_keyring_is_a_clear_error_and_writes_no_file(app_home: Path) -> None:
    """A subprocess with keyring's 'fail' backend: exit 1, the NoKeyringError message, no file."""
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "app", "keys", "set", "openai"],
        input=KEY + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=root,
    )
    assert proc.returncode == 1
    assert "No secure keyring is available" in proc.stderr
    assert "Secret Service" in proc.stderr  # the hint says what to do
    assert "Traceback" not in proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    assert KEY not in all_files_text(app_home)


def test_delete_with_only_an_environment_key_says_it_stays_in_use(
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is stored, so nothing is 'deleted': the environment key is still used."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert main(["keys", "delete", "openai"]) == 0
    out, err = capsys.readouterr()
    assert "Deleted" not in out
    assert "No key stored for openai" in out and "OPENAI_API_KEY" in out
    assert KEY not in out + err


def test_no_keyring_error_on_the_command_line_says_to_use_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """'Choose session only' is a window option; the CLI user is told about OPENAI_API_KEY."""
    from keyring.backends import fail

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        assert main(["ask", "-m", "openai:gpt-4o", "hi"]) == 1
    finally:
        keyring.set_keyring(before)
    err = capsys.readouterr().err
    assert "No secure keyring is available" in err
    assert "OPENAI_API_KEY=" in err and "Traceback" not in err
