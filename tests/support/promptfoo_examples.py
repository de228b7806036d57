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
SCORE_TOLERANCE = 1e-6


def examples() -> list[str]:
    """The example folders (each has a promptfooconfig.yaml and the verdicts recorded)."""
    return sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/promptfooconfig.yaml"))


def promptfoo_verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each cell's verdict from ``promptfoo eval --output results.json``: prompt and test
    (1-based, as the app numbers them: promptfoo numbers each provider's prompts apart),
    provider id, vars, pass, score and each assertion's type, pass and score."""
    rows = results["results"]["results"]
    seen: dict[str, list[int]] = {}
    for r in rows:
        seen.setdefault(r["provider"]["id"], []).append(r["promptIdx"])
    rank = {p: {idx: i + 1 for i, idx in enumerate(sorted(set(ids)))} for p, ids in seen.items()}
    cells = []
    for r in rows:
        grading = r.get("gradingResult") or {}
        asserts = [{"type": (c.get("assertion") or {}).get("type"), "pass": c.get("pass"), "score": c.get("score")}
                   for c in grading.get("componentResults") or []]  # fmt: skip
        provider = r["provider"]["id"]
        cells.append({"prompt": rank[provider][r["promptIdx"]], "test": r["testIdx"] + 1, "provider": provider,
                      "vars": r.get("vars") or {}, "pass": bool(r["success"]), "score": r.get("score"),
                      "error": bool(r.get("error")) and not grading, "asserts": asserts})  # fmt: skip
    return sorted(cells, key=key)


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
