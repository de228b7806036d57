"""The dispatcher's own handling: Ctrl+C while the parser is still being built (the command
modules load then, seconds on a cold start) is exit 130, not a traceback (issue 18)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from app.cli import dispatch


@pytest.fixture
def sigint_restored() -> Iterator[None]:
    """The dispatcher ignores Ctrl+C once it has reported one (the process is on its way
    out); give this test process its handler back after."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


def _interrupted() -> object:
    raise KeyboardInterrupt


@pytest.mark.usefixtures("sigint_restored")
@pytest.mark.parametrize("argv", [["ask", "-m", "mock:echo", "hi"], ["ask", "--json", "hi"]])
def test_ctrl_c_while_the_parser_is_built_exits_130(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(dispatch, "build_parser", _interrupted)  # Ctrl+C during the commands' imports
    assert dispatch.main(argv) == 130
    out, err = capsys.readouterr()
    assert "Cancelled." in err
    if "--json" in argv:  # the JSON line still ends the output
        assert json.loads(out.splitlines()[-1]) == {"error": "Cancelled."}
    else:
        assert out == ""
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # a second Ctrl+C cannot cut the exit short
