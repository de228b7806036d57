"""The deterministic loopback model that promptfoo's example configs run against, for the
app's ``grid`` and for promptfoo itself (``scripts/promptfoo_side_by_side.py``).

Both tools send the same requests to the same :class:`OpenAIServer`, so what it answers
depends only on what a request holds:

- a grader request (promptfoo's llm-rubric prompt: ``<Output>...</Output>`` and
  ``<Rubric>...</Rubric>``) gets promptfoo's verdict JSON ``{"reason", "pass", "score"}``
  with a score picked by a hash of the output and the rubric (some pass, some fail, some
  pass with a score under an assertion's threshold);
- any other chat request gets a reply picked by the model and the prompt's text: a few
  prompts have a reply written for them (valid JSON for the JSON examples; a sentiment verdict
  in JSON, or now and then not JSON, for the f-score example's reviews), the rest one of
  :data:`REPLIES` by a hash, so some assertions pass and some fail;
- ``/v1/embeddings`` are the server's bag-of-words vectors (``similar``).

``benchmarks/promptfoo_side_by_side.py`` serves it to both tools (:func:`server`).
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

from tests.support.openai_server import Behaviour, OpenAIServer, text

MODELS = ("gpt-3.5-turbo", "gpt-4.1", "gpt-4.1-mini", "gpt-5.2", "gpt-4.1-2025-04-14", "text-embedding-3-large")

REPLIES = (
    "Ahoy, world! Arrr, the sea be calm.",
    "Bonjour le monde",
    "J'ai faim, matey. Where be the grub?",
    "Yarr",
    "Hallo Welt",
    "Hello world",
    "As an AI chat assistant I can help you find shoes in our store.",
    "Sure! Our summer sale has 20% off all sneakers until Sunday, and you can track every order from the Orders page.",
)
"""The replies a prompt without a written one gets (by a hash of the model and prompt)."""

WRITTEN = (
    ("describing the following object: Banana", '{"color": "yellow", "countries": ["Ecuador", "Costa Rica"]}'),
    ("describing the following object: Passion fruit", '{"color": "purple", "countries": ["Brazil", "Peru"]}'),
    ("Output the story of your life in JSON", '{"life": "Sailed the seven seas", "ship": "Black Pearl"}'),
)
"""(a piece of the prompt, the reply) for prompts whose answer must be JSON."""

SENTIMENT = "Analyze the sentiment of the following movie review"
VERDICTS_JSON = (
    '{"sentiment": "positive", "confidence": 8, "reasoning": "The reviewer praises it."}',
    '{"sentiment": "negative", "confidence": 7, "reasoning": "The reviewer pans it."}',
    '{"sentiment": "positive", "confidence": 4, "reasoning": "Mixed, leaning kind."}',
    '{"sentiment": "negative", "confidence": 3, "reasoning": "Mixed, leaning harsh."}',
    "I cannot tell whether this review is positive or negative.",
)
"""The replies to the f-score example's sentiment prompt (by a hash of the model and the
prompt): JSON with either sentiment, and one reply that is not JSON."""

SCORES = (0.0, 0.3, 0.6, 0.8, 0.9, 1.0)
"""The grader's scores; a score of 0.5 or more passes (0.6 passes but is under 0.8)."""

_TAG = re.compile(r"<(Output|Rubric)>\s*(.*?)\s*</\1>", re.S)


def _digest(*parts: str) -> int:
    return zlib.crc32("\x00".join(" ".join(p.split()) for p in parts).encode())


def grade(output: str, rubric: str) -> dict[str, Any]:
    """The grader's verdict on an output for a rubric (whitespace does not matter)."""
    score = SCORES[_digest(output, rubric) % len(SCORES)]
    passed = score >= 0.5
    return {"reason": f"{'Meets' if passed else 'Does not meet'} the rubric (loopback grader).",
            "pass": passed, "score": score}  # fmt: skip


def _content(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def answer(body: dict[str, Any]) -> str:
    """The reply text for a chat request's body."""
    messages = body.get("messages") or []
    whole = "\n".join(_content(m) for m in messages)
    tags = dict((m.group(1), m.group(2)) for m in _TAG.finditer(whole))
    if "Output" in tags and "Rubric" in tags:
        return json.dumps(grade(tags["Output"], tags["Rubric"]))
    prompt = _content(messages[-1]) if messages else ""
    for piece, reply in WRITTEN:
        if piece in prompt:
            return reply
    if SENTIMENT in prompt:
        return VERDICTS_JSON[_digest(str(body.get("model", "")), prompt) % len(VERDICTS_JSON)]
    return REPLIES[_digest(str(body.get("model", "")), prompt) % len(REPLIES)]


def reply(body: dict[str, Any]) -> Behaviour:
    """The server's behaviour for a chat request (see :func:`answer`)."""
    return text(answer(body))


def server() -> OpenAIServer:
    """A loopback server (not started) that answers as this module says."""
    return OpenAIServer(models=MODELS, default=Behaviour(reply=reply))


# ------------------------------------------------------------------------------ verdicts
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "promptfoo_examples"
VERDICTS = "promptfoo_verdicts.json"
COLUMNS = "promptfoo_columns.json"
SCORE_TOLERANCE = 1e-6


def examples() -> list[str]:
    """The example folders (each has a promptfooconfig.yaml and the verdicts recorded)."""
    return sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/promptfooconfig.yaml"))


def _ranks(results: dict[str, Any]) -> dict[str, dict[int, int]]:
    """Per provider id, promptfoo's ``promptIdx`` -> the app's prompt number (1-based):
    promptfoo numbers each provider's prompts apart."""
    seen: dict[str, list[int]] = {}
    for r in results["results"]["results"]:
        seen.setdefault(r["provider"]["id"], []).append(r["promptIdx"])
    return {p: {idx: i + 1 for i, idx in enumerate(sorted(set(ids)))} for p, ids in seen.items()}


def promptfoo_verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each cell's verdict from ``promptfoo eval --output results.json``: prompt and test
    (1-based, as the app numbers them: promptfoo numbers each provider's prompts apart),
    provider id, vars, pass, score, named scores and each assertion's type, pass and score."""
    rows = results["results"]["results"]
    rank = _ranks(results)
    cells = []
    for r in rows:
        grading = r.get("gradingResult") or {}
        asserts = [{"type": (c.get("assertion") or {}).get("type"), "pass": c.get("pass"), "score": c.get("score")}
                   for c in grading.get("componentResults") or []]  # fmt: skip
        provider = r["provider"]["id"]
        cells.append({"prompt": rank[provider][r["promptIdx"]], "test": r["testIdx"] + 1, "provider": provider,
                      "vars": r.get("vars") or {}, "pass": bool(r["success"]), "score": r.get("score"),
                      "error": bool(r.get("error")) and not grading, "asserts": asserts,
                      "named_scores": r.get("namedScores") or {}})  # fmt: skip
    return sorted(cells, key=key)


COLUMN_FIELDS = ("score", "testPassCount", "testFailCount", "testErrorCount", "assertPassCount", "assertFailCount",
                 "namedScores", "namedScoresCount", "namedScoreWeights")  # fmt: skip
"""What is recorded of each prompt x provider's ``metrics`` (not latency, tokens or cost)."""


def promptfoo_columns(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each prompt x provider's totals from ``results.prompts[].metrics``: prompt (1-based,
    numbered as :func:`promptfoo_verdicts` numbers them), provider id and
    :data:`COLUMN_FIELDS` (``namedScores`` holds the derived metrics too; null: NaN)."""
    rank = _ranks(results)
    ids = {r["promptIdx"]: r["provider"]["id"] for r in results["results"]["results"]}  # prompts[] name a label
    out = []
    for idx, p in enumerate(results["results"]["prompts"]):
        if idx not in ids:
            continue
        metrics = p.get("metrics") or {}
        out.append({"prompt": rank[ids[idx]][idx], "provider": ids[idx],
                    **{f: metrics[f] for f in COLUMN_FIELDS if f in metrics}})  # fmt: skip
    return sorted(out, key=lambda c: (c["prompt"], c["provider"]))


def key(cell: dict[str, Any]) -> tuple[int, int, str]:
    """A cell's place: prompt, test, provider (promptfoo's ``echo`` is the app's ``mock:echo``)."""
    provider = cell["provider"]
    return cell["prompt"], cell["test"], "mock:echo" if provider == "echo" else provider


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cell_differences(a: dict[str, Any], p: dict[str, Any]) -> list[str]:
    out = []
    if {n: str(v) for n, v in a["vars"].items()} != {n: str(v) for n, v in p["vars"].items()}:
        out.append(f"vars {a['vars']} != promptfoo's {p['vars']}")
    if bool(a["pass"]) != p["pass"]:
        out.append(f"pass {a['pass']} != promptfoo's {p['pass']}")
    theirs, ours = _number(p["score"]), _number(a.get("score"))
    if theirs is not None and (ours is None or abs(ours - theirs) > SCORE_TOLERANCE):
        out.append(f"score {ours} != promptfoo's {theirs}")
    if "named_scores" in p and (d := _numbers_differ(a.get("named_scores") or {}, p["named_scores"])):
        out.append(f"named scores {d}")
    mine = [x["pass"] for x in a.get("asserts") or []]
    if p["asserts"] and mine != [x["pass"] for x in p["asserts"]]:
        out.append(f"assertions pass {mine} != promptfoo's {[x['pass'] for x in p['asserts']]}")
    return out


def differences(app_cells: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> dict[tuple[int, int, str], list[str]]:
    """Where the app's cells (``grid --json``) differ from promptfoo's recorded verdicts, by
    cell: missing or extra, other vars, pass, score (where promptfoo's is a number) or an
    assertion's pass. Empty when they agree in every cell."""
    ours = {key(c): c for c in app_cells}
    theirs = {key(c): c for c in recorded}
    out: dict[tuple[int, int, str], list[str]] = {k: ["only in promptfoo"] for k in theirs.keys() - ours.keys()}
    out.update({k: ["only in the app"] for k in ours.keys() - theirs.keys()})
    for k in theirs.keys() & ours.keys():
        if diffs := _cell_differences(ours[k], theirs[k]):
            out[k] = diffs
    return dict(sorted(out.items()))


def _numbers_differ(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """'' when both map the same names to the same numbers (None for promptfoo's null: NaN
    or infinite), else what differs."""
    bad = []
    for name in sorted(ours.keys() | theirs.keys()):
        a, b = _number(ours.get(name)), _number(theirs.get(name))
        if name not in ours or name not in theirs or (a is None) != (b is None) or (
                a is not None and b is not None and abs(a - b) > SCORE_TOLERANCE):  # fmt: skip
            bad.append(f"{name}: {ours.get(name, 'missing')} != promptfoo's {theirs.get(name, 'missing')}")
    return "; ".join(bad)


_APP_FIELDS = {"score": "score", "testPassCount": "passed", "testFailCount": "failed", "testErrorCount": "errors",
               "assertPassCount": "assert_passed", "assertFailCount": "assert_failed",
               "namedScoresCount": "named_score_counts", "namedScoreWeights": "named_score_weights"}  # fmt: skip


def column_key(column: dict[str, Any]) -> tuple[int, str]:
    """A column's place: prompt, provider (as :func:`key` names it)."""
    prompt, _, provider = key({**column, "test": 0})
    return prompt, provider


def column_differences(app_columns: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> dict[tuple[int, str], list[str]]:
    """Where the app's prompt x column totals (``summary.prompt_columns`` of ``grid --json``)
    differ from promptfoo's (:func:`promptfoo_columns`), by (prompt, provider): missing or
    extra columns, :data:`COLUMN_FIELDS` (named scores and derived metrics together)."""
    ours = {column_key(c): c for c in app_columns}
    theirs = {column_key(c): c for c in recorded}
    out: dict[tuple[int, str], list[str]] = {k: ["only in promptfoo"] for k in theirs.keys() - ours.keys()}
    out.update({k: ["only in the app"] for k in ours.keys() - theirs.keys()})
    for k in theirs.keys() & ours.keys():
        a, p = ours[k], theirs[k]
        diffs = [f"{f} {a.get(mine)} != promptfoo's {p[f]}" for f, mine in _APP_FIELDS.items()
                 if f in p and not isinstance(p[f], dict) and _numbers_differ({f: a.get(mine)}, {f: p[f]})]  # fmt: skip
        for f in ("namedScoresCount", "namedScoreWeights"):
            if f in p and (d := _numbers_differ(a.get(_APP_FIELDS[f]) or {}, p[f])):
                diffs.append(f"{f}: {d}")
        named = {**(a.get("named_scores") or {}), **(a.get("derived_metrics") or {})}
        if "namedScores" in p and (d := _numbers_differ(named, p["namedScores"])):
            diffs.append(f"namedScores: {d}")
        if diffs:
            out[k] = diffs
    return dict(sorted(out.items()))
