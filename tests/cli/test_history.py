"""``ask --conversation ID|new [--parent MESSAGE_ID]`` and ``history list|show|fork|export|delete``,
in-process (capsys), on the test's private home; branch requests checked on the loopback server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.core.history import HistoryStore
from app.core.paths import AppPaths
from tests.support.openai_server import OpenAIServer, text

MESSAGE_KEYS = {"id", "parent_id", "role", "content", "status", "error", "model", "endpoint", "adapter",
                "adapter_sha256", "params", "usage", "cost_usd", "ttft_s", "tokens_per_s", "created_at"}  # fmt: skip


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.splitlines()[-1])


def _ask(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    return dict(_json(capsys, "ask", "--json", *argv))


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err
    return err


def test_ask_stores_the_exchange_and_sends_the_path_as_context(capsys: pytest.CaptureFixture[str],
                                                                openai_server: OpenAIServer) -> None:
    url = openai_server.base_url
    openai_server.enqueue(text("Paris."), text("Lyon."), text("Rome."))
    first = _ask(capsys, "--base-url", url, "-m", "test-model", "--system", "Be brief.", "--conversation", "new",
                 "Capital of France?")
    cid = first["conversation_id"]
    assert first["text"] == "Paris." and first["message_id"] == first["user_message_id"] + 1
    second = _ask(capsys, "--conversation", cid, "A city to visit?")  # model, endpoint, system from the conversation
    assert second["conversation_id"] == cid and second["model"] == "openai:test-model"
    sent = openai_server.chat_requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "Be brief."), ("user", "Capital of France?"), ("assistant", "Paris."), ("user", "A city to visit?")]
    # a branch from the first answer: only its own path is sent
    branch = _ask(capsys, "--conversation", cid, "--parent", str(first["message_id"]), "And Italy?")
    sent = openai_server.chat_requests[-1].json["messages"]
    assert [m["content"] for m in sent] == ["Be brief.", "Capital of France?", "Paris.", "And Italy?"]

    every = _json(capsys, "history", "show", cid, "--all-branches", "--json")
    users = [m for m in every["messages"] if m["role"] == "user" and m["parent_id"] == first["message_id"]]
    assert [m["id"] for m in users] == [second["user_message_id"], branch["user_message_id"]]  # both, one parent
    assert all(set(m) == MESSAGE_KEYS for m in every["messages"])
    active = _json(capsys, "history", "show", cid, "--json")
    assert active["active_leaf_id"] == branch["message_id"]
    assert [m["content"] for m in active["messages"]] == ["Capital of France?", "Paris.", "And Italy?", "Rome."]
    assert [m["parent_id"] for m in active["messages"]] == [None, *[m["id"] for m in active["messages"][:-1]]]
    assert (active["title"], active["model"], active["system_prompt"]) == (
        "Capital of France?", "openai:test-model", "Be brief.")
    answer = active["messages"][-1]
    assert answer["endpoint"] == url and answer["usage"]["completion_tokens"] >= 1 and answer["status"] == "complete"
    assert isinstance(answer["params"]["seed"], int)  # the app picked a seed and stored it


def test_cli_chats_appear_in_the_windows_history(capsys: pytest.CaptureFixture[str]) -> None:
    data = _ask(capsys, "-m", "mock:echo", "--conversation", "new", "from the terminal")
    store = HistoryStore(AppPaths.default().history_db)  # what the window opens
    try:
        [conv] = store.list_conversations()
        assert conv.id == data["conversation_id"] and conv.title == "from the terminal"
        assert [m.content for m in store.path_to(conv.id)] == ["from the terminal", "from the terminal"]
    finally:
        store.close()


def test_list_search_and_the_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    a = _ask(capsys, "-m", "mock:echo", "--conversation", "new", "alpha question")
    b = _ask(capsys, "-m", "mock:echo", "--conversation", "new", "beta question")
    listed = _json(capsys, "history", "list", "--json")
    assert [c["id"] for c in listed] == [b["conversation_id"], a["conversation_id"]]
    assert set(listed[0]) == {"id", "title", "created_at", "updated_at", "model", "message_count"}
    assert (listed[0]["model"], listed[0]["message_count"]) == ("mock:echo", 2)
    assert [c["id"] for c in _json(capsys, "history", "list", "--search", "ALPHA", "--json")] == [a["conversation_id"]]
    assert main(["history", "list"]) == 0
    out = capsys.readouterr().out
    assert "alpha question" in out and "beta question" in out


def test_fork_holds_the_path_up_to_the_chosen_message(capsys: pytest.CaptureFixture[str]) -> None:
    one = _ask(capsys, "-m", "mock:echo", "--conversation", "new", "one")
    cid = one["conversation_id"]
    _ask(capsys, "--conversation", cid, "two")
    forked = _json(capsys, "history", "fork", cid, str(one["message_id"]), "--json")
    shown = _json(capsys, "history", "show", forked["id"], "--json")
    assert shown["title"] == "Fork of one" and [m["content"] for m in shown["messages"]] == ["one", "one"]
    assert shown["messages"][1]["usage"] == _json(capsys, "history", "show", cid, "--json")["messages"][1]["usage"]
    assert main(["history", "fork", cid, str(one["user_message_id"])]) == 0
    plain_id = capsys.readouterr().out.strip()
    assert len(plain_id) == 32 and plain_id != forked["id"]


def test_export_and_delete(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    one = _ask(capsys, "-m", "mock:echo", "--conversation", "new", "--seed", "5", "export this")
    cid = one["conversation_id"]
    _ask(capsys, "--conversation", cid, "--parent", str(one["user_message_id"]), "ignored")  # a user after a user
    assert main(["history", "export", cid, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# export this\n") and "## Other branches" in md
    target = tmp_path / "c.json"
    assert main(["history", "export", cid, "--format", "json", "-o", str(target)]) == 0
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["version"] == 2 and len(data["messages"]) == 4
    assert data["messages"][1]["seed"] == 5 and data["conversation"]["active_leaf_id"] == data["active_path"][-1]
    assert main(["history", "delete", cid]) == 0
    assert "deleted" in capsys.readouterr().out
    assert _json(capsys, "history", "list", "--json") == []


@pytest.mark.parametrize("argv", [
    ["history", "show", "nope"], ["history", "fork", "nope", "1"], ["history", "export", "nope", "--format", "md"],
    ["history", "delete", "nope"], ["ask", "-m", "mock:echo", "--conversation", "nope", "hi"],
])  # fmt: skip
def test_unknown_conversation_ids_exit_2_and_say_how_to_find_one(capsys: pytest.CaptureFixture[str],
                                                                   argv: list[str]) -> None:
    err = _fails(capsys, *argv)
    assert "There is no conversation 'nope'" in err and "history list" in err


def test_unknown_message_ids_and_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    cid = _ask(capsys, "-m", "mock:echo", "--conversation", "new", "hi")["conversation_id"]
    err = _fails(capsys, "ask", "-m", "mock:echo", "--conversation", cid, "--parent", "999", "x")
    assert "has no message 999" in err and "--all-branches" in err
    assert "has no message 999" in _fails(capsys, "history", "fork", cid, "999")
    assert "--parent needs --conversation" in _fails(capsys, "ask", "-m", "mock:echo", "--parent", "1", "x")
    assert "new conversation has no message" in _fails(capsys, "ask", "-m", "mock:echo", "--conversation", "new",
                                                       "--parent", "1", "x")
    assert len(_json(capsys, "history", "show", cid, "--all-branches", "--json")["messages"]) == 2  # nothing added


def test_a_failed_answer_is_stored_with_its_partial_text(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "-m", "mock:lorem?n=40&fail=mid&fail_after=6", "--conversation", "new", "--json", "go"])
    out, _ = capsys.readouterr()
    assert code == 1
    data = json.loads(out.splitlines()[-1])
    assert data["finish_reason"] == "error" and data["message_id"] is not None
    shown = _json(capsys, "history", "show", data["conversation_id"], "--json")
    answer = shown["messages"][-1]
    assert (answer["id"], answer["status"]) == (data["message_id"], "error")
    assert "cut mid-way" in answer["error"] and len(answer["content"].split()) == 6


def test_the_stored_seed_replays_a_sampled_answer(capsys: pytest.CaptureFixture[str]) -> None:
    first = _ask(capsys, "-m", "mock:lorem?n=12", "--conversation", "new", "words")
    seed = _json(capsys, "history", "show", first["conversation_id"], "--json")["messages"][-1]["params"]["seed"]
    again = _ask(capsys, "-m", "mock:lorem?n=12", "--conversation", "new", "--seed", str(seed), "words")
    other = _ask(capsys, "-m", "mock:lorem?n=12", "--conversation", "new", "--seed", str(seed + 1), "words")
    assert again["text"] == first["text"] != other["text"]
