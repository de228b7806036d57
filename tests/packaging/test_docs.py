"""The README and docs/ pages: every ``python -m app`` command they show exists in the CLI's
parser (no network, no model runs), and every relative link points at a file (and heading)
that exists."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from app.__main__ import USAGE
from app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
# What runs the app: the venv's or any python, or scripts/run.sh (which passes its arguments on).
APP = re.compile(r"(?:(?:\.venv/bin/)?python -m app|bash scripts/run\.sh)(?=\s|$)(.*)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def shown_commands(text: str) -> list[str]:
    """The arguments after ``python -m app`` in shell code blocks and in inline code spans."""
    found: list[str] = []
    for lang, body in FENCE.findall(text):
        if lang in ("bash", "sh", "shell", "console", ""):
            found += [m.group(1) for line in body.splitlines() if (m := APP.search(line))]
    for span in INLINE.findall(FENCE.sub("", text)):
        if m := APP.match(span):
            found.append(m.group(1))
    return found


def _words(args: str) -> list[str]:
    """Shell words of a documented command line, without comments and the docs' brackets."""
    args = re.sub(r"(^|\s)#.*$", "", args)
    return [w for w in (t.strip("[]") for t in shlex.split(args)) if w]


def _window_flags() -> set[str]:
    """The options ``python -m app`` takes without a command (its usage text lists them)."""
    return set(re.findall(r"--[a-z][a-z-]*", USAGE)) | {"-h"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings]


def _check_choices(where: str, action: argparse.Action, value: str) -> list[str]:
    """``a|b|c`` in the docs: each alternative must be a choice (placeholders are not checked)."""
    if action.choices is None or value.isupper():
        return []
    choices = {str(c) for c in action.choices}
    return [f"{where}: {alt!r} is not one of {sorted(choices)}" for alt in value.split("|") if alt not in choices]


def problems(args: str) -> list[str]:
    """Why ``python -m app ARGS`` as documented would not parse: unknown commands, actions,
    options or choices. ``a | b`` after a command with actions (``history``) starts another
    alternative; ``[...]`` marks optional parts; upper-case words are placeholders."""
    words = _words(args)
    if not words or words[0].startswith("-"):
        if "--self-test" in words:
            from app.selftest import _parse

            try:
                _parse(words)
            except SystemExit:
                return [f"--self-test does not take {words}"]
            return []
        return [f"unknown window option {w}" for w in words if w.startswith("-") and w not in _window_flags()]
    if words[0].isupper() or words[0] == "...":  # python -m app COMMAND -h, python -m app ...
        return []
    commands = _subparsers(build_parser())
    if words[0] not in commands:
        return [f"unknown command {words[0]!r}"]
    top = cur = commands[words[0]]
    where, found, position, i = words[0], [], 0, 1
    while i < len(words):
        word = words[i]
        i += 1
        if word == "|":
            if _subparsers(top):  # another action of the same command
                cur, position = top, 0
            continue
        if word.startswith("-") and len(word) > 1:
            action = cur._option_string_actions.get(word.split("=")[0])
            if action is None:
                found.append(f"{where}: unknown option {word}")
                continue
            if action.nargs != 0 and "=" not in word and i < len(words):
                found += _check_choices(f"{where} {word}", action, words[i])
                i += 1
            continue
        positionals = _positionals(cur)
        if position < len(positionals):
            action = positionals[position]
            if isinstance(action, argparse._SubParsersAction):
                if word not in action.choices:
                    found.append(f"{where}: unknown action {word!r}")
                    return found
                cur, position, where = action.choices[word], 0, f"{where} {word}"
                continue
            found += _check_choices(where, action, word)
        position += 1
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_parses(page: Path) -> None:
    shown = shown_commands(page.read_text(encoding="utf-8"))
    bad = {args: p for args in shown if (p := problems(args))}
    assert not bad, f"{page.name}: commands that would not parse: {bad}"


def test_the_pages_show_commands() -> None:
    """The extraction finds them (an empty list would pass the test above vacuously)."""
    readme = shown_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    cli = shown_commands((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
    assert len(readme) >= 8 and len(cli) >= 14
    assert any(a.strip().startswith("history list") for a in cli)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ('ask --no-such-flag "Hi"', "unknown option --no-such-flag"),
        ("asked -m mock:echo Hi", "unknown command 'asked'"),
        ("usage [--by model|week]", "'week' is not one of"),
        ("keys set|rename openai", "'rename' is not one of"),
        ("history list [--search Q] | shwo ID", "unknown action 'shwo'"),
        ("history show ID --search Q", "history show: unknown option --search"),
        ("--demo --no-window", "unknown window option --no-window"),
        ("--self-test --slow", "--self-test does not take"),
    ],
)
def test_a_wrong_command_is_caught(args: str, expected: str) -> None:
    assert any(expected in p for p in problems(args)), problems(args)


def test_documented_shapes_parse() -> None:
    for args in (
        "models [--endpoint NAME | --base-url URL]",
        "history export ID --format md|json [-o FILE] | delete ID",
        'ask --base-url http://localhost:11434/v1 -m llama3.2:1b "Hi"   # Ollama',
        "--screenshot out.png [--demo]",
        "--self-test [--quick]",
    ):
        assert problems(args) == [], args


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a Markdown text (outside code blocks), with GitHub's -N suffixes."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, heading in HEADING.findall(FENCE.sub("", text)):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    """Relative links of a page whose file, or heading in that file, does not exist."""
    text = page.read_text(encoding="utf-8")
    bad = []
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            bad.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text(encoding="utf-8")):
            bad.append(f"{target}: no heading #{anchor}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Title\n\n## A `code` heading: yes\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-code-heading-yes) [self](#here) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) ![img](pic.png)\n\n## Here\n"
        "```bash\n[in code](not-checked.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nope: no heading #nope",
        "pic.png: no such file",
    ]


def test_every_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {t.partition("#")[0] for t in LINK.findall(readme)}
    assert {f"docs/{p.name}" for p in PAGES[1:]} <= linked
