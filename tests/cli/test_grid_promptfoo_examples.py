"""promptfoo's own example configs, copied unchanged into tests/fixtures/promptfoo_examples,
(and a probe written from promptfoo's docs), run by ``grid`` against the deterministic
loopback model (tests/support/promptfoo_examples.py) that promptfoo 0.121.20 ran them
against: every cell's verdict, score, named scores and assertion verdicts, and every prompt x
provider's totals (summed score, pass and assertion counts, named scores summed as promptfoo
sums them, derived metrics) equal the ones promptfoo recorded (promptfoo_verdicts.json and
promptfoo_columns.json, rerecorded with
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
from tests.support.promptfoo_examples import (
    COLUMNS,
    EXAMPLES_DIR,
    VERDICTS,
    column_differences,
    differences,
    examples,
    server,
)

KEY = "sk-loopback-examples-0123456789"


@pytest.fixture(scope="module")
def loopback() -> Iterator[OpenAIServer]:
    with server() as srv:
        yield srv


def test_every_example_has_recorded_verdicts() -> None:
    names = examples()
    assert len(names) >= 8
    for name in names:
        recorded = json.loads((EXAMPLES_DIR / name / VERDICTS).read_text(encoding="utf-8"))
        assert recorded, name
        assert json.loads((EXAMPLES_DIR / name / COLUMNS).read_text(encoding="utf-8")), name


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
    result = json.loads(out.strip().splitlines()[-1])
    assert differences(result["cells"], recorded) == {}
    assert len(result["cells"]) == len(recorded)
    columns = json.loads((EXAMPLES_DIR / name / COLUMNS).read_text(encoding="utf-8"))
    assert column_differences(result["summary"]["prompt_columns"], columns) == {}
    assert len(result["summary"]["prompt_columns"]) == len(columns)
