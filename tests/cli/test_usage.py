"""``python -m app usage``: totals from the ledger the ``ask`` command wrote."""

from __future__ import annotations

import json
from pathlib import Path

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


@pytest.mark.parametrize("command", [["usage", "--export-csv"], ["history", "export", "CID", "--format", "md", "-o"]])
def test_an_export_into_a_missing_folder_is_refused_and_creates_nothing(
    command: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 18: ``usage --export-csv /nonexistent/x.csv`` created folders (at the root)
    while ``history export -o`` refused: both refuse, with exit 2, through one check."""
    assert main(["ask", "-m", "mock:echo", "--conversation", "new", "--json", "hi"]) == 0
    cid = json.loads(capsys.readouterr().out.splitlines()[-1])["conversation_id"]
    target = tmp_path / "no-such-folder" / "deeper" / "x.csv"
    argv = [cid if part == "CID" else part for part in command]
    assert main([*argv, str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'no-such-folder' / 'deeper'} does not exist" in err and "Create the folder" in err
    assert not (tmp_path / "no-such-folder").exists()
    assert main([*argv, str(tmp_path / "x.csv")]) == 0  # an existing folder works
    assert (tmp_path / "x.csv").read_text(encoding="utf-8")
