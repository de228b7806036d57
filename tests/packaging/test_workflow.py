"""The installers' workflow stays runnable and safe: actionlint passes, zizmor (offline) finds
nothing of medium or high severity, actions are pinned by commit, no cache feeds the builds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
USES = re.compile(r"^\s*-?\s*uses:\s*(?P<ref>\S+)(?P<comment>.*)$")


def _uses(path: Path) -> list[tuple[str, str]]:
    return [(m["ref"], m["comment"]) for line in path.read_text(encoding="utf-8").splitlines()
            if (m := USES.match(line))]  # fmt: skip


def test_there_is_a_workflow() -> None:
    assert WORKFLOWS and any(p.name == "build.yml" for p in WORKFLOWS)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_the_version_in_a_comment(path: Path) -> None:
    uses = _uses(path)
    assert uses
    for ref, comment in uses:
        action, _, version = ref.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", version), f"{ref}: pin by full commit SHA"
        assert re.search(r"#\s*v\d+(\.\d+)*", comment), f"{ref}: say the tag in a comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_cache_credentials_or_default_permissions(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*cache:", text, re.M), "no dependency cache may feed release builds"
    assert "actions/cache" not in text
    assert re.search(r"^permissions:", text, re.M), "set least permissions at the top level"
    checkouts = [ref for ref, _ in _uses(path) if ref.startswith("actions/checkout@")]
    assert text.count("persist-credentials: false") == len(checkouts)


def test_actionlint_passes() -> None:
    run = subprocess.run([str(BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_zizmor_offline_reports_no_medium_or_high_finding() -> None:
    run = subprocess.run([str(BIN / "zizmor"), "--offline", "--min-severity=medium",
                          str(ROOT / ".github" / "workflows")], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
