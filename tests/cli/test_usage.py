"""``python -m app usage``: totals from the ledger the ``ask`` command wrote."""

from __future__ import annotations

import json

import pytest

from app.cli import main


def test_usage_totals_after_asks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "-m", "mock:echo", "one two three"]) == 0
    assert main(["ask", "-m", "mock:fixed?text=a b", "x"]) == 0
    capsys.readouterr()
    assert main(["usage", "--json", "--by", "model"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["requests"] == 2
    assert data["total"]["completion_tokens"] == 5
    assert data["total"]["prompt_tokens"] == (3 + 3) + (1 + 3)
    assert data["by_model"]["mock:echo"]["completion_tokens"] == 3
    assert data["by_model"]["mock:fixed?text=a b"]["requests"] == 1

    assert main(["usage", "--by", "day"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].split()[:4] == ["total", "2", "10", "5"]
