"""``grid`` on configs written like promptfoo's own examples, against the loopback server:
the prompts the server receives and the verdicts are those promptfoo produces.

Where the expectations come from: promptfoo's docs (configuration/guide, parameters, expected
outputs, CSV) and sources: src/evaluatorHelpers.ts renderPrompt (file vars trimmed, JSON
prompts rendered string by string), src/prompts/processors/text.ts (``---``, labels),
src/csv.ts assertionFromString (__expected; plain text is ``equals``), src/evaluator.ts
(generateVarCombinations, scenarios), its OpenAI provider (a JSON list of messages is sent as
those messages) and `promptfoo eval` exiting 100 when a test fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.core.url_keys import forget_url_keys
from tests.support.openai_server import Behaviour, OpenAIServer, text

KEY = "sk-grid-file-key-0123456789"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=("gpt-4o-mini", "test-model")) as srv:
        srv.default = Behaviour(reply=lambda body: text(f"echo: {body['messages'][-1]['content']}"))
        yield srv
    forget_url_keys()  # a grid file's apiKey lives in this process's memory


def write(root: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
    return root / "promptfooconfig.yaml"


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, Any] | None, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return code, json.loads(last) if last.startswith("{") else None, err


def sent(server: OpenAIServer) -> list[list[tuple[str, str]]]:
    return sorted([(m["role"], m["content"]) for m in r.json["messages"]] for r in server.chat_requests)


def test_file_prompts_nunjucks_filters_and_a_csv_with_expected(server: OpenAIServer, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    config = write(tmp_path, {
        "prompts/formal.txt": "{% if formal == 'yes' %}Dear reader,{% endif %} translate to {{ language | upper }}: {{ input | trim }}\n",
        "prompts/list.txt": "Facts about {{ language }}:\n{% for f in facts | load %}- {{ f | capitalize }}\n{% endfor %}\n---\n{{ missing }}Say {{ input }}",
        "tests.csv": 'language,input,formal,facts,__expected1,__expected2,__description\n'
                     'french,Hello,yes,"[""one"", ""two""]",icontains: FRENCH,echo: Say Hello,greeting\n',
        "promptfooconfig.yaml": f"""\
description: file prompts and a CSV
prompts: [file://prompts/*.txt]
providers:
  - id: openai:chat:gpt-4o-mini
    config: {{apiBaseUrl: "{server.base_url}", temperature: 0}}
tests: file://tests.csv
""",
    })  # fmt: skip
    code, data, err = run(capsys, ["grid", str(config), "--json"])
    assert sent(server) == [
        [("user", "Dear reader, translate to FRENCH: Hello")],
        [("user", "Facts about french:\n- One\n- Two\n")],
        [("user", "Say Hello")],
    ]
    assert data is not None
    verdicts = {c["text"]: [a["pass"] for a in c["asserts"]] for c in data["cells"]}
    # icontains FRENCH passes only where the prompt names it; the plain text is an equals check
    assert verdicts == {"echo: Dear reader, translate to FRENCH: Hello": [True, False],
                        "echo: Facts about french:\n- One\n- Two\n": [True, False],
                        "echo: Say Hello": [False, True]}  # fmt: skip
    assert code == 1 and "warning: A prompt uses {{missing}}" in err
    assert run(capsys, ["grid", str(config), "--exit-code", "promptfoo"])[0] == 100


def test_array_vars_chat_message_files_and_var_files(server: OpenAIServer, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    config = write(tmp_path, {
        "chat.json": json.dumps([{"role": "system", "content": "Style: {{ style | default('plain') }}. Context: {{ ctx }}"},
                                 {"role": "user", "content": "Capital of {{ country }}? {{ meta | dump }}"}]),
        "ctx/a.txt": "alpha\n", "ctx/b.txt": "beta\n",
        "promptfooconfig.yaml": f"""\
prompts: [file://chat.json]
providers: [{{id: "openai:gpt-4o-mini", config: {{apiBaseUrl: "{server.base_url}"}}}}]
tests:
  - vars:
      country: [France, Portugal]
      ctx: file://ctx/*.txt
      meta: {{id: 7}}
    assert: [{{type: icontains, value: "{{{{country}}}}"}}]
""",
    })  # fmt: skip
    code, data, err = run(capsys, ["grid", str(config), "--json"])
    assert code == 0, err
    assert sent(server) == sorted(
        [("system", f"Style: plain. Context: {ctx}"), ("user", f'Capital of {country}? {{"id":7}}')]
        for country in ("France", "Portugal") for ctx in ("alpha", "beta")
    )
    assert data is not None and data["summary"]["passed"] == 4


def test_scenarios_and_provider_prompts_with_promptfoos_exit_code(server: OpenAIServer, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    config = write(tmp_path, {"promptfooconfig.yaml": f"""\
prompts:
  - {{raw: "Short: {{{{topic}}}}", label: short}}
  - {{raw: "Long: {{{{topic}}}}", label: long}}
providers:
  - {{id: openai:gpt-4o-mini, label: A, prompts: [short], config: {{apiBaseUrl: "{server.base_url}"}}}}
  - {{id: openai:test-model, label: B, config: {{apiBaseUrl: "{server.base_url}"}}}}
scenarios:
  - config: [{{vars: {{topic: cats}}}}, {{vars: {{topic: dogs}}}}]
    tests:
      - assert: [{{type: icontains, value: "{{{{topic}}}}"}}]
      - vars: {{topic: birds}}
        assert: [{{type: equals, value: never}}]
"""})  # fmt: skip
    code, data, err = run(capsys, ["grid", str(config), "--json", "--exit-code", "promptfoo"])
    assert code == 100
    assert data is not None and data["summary"]["cells"] == 12 and data["summary"]["passed"] == 6
    by_model: dict[str, list[str]] = {}
    for req in server.chat_requests:
        by_model.setdefault(req.json["model"], []).append(req.json["messages"][-1]["content"])
    assert sorted(by_model["gpt-4o-mini"]) == ["Short: birds", "Short: birds", "Short: cats", "Short: dogs"]
    assert len(by_model["test-model"]) == 8


def test_an_api_key_in_the_file_is_sent_and_never_stored(server: OpenAIServer, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("GRID_KEY_VAR", KEY + "-env")
    config = write(tmp_path, {"promptfooconfig.yaml": f"""\
prompts: [Hi]
providers:
  - {{id: openai:gpt-4o-mini, label: inline, config: {{apiBaseUrl: "{server.base_url}", apiKey: {KEY}}}}}
  - {{id: openai:test-model, label: env, config: {{apiBaseUrl: "{server.base_url.replace('127.0.0.1', 'localhost')}", apiKeyEnvar: GRID_KEY_VAR}}}}
tests: [{{assert: [{{type: cost, threshold: 1}}]}}]
"""})  # fmt: skip
    out = tmp_path / "results.json"
    code, data, err = run(capsys, ["grid", str(config), "--json", "-o", str(out)])
    auth = sorted(r.authorization or "" for r in server.chat_requests)
    assert auth == [f"Bearer {KEY}", f"Bearer {KEY}-env"]
    # a server other than OpenAI's: the cost is unknown, so a cost check fails (never $0)
    assert code == 1 and data is not None
    assert all(c["cost_usd"] is None and "is unpriced" in c["asserts"][0]["reason"] for c in data["cells"])
    assert data["summary"]["cost_usd"] is None and data["summary"]["unpriced_cells"] == 2
    table = err.split("\n\n")[0]  # --json: the table goes to stderr
    assert "unpriced" in table.split("cost", 1)[1].splitlines()[0] and "free" not in table
    assert "2 failed, 0 errors · unpriced ·" in err
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert [c["cost_usd"] for c in exported["columns"]] == [None, None]
    home = Path(os.environ["LLM_PLAYGROUND_HOME"])
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite3") for p in stored)
    for path in [*stored, out]:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in err and KEY not in json.dumps(data)


def test_an_unset_api_key_envar_falls_back_to_the_keyring_or_exits_2(server: OpenAIServer, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import keyring

    from app.core.secrets import SERVICE

    monkeypatch.delenv("GRID_UNSET_VAR", raising=False)
    config = write(tmp_path, {"promptfooconfig.yaml": f"""\
prompts: [Hi]
providers: [{{id: openai:gpt-4o-mini, config: {{apiBaseUrl: "{server.base_url}", apiKeyEnvar: GRID_UNSET_VAR}}}}]
"""})  # fmt: skip
    code, _, err = run(capsys, ["grid", str(config)])
    assert code == 2 and server.chat_requests == []
    assert "GRID_UNSET_VAR is not set and the keyring has no env:GRID_UNSET_VAR key" in err
    assert "python -m app keys set env:GRID_UNSET_VAR" in err and "export GRID_UNSET_VAR=" in err
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(KEY + "-kr\n"))
    assert main(["keys", "set", "env:GRID_UNSET_VAR"]) == 0
    assert keyring.get_password(SERVICE, "env:GRID_UNSET_VAR") == KEY + "-kr"
    capsys.readouterr()
    out = tmp_path / "results.json"
    code, data, err = run(capsys, ["grid", str(config), "--json", "-o", str(out)])
    assert code == 0, err
    assert [r.authorization for r in server.chat_requests] == [f"Bearer {KEY}-kr"]
    monkeypatch.setenv("GRID_UNSET_VAR", KEY + "-env")  # the environment comes first
    assert run(capsys, ["grid", str(config)])[0] == 0
    assert server.chat_requests[-1].authorization == f"Bearer {KEY}-env"
    home = Path(os.environ["LLM_PLAYGROUND_HOME"])
    for path in [*(p for p in home.rglob("*") if p.is_file()), out]:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in err and KEY not in json.dumps(data)


def test_a_missing_file_or_unsupported_feature_exits_2_before_sending(server: OpenAIServer, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    head = f'providers: [{{id: openai:gpt-4o-mini, config: {{apiBaseUrl: "{server.base_url}"}}}}]\n'
    for body, expected in [
        ("prompts: [file://gone.txt]\n", "promptfooconfig.yaml, line 2: prompts[0]: the file"),
        ("prompts: [hi]\ntests: file://cases.csv\n", "cases.csv, line 2, column __expected: the assertion type 'webhook'"),
        ("prompts: [hi]\nnunjucksFilters: {x: f.js}\n", "line 3: nunjucksFilters: promptfoo's 'nunjucksFilters'"),
    ]:
        config = write(tmp_path, {"cases.csv": "q,__expected\n1,webhook: https://example.com\n",
                                  "promptfooconfig.yaml": head + body})  # fmt: skip
        code, _, err = run(capsys, ["grid", str(config)])
        assert code == 2 and expected in err, err
    assert server.chat_requests == []


def test_repeat_sends_each_cell_n_times_with_mean_and_spread(server: OpenAIServer, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    config = write(tmp_path, {"promptfooconfig.yaml": f"""\
prompts: ["Hi {{{{name}}}}"]
providers: [{{id: openai:gpt-4o-mini, config: {{apiBaseUrl: "{server.base_url}"}}}}]
evaluateOptions: {{repeat: 3}}
tests: [{{vars: {{name: Ann}}, assert: [{{type: contains, value: Ann}}]}}]
"""})  # fmt: skip
    code, data, err = run(capsys, ["grid", str(config), "--json"])
    assert code == 0, err
    assert len(server.chat_requests) == 3 and data is not None
    assert [c["repeat"] for c in data["cells"]] == [1, 2, 3]
    (stats,) = data["summary"]["repeats"]
    assert stats["runs"] == 3 and stats["passed"] == 3 and stats["mean_latency_s"] > 0 and stats["sd_latency_s"] >= 0
    assert "REPEAT test 1 · Ann × openai:gpt-4o-mini: 3/3 pass · latency " in err and " ± " in err
    assert run(capsys, ["grid", str(config), "--repeat", "2"])[0] == 0 and len(server.chat_requests) == 5


def test_a_conversation_and_stored_outputs_feed_later_tests(server: OpenAIServer, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # promptfoo's examples/multiple-turn-conversation: a chat prompt that replays _conversation
    config = write(tmp_path, {
        "prompt.json": '[{% for completion in _conversation %}{"role": "user", "content": "{{ completion.input }}"}, '
                       '{"role": "assistant", "content": "{{ completion.output }}"}, {% endfor %}'
                       '{"role": "user", "content": "{{ question }}{{ last }}"}]',
        "promptfooconfig.yaml": f"""\
prompts: [file://prompt.json]
providers:
  - {{id: openai:gpt-4o-mini, label: A, config: {{apiBaseUrl: "{server.base_url}"}}}}
  - {{id: openai:test-model, label: B, config: {{apiBaseUrl: "{server.base_url}"}}}}
tests:
  - vars: {{question: One}}
    options: {{storeOutputAs: last}}
  - vars: {{question: "Two "}}
  - vars: {{question: "Three", last: ""}}
    assert: [{{type: contains, value: "echo: Three"}}]
""",
    })  # fmt: skip
    code, data, err = run(capsys, ["grid", str(config), "--json"])
    assert code == 0, err
    by_model: dict[str, list[list[tuple[str, str]]]] = {}
    for req in server.chat_requests:
        by_model.setdefault(req.json["model"], []).append([(m["role"], m["content"]) for m in req.json["messages"]])
    for turns in by_model.values():  # each provider has its own conversation, in test order
        assert turns == [
            [("user", "One")],
            [("user", "One"), ("assistant", "echo: One"), ("user", "Two echo: One")],
            [("user", "One"), ("assistant", "echo: One"), ("user", "Two echo: One"),
             ("assistant", "echo: Two echo: One"), ("user", "Threeecho: One")],
        ]  # fmt: skip


def test_a_tests_options_set_its_response_format_and_grader(server: OpenAIServer, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    schema = {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": False}}
    base = server.base_url
    config = write(tmp_path, {"schema.json": json.dumps(schema), "promptfooconfig.yaml": f"""\
prompts: ["City of {{{{country}}}}?"]
providers: [{{id: openai:gpt-4o-mini, config: {{apiBaseUrl: "{base}"}}}}]
tests:
  - vars: {{country: France}}
    options:
      response_format: file://schema.json
      provider: {{id: openai:test-model, config: {{apiBaseUrl: "{base}"}}}}
    assert: [{{type: llm-rubric, value: names a city}}]
  - vars: {{country: Spain}}
"""})  # fmt: skip
    server.default = Behaviour(reply=lambda body: text('{"pass": true, "reason": "ok"}') if body["model"] == "test-model"
                               else text("Paris"))  # fmt: skip
    code, data, err = run(capsys, ["grid", str(config), "--json"])
    assert code == 0, err
    answered = {r.json["messages"][-1]["content"]: r.json for r in server.chat_requests if r.json["model"] == "gpt-4o-mini"}
    assert answered["City of France?"]["response_format"] == schema
    assert "response_format" not in answered["City of Spain?"]
    assert [r.json["model"] for r in server.chat_requests].count("test-model") == 1  # the test's own grader


MULTI_TURN_PROMPT = """[
  {"role": "system", "content": "{{ system_message }}"},
  {% for completion in _conversation %}
    {"role": "user", "content": "{{ completion.input[completion.input.length - 1].content }}"},
    {"role": "assistant", "content": "{{ completion.output }}"},
  {% endfor %}
  {"role": "user", "content": "{{ question }}"}
]
"""


def test_promptfoos_multiple_turn_conversation_example_runs_unchanged(server: OpenAIServer, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # examples/multiple-turn-conversation (prompt.json as there; the provider pointed at the
    # loopback server). ``completion.input`` is the last message's text in promptfoo, so
    # ``input[input.length - 1].content`` is a character's .content: empty, as promptfoo sends it.
    config = write(tmp_path, {"prompt.json": MULTI_TURN_PROMPT, "promptfooconfig.yaml": f"""\
prompts:
  - id: file://prompt.json
    label: multi-turn-conversation
providers:
  - {{id: openai:gpt-4.1-mini, config: {{apiBaseUrl: "{server.base_url}"}}}}
defaultTest:
  vars:
    system_message: You are a helpful assistant
tests:
  - vars: {{question: "Who founded Facebook?"}}
    metadata: {{conversationId: facebook_thread}}
  - vars: {{question: "Where does he live?"}}
    metadata: {{conversationId: facebook_thread}}
  - vars: {{question: "What's the weather like in San Francisco?"}}
    metadata: {{conversationId: weather_thread}}
  - vars: {{question: "Do I need an umbrella today?"}}
    metadata: {{conversationId: weather_thread}}
"""})  # fmt: skip
    server.models.append("gpt-4.1-mini")
    code, data, err = run(capsys, ["grid", str(config), "--json"])
    assert code == 0, err
    system = ("system", "You are a helpful assistant")
    assert sent(server) == sorted([
        [system, ("user", "Who founded Facebook?")],
        [system, ("user", ""), ("assistant", "echo: Who founded Facebook?"), ("user", "Where does he live?")],
        [system, ("user", "What's the weather like in San Francisco?")],
        [system, ("user", ""), ("assistant", "echo: What's the weather like in San Francisco?"),
         ("user", "Do I need an umbrella today?")],
    ])  # fmt: skip


SIMPLE_CSV_PROMPTS = """\
You are a skilled translator and language expert. Follow these style requirements:
- Tone: {{ (style_config | load).tone }}
- Length: {{ (style_config | load).length }}

Task: Rephrase the following text in {{language}}:
"{{body}}"

Ensure your response matches the specified style.
---
You are a conversational language assistant. Follow the style configuration: {{style_config}}.

Task: Translate this text to {{language}} in a natural, conversational way:
"{{body}}"

Make sure to maintain the intended tone while keeping it casual and friendly.
"""


def test_promptfoos_simple_csv_example_renders_its_load_filter(server: OpenAIServer, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # examples/simple-csv: the case whose verdict changed when {{ (x | load).tone }} went out as text
    config = write(tmp_path, {
        "prompts.txt": SIMPLE_CSV_PROMPTS,
        "tests.csv": 'language,body,style_config,__expected\n'
                     'French,"Hello world","{""tone"":""formal"",""length"":""brief""}","icontains:bonjour"\n',
        "promptfooconfig.yaml": f"""\
description: A translator built with LLM
prompts:
  - file://prompts.txt
providers:
  - {{id: openai:gpt-3.5-turbo, config: {{apiBaseUrl: "{server.base_url}"}}}}
tests: file://tests.csv
""",
    })  # fmt: skip
    server.models.append("gpt-3.5-turbo")
    server.default = Behaviour(reply=lambda body: text("Bonjour le monde" if "Tone: formal" in body["messages"][-1]["content"]
                                                       else "Salut"))  # fmt: skip
    code, data, err = run(capsys, ["grid", str(config), "--json"])
    first, second = sorted(r.json["messages"][0]["content"] for r in server.chat_requests)[::-1]
    assert "- Tone: formal\n- Length: brief\n\nTask: Rephrase the following text in French:\n\"Hello world\"" in first
    assert 'Follow the style configuration: {"tone":"formal","length":"brief"}.' in second
    assert data is not None and [c["pass"] for c in data["cells"]] == [True, False] and code == 1
