"""``grid`` with promptfoo's script, model-graded and scored assertions, end to end against
the loopback server: javascript and python checks, a transform, llm-rubric graded by the
default grader through OPENAI_BASE_URL, similar through /v1/embeddings, perplexity from the
answer's logprobs, weights, a test threshold, named scores and a derived metric."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.core.grid.assert_model import DEFAULT_EMBEDDING, DEFAULT_GRADER
from tests.support.openai_server import Behaviour, OpenAIServer, text

GRID = """\
prompts: ["Capital of {{{{country}}}}?"]
providers:
  - id: openai:test-model
    config: {{base_url: "{url}"}}
defaultTest:
  options:
    transform: output.trim()
tests:
  - description: scripts
    vars: {{country: France}}
    assert:
      - type: javascript
        value: output.startsWith('Paris') && context.vars.country === 'France'
        metric: accuracy
      - type: python
        value: file://check.py
        metric: accuracy
      - type: javascript
        value: "(() => {{ while (true) {{}} }})()"
        weight: 0.5
  - description: graded
    vars: {{country: France}}
    threshold: 0.6
    assert:
      - type: llm-rubric
        value: names the capital of {{{{country}}}}
      - type: similar
        value: Paris is the capital
      - type: contains
        value: Rome
        weight: 0.5
      - type: perplexity-score
        threshold: 0.3
        metric: fluency
derivedMetrics:
  - name: doubled
    value: accuracy * 2
"""


def answer(body: dict[str, Any]) -> Behaviour:
    if body.get("model") == DEFAULT_GRADER.split(":", 1)[1]:
        return text('{"reason": "it names Paris", "pass": true, "score": 1}')
    return text("  Paris", " is", " the", " capital.  ")


def test_scripts_graders_embeddings_and_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    (tmp_path / "check.py").write_text("def get_assert(output, context):\n"
                                       "    return {'pass': output == 'Paris is the capital.', 'score': 1, 'reason': 'trimmed'}\n",
                                       encoding="utf-8")  # fmt: skip
    with OpenAIServer(default=Behaviour(reply=answer)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
        path = tmp_path / "grid.yaml"
        path.write_text(GRID.format(url=server.base_url), encoding="utf-8")
        t0 = time.monotonic()
        code = main(["grid", str(path), "--json"])
        took = time.monotonic() - t0
        requests = list(server.requests)
    out, err = capsys.readouterr()
    data = json.loads(out.splitlines()[-1])
    scripts, graded = data["cells"]
    assert code == 1, err  # the looping script fails its test
    assert took < 40  # the loop was stopped at its limit
    assert [a["pass"] for a in scripts["asserts"]] == [True, True, False]
    assert "time limit of 5 s" in scripts["asserts"][2]["reason"] and scripts["asserts"][1]["reason"] == "trimmed"
    assert scripts["named_scores"] == {"accuracy": 1.0} and scripts["score"] == pytest.approx(2 / 2.5)
    assert graded["pass"] is True, graded  # the threshold decides: 'contains Rome' failed
    rubric, similar, contains, perplexity = graded["asserts"]
    assert rubric["pass"] and rubric["reason"].startswith(f"graded by {DEFAULT_GRADER} (promptfoo's default grader)")
    assert similar["pass"] and similar["score"] == pytest.approx(1.0) and DEFAULT_EMBEDDING in similar["reason"]
    assert not contains["pass"] and perplexity["pass"] and 0.3 < perplexity["score"] < 1
    assert graded["named_scores"]["fluency"] == perplexity["score"]
    metrics = data["summary"]["metrics"]["openai:test-model"]
    # two passing assertions share accuracy: promptfoo sums score x weight, 2, so doubled is 4
    assert metrics["derived_metrics"] == {"doubled": 4.0} and metrics["named_scores"]["accuracy"] == 1.0
    assert metrics["named_score_sums"]["accuracy"] == 2.0
    assert "doubled" in err and "accuracy" in err and "fluency" in err  # footer rows of the table
    chats = [r for r in requests if r.path.endswith("/chat/completions")]
    grader = [r for r in chats if r.json["model"] == DEFAULT_GRADER.split(":", 1)[1]]
    assert len(grader) == 1 and "names the capital of France" in grader[0].json["messages"][-1]["content"]
    assert "Paris is the capital." in grader[0].json["messages"][-1]["content"]  # the transformed output
    assert grader[0].authorization == "Bearer sk-loopback"
    cells = [r for r in chats if r.json["model"] == "test-model"]
    assert sorted(bool(r.json.get("logprobs")) for r in cells) == [False, True]  # only perplexity asks
    embeddings = [r for r in requests if r.path.endswith("/embeddings")]
    assert [r.json["model"] for r in embeddings] == [DEFAULT_EMBEDDING]


def test_a_rubric_without_a_grader_or_key_fails_its_cell_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    path = tmp_path / "grid.yaml"
    path.write_text("prompts: [hi]\nproviders: [mock:echo]\ntests:\n  - assert: [{type: llm-rubric, value: polite}]\n",
                    encoding="utf-8")  # fmt: skip
    code = main(["grid", str(path), "--json"])
    out, err = capsys.readouterr()
    cell = json.loads(out.splitlines()[-1])["cells"][0]
    assert code == 1 and cell["error"] is None and cell["pass"] is False
    assert "grading failed" in cell["asserts"][0]["reason"] and "No API key is set for OpenAI" in cell["asserts"][0]["reason"]


def test_bad_script_references_stop_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("prompts: [hi]\nproviders: [mock:echo]\ntests:\n"
                    "  - assert: [{type: javascript, value: file://missing.js}]\n", encoding="utf-8")  # fmt: skip
    assert main(["grid", str(path)]) == 2
    assert "missing.js' does not exist" in capsys.readouterr().err
    path.write_text("prompts: [hi]\nproviders: [mock:echo]\nderivedMetrics: [{name: x, value: 'open(1)'}]\n", encoding="utf-8")
    assert main(["grid", str(path)]) == 2
    assert "derivedMetrics[0].value" in capsys.readouterr().err


def test_a_provider_transform_runs_first_then_the_test_transform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """promptfoo's evaluator: providers[].transform, then options.transform, then each
    assertion's own transform; a failing provider transform fails that column's checks."""
    (tmp_path / "shout.py").write_text("def get_transform(output, context):\n"
                                       "    return output.upper() + '!' + context['vars']['country']\n",
                                       encoding="utf-8")  # fmt: skip
    with OpenAIServer(default=Behaviour(reply=lambda body: text("  paris  "))) as server:
        path = tmp_path / "grid.yaml"
        path.write_text(f"""\
prompts: ["Capital of {{{{country}}}}?"]
providers:
  - id: openai:test-model
    label: js
    transform: "output.trim() + '|' + context.vars.country"
    config: {{base_url: "{server.base_url}"}}
  - id: openai:test-model
    label: py
    transform: file://shout.py
    config: {{base_url: "{server.base_url}"}}
  - id: openai:test-model
    label: broken
    transform: "output.nope.deeper"
    config: {{base_url: "{server.base_url}"}}
tests:
  - vars: {{country: France}}
    options: {{transform: "'<' + output + '>'"}}
    assert:
      - {{type: equals, value: "<paris|France>"}}
      - {{type: equals, value: "<  PARIS  !France>"}}
      - {{type: equals, value: "<PARIS", transform: "output.split('|')[0].toUpperCase()"}}
""", encoding="utf-8")  # fmt: skip
        code = main(["grid", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    js, py, broken = json.loads(out.splitlines()[-1])["cells"]
    assert [a["pass"] for a in js["asserts"]] == [True, False, True]
    assert [a["pass"] for a in py["asserts"]] == [False, True, False]
    assert js["text"] == "  paris  "  # the answer itself is kept as the model gave it
    assert not any(a["pass"] for a in broken["asserts"])
    assert broken["asserts"][0]["reason"].startswith("the provider's transform failed: ")
