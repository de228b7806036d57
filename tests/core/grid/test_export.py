"""Exports of a run: JSON, CSV and a self-contained HTML report; keys never reach them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ConfigError, register_secret
from app.core.grid.export import export_csv, export_html, export_json, write_export
from app.core.grid.model import Assertion, GridConfig, Prompt, TestCase, Variant
from app.core.grid.runner import GridRunner

KEY = "sk-exportleak1234567890abcdef"


@pytest.fixture
def finished(services: Any, run: Callable[..., Any]) -> GridRunner:
    register_secret(KEY)
    config = GridConfig(description="Export <check>", prompts=(Prompt("{{q}}"),),
                        variants=(Variant("mock:echo"), Variant("mock:fixed?text=nope", label="fixed")),
                        tests=(TestCase({"q": f"say <b>hi</b> {KEY}"}, (Assertion("icontains", "hi"),)),))
    runner = GridRunner(services.scheduler, config)

    async def scenario() -> None:
        runner.start()
        await runner.wait()

    run(scenario())
    return runner


def test_json_has_every_cell_the_columns_and_the_summary(finished: GridRunner) -> None:
    data = export_json(finished)
    assert data["format"] == "llm-playground.grid-run" and data["config"]["description"] == "Export <check>"
    assert len(data["cells"]) == 2 and [c["pass"] for c in data["cells"]] == [True, False]
    assert {"test", "vars", "provider", "label", "text", "usage", "cost_usd", "ttft_s", "latency_s", "tokens_per_s",
            "pass", "asserts", "error"} <= set(data["cells"][0])
    assert [c["label"] for c in data["columns"]] == ["mock:echo", "fixed"] and data["summary"]["passed"] == 1
    assert KEY not in json.dumps(data)


def test_csv_is_one_line_per_cell(finished: GridRunner) -> None:
    rows = list(csv.DictReader(io.StringIO(export_csv(finished))))
    assert [r["label"] for r in rows] == ["mock:echo", "fixed"] and rows[1]["pass"] == "False"
    assert "FAIL icontains" in rows[1]["asserts"] and KEY not in export_csv(finished)


def test_html_is_self_contained_and_escaped(finished: GridRunner, tmp_path: Path) -> None:
    page = export_html(finished)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "src=" not in page
    assert "http" not in page.replace("http://", "")  # nothing is loaded from anywhere
    assert "say &lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page
    assert 'class="badge pass"' in page and 'class="badge fail"' in page
    assert "Export &lt;check&gt;" in page and KEY not in page
    out = tmp_path / "r.html"
    write_export(finished, out)
    assert out.read_text(encoding="utf-8") == page
    with pytest.raises(ConfigError, match="must end in .json, .csv or .html"):
        write_export(finished, tmp_path / "r.pdf")


def test_a_cell_without_checks_reads_done_as_in_the_grid(services: Any, run: Callable[..., Any]) -> None:
    """The grid said DONE and the HTML export PASS for a cell that had no assertions."""
    runner = GridRunner(services.scheduler, GridConfig(prompts=(Prompt("hi"),), variants=(Variant("mock:echo"),)))

    async def scenario() -> None:
        runner.start()
        await runner.wait()

    run(scenario())
    page = export_html(runner)
    assert 'class="badge stopped">DONE<' in page and 'class="badge pass"' not in page
