"""promptfoo's own example configs, copied unchanged into tests/fixtures/promptfoo_examples,
run by ``grid`` against the deterministic loopback model (tests/support/promptfoo_examples.py)
that promptfoo 0.121.20 ran them against: every cell's verdict, score and assertion verdicts
equal the ones promptfoo recorded (promptfoo_verdicts.json, rerecorded with
``python -m benchmarks.promptfoo_side_by_side --promptfoo PATH``).

The configs reach the server only through ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``, as
promptfoo's ``openai:`` providers and its default llm-rubric grader do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app.cli import main
from tests.support.openai_server import OpenAIServer
from tests.support.promptfoo_examples import EXAMPLES_DIR, VERDICTS, differences, examples, server

KEY = "sk-loopback-examples-0123456789"


@pytest.fixture(scope="module")
def loopback() -> Iterator[OpenAIServer]:
    with server() as srv:
        yield srv


def test_every_example_has_recorded_verdicts() -> None:
    names = examples()
    assert len(names) >= 6
    for name in names:
        recorded = json.loads((EXAMPLES_DIR / name / VERDICTS).read_text(encoding="utf-8"))
        assert recorded, name


def test_the_examples_pass_some_cells_and_fail_others() -> None:
    verdicts = [c["pass"] for name in examples()
                for c in json.loads((EXAMPLES_DIR / name / VERDICTS).read_text(encoding="utf-8"))]  # fmt: skip
    assert 0 < sum(verdicts) < len(verdicts)


@pytest.mark.parametrize("name", examples())
def test_grid_gives_promptfoos_verdict_in_every_cell(name: str, loopback: OpenAIServer, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAI_BASE_URL", loopback.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    recorded = json.loads((EXAMPLES_DIR / name / VERDICTS).read_text(encoding="utf-8"))
    code = main(["grid", str(EXAMPLES_DIR / name / "promptfooconfig.yaml"), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code == (0 if all(c["pass"] for c in recorded) else 1), err[-2000:]
    cells = json.loads(out.strip().splitlines()[-1])["cells"]
    assert differences(cells, recorded) == {}
    assert len(cells) == len(recorded)
