"""``python -m app serve``: it prints the address and models, Ctrl+C stops it (exit 0), refused
setups exit 2 with what to do; ``--lora NAME=PATH[:SCALE]`` is checked before it starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from app.cli import main
from app.cli.serve import parse_named_lora
from app.core.errors import InvalidParams
from tests.support.processes import default_sigint

ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_its_address_answers_and_stops_on_ctrl_c(app_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0", "--no-auth"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until it serves (the pipe closes if it dies)
        assert first.startswith("Serving on http://127.0.0.1:"), first + (proc.stderr.read() if proc.stderr else "")
        url = first.split()[-1]
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("Key: none") and "mock:echo" in lines[1]
        body = json.dumps({"model": "mock:echo", "messages": [{"role": "user", "content": "hi there"}]}).encode()
        req = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as r:
            assert json.loads(r.read())["choices"][0]["message"]["content"] == "hi there"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "200 · mock:echo" in err and "Server stopped." in err and "Traceback" not in err


def test_non_loopback_without_a_key_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--no-auth", "--port", "0"]) == 2
    assert "without a key" in capsys.readouterr().err


def test_api_key_env_must_be_set(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_SERVE_KEY", raising=False)
    assert main(["serve", "--api-key-env", "MY_SERVE_KEY", "--port", "0"]) == 2
    assert "MY_SERVE_KEY is not set" in capsys.readouterr().err


def test_show_key_makes_one_key_and_keeps_it(capsys: pytest.CaptureFixture[str], app_home: Path) -> None:
    assert main(["serve", "--show-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("sk-local-") and len(key) > 30
    assert main(["serve", "--show-key"]) == 0
    assert capsys.readouterr().out.strip() == key
    assert not [p for p in app_home.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]


def test_named_lora_is_parsed_and_checked(tmp_path: Path) -> None:
    name, spec = parse_named_lora(f"caps={tmp_path}:0.5")
    assert (name, spec.path, spec.scale, spec.name) == ("caps", str(tmp_path), 0.5, "caps")
    for bad in (str(tmp_path), f"=x{tmp_path}", f"a b={tmp_path}", f"caps={tmp_path / 'missing'}"):
        with pytest.raises(InvalidParams):
            parse_named_lora(bad)
