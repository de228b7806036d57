"""A key inside a base URL (issue 18, item 1), end to end with the real ``python -m app`` in
subprocesses against the loopback server, ``OPENAI_LOG=debug`` set: the userinfo form
(``http://user:KEY@host/v1``) is sent as ``Authorization: Bearer KEY``, the query form
(``?api_key=KEY``) as that query parameter on the real request URL, both on
``/v1/chat/completions``; through ``--base-url``, ``OPENAI_BASE_URL`` and a grid file, with
conversations, ``models``, get-code, exports; and the key appears in no output and no file
under the profile. Malformed base URLs exit 2 before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.openai_server import OpenAIServer, RecordedRequest

ROOT = Path(__file__).resolve().parents[2]
USER_KEY = "sk-userinfo-" + "Q7w8" * 6
QUERY_KEY = "sk-querykey-" + "P3o4" * 6


def app(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` to the end, with the SDK's debug log on."""
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**base, "OPENAI_LOG": "debug", **(env or {})})  # fmt: skip


def keyed_url(server: OpenAIServer, form: str) -> str:
    host = server.base_url.removeprefix("http://")
    return f"http://user:{USER_KEY}@{host}" if form == "userinfo" else f"{server.base_url}?api_key={QUERY_KEY}"


def sent_with_key(req: RecordedRequest, form: str) -> bool:
    """The request carries the key the way its form says (and never as Basic auth)."""
    if form == "userinfo":
        return req.authorization == f"Bearer {USER_KEY}"
    return f"api_key={QUERY_KEY}" in req.query.split("&") and "Basic" not in (req.authorization or "")


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_key_inside_a_base_url_is_sent_right_and_appears_nowhere(form: str, app_home: Path,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    secret = USER_KEY if form == "userinfo" else QUERY_KEY
    outputs: list[subprocess.CompletedProcess[str]] = []

    def ok(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = app(*args, env=env)
        outputs.append(done)
        assert done.returncode == 0, done.stderr
        return done

    with OpenAIServer(require_key=USER_KEY if form == "userinfo" else None) as server:
        url = keyed_url(server, form)
        first = ok("ask", "-m", "test-model", "--base-url", url, "--conversation", "new", "--json", "hi")
        conv = json.loads(first.stdout.splitlines()[-1])["conversation_id"]
        ok("ask", "--base-url", url, "--conversation", conv, "and again")
        ok("ask", "-m", "openai:test-model", "from the environment", env={"OPENAI_BASE_URL": url})
        listing = ok("models", "--base-url", url)
        assert "test-model" in listing.stdout and server.base_url in listing.stdout
        python = ok("ask", "-m", "test-model", "--base-url", url, "--show-code", "python", "hi").stdout
        curl = ok("ask", "-m", "test-model", "--base-url", url, "--show-code", "curl", "hi").stdout
        grid = tmp_path / "grid.yaml"
        grid.write_text(f'prompts: ["say {{{{w}}}}"]\nproviders:\n  - id: openai:test-model\n'
                        f'    config: {{base_url: "{url}"}}\ntests:\n  - vars: {{w: hi}}\n', encoding="utf-8")  # fmt: skip
        ok("grid", str(grid), "-o", str(tmp_path / "grid.json"))
        later = app("ask", "--conversation", conv, "no key this time")  # the stored URL is the clean one
        outputs.append(later)
    chats = server.chat_requests
    assert len(chats) == 5 and all(r.path == "/v1/chat/completions" for r in chats)
    assert all(sent_with_key(r, form) for r in chats[:4]), [(r.authorization, r.query) for r in chats]
    assert not sent_with_key(chats[4], form) and chats[4].query == ""
    models = [r for r in server.requests if r.method == "GET"]
    assert [r.path for r in models] == ["/v1/models"] and sent_with_key(models[0], form)
    assert "Traceback" not in later.stderr
    assert ("api_key" in curl and "OPENAI_API_KEY" in curl) if form == "query" else "Bearer $OPENAI_API_KEY" in curl
    assert 'os.environ["OPENAI_API_KEY"]' in python

    md, js, csv = tmp_path / "c.md", tmp_path / "c.json", tmp_path / "usage.csv"
    ok("history", "export", conv, "--format", "md", "-o", str(md))
    ok("history", "export", conv, "--format", "json", "-o", str(js))
    ok("history", "show", conv, "--json")
    ok("usage", "--export-csv", str(csv))
    assert server.base_url in csv.read_text(encoding="utf-8")
    assert json.loads(js.read_text(encoding="utf-8"))
    for done in outputs:
        assert secret not in done.stdout + done.stderr, done.args
        assert "Traceback" not in done.stderr
    files = [p for p in (*app_home.rglob("*"), *tmp_path.rglob("*")) if p.is_file() and p != grid]
    assert any(p.name == "history.sqlite3" for p in files) and any(p.name == "usage.sqlite3" for p in files)
    for f in files:
        assert secret.encode() not in f.read_bytes(), f


MALFORMED = ["http://[bad/v1", "http://user:{key}@127.0.0.1:99999/v1", "http://127.0.0.1:abc/v1?api_key={key}"]


@pytest.mark.parametrize("raw", MALFORMED)
@pytest.mark.parametrize("where", ["--base-url", "OPENAI_BASE_URL", "grid"])
def test_a_malformed_base_url_exits_2_before_anything_is_sent(raw: str, where: str, app_home: Path,
                                                                tmp_path: Path) -> None:  # fmt: skip
    url = raw.format(key=QUERY_KEY)
    if where == "--base-url":
        done = app("ask", "-m", "test-model", "--base-url", url, "hi")
    elif where == "OPENAI_BASE_URL":
        done = app("ask", "-m", "openai:test-model", "hi", env={"OPENAI_BASE_URL": url})
    else:
        grid = tmp_path / "grid.yaml"
        grid.write_text(f'prompts: [hi]\nproviders:\n  - id: openai:test-model\n    config: {{base_url: "{url}"}}\n',
                        encoding="utf-8")  # fmt: skip
        done = app("grid", str(grid))
    assert done.returncode == 2, done.stderr
    shown = url.split("@")[-1].split("?")[0].removeprefix("http://")
    assert "base URL" in done.stderr and shown in done.stderr
    assert QUERY_KEY not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr and "retrying" not in done.stderr
    assert json.loads(app("usage", "--json").stdout)["total"]["requests"] == 0  # no request was made
