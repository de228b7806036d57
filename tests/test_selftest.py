"""The ``--self-test`` flag: the real command in a subprocess, and its failure reporting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import selftest
from app.selftest import (
    Check,
    CheckFailed,
    CheckResult,
    CheckWarning,
    SelfTestContext,
    format_report,
)

ROOT = Path(__file__).resolve().parent.parent
REPORT_RE = re.compile(
    r"^self-test: OK flavour=(lite|full) settings=ok models=(\d+) mock=ok "
    r"smollm2=skipped\((quick|lite)\) tokens=ok keyring=(\S+) window=ok (\d+\.\d)s$"
)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env


def test_self_test_quick_passes_in_a_subprocess(app_home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--self-test", "--quick"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    match = REPORT_RE.match(lines[0])
    assert match, lines[0]
    assert int(match.group(2)) >= 5  # at least the mock models
    # The default is a temporary home: the user's (here: the test's) home gets no ledger rows.
    assert not (app_home / "data" / "usage.sqlite3").exists()


def test_self_test_home_keeps_its_files(tmp_path: Path, qapp: Any) -> None:
    home = tmp_path / "st-home"
    checks = [c for c in selftest.DEFAULT_CHECKS if c.name in ("settings", "mock")]
    assert selftest.main(["--self-test", "--self-test-home", str(home)], checks=checks) == 0
    assert (home / "config" / "settings.json").is_file()
    assert (home / "data" / "usage.sqlite3").is_file()


async def _boom(ctx: SelfTestContext) -> str:
    raise CheckFailed("the boom check is broken on purpose")


async def _crash(ctx: SelfTestContext) -> str:
    raise RuntimeError("unexpected crash")


async def _warn(ctx: SelfTestContext) -> str:
    raise CheckWarning("none(warning)", "just a warning")


async def _hang(ctx: SelfTestContext) -> str:
    import asyncio

    await asyncio.Event().wait()
    return "never"


def test_a_broken_check_fails_and_is_named(capsys: pytest.CaptureFixture[str], qapp: Any) -> None:
    checks = [
        Check("tokens", selftest.check_tokens),
        Check("boom", _boom),
        Check("crash", _crash),
        Check("warned", _warn),
    ]
    assert selftest.main(["--self-test"], checks=checks) == 1
    out, err = capsys.readouterr()
    line = out.strip()
    assert line.startswith("self-test: FAILED(boom,crash) ")
    assert " tokens=ok boom=FAIL crash=FAIL warned=none(warning) " in line
    assert "self-test: boom failed: the boom check is broken on purpose" in err
    assert "self-test: crash failed: RuntimeError: unexpected crash" in err
    assert "self-test: warned warning: just a warning" in err


def test_a_warning_alone_passes(capsys: pytest.CaptureFixture[str], qapp: Any) -> None:
    assert selftest.main(["--self-test"], checks=[Check("warned", _warn)]) == 0
    assert capsys.readouterr().out.startswith("self-test: OK ")


def test_a_hanging_check_times_out(capsys: pytest.CaptureFixture[str], qapp: Any) -> None:
    assert selftest.main(["--self-test"], checks=[Check("hang", _hang, timeout_s=0.2)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("self-test: FAILED(hang) ") and "hang=FAIL" in out
    assert "timed out after 0.2 s" in err


def test_unusable_home_fails_settings_and_the_checks_that_need_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], qapp: Any
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x", encoding="utf-8")
    checks = [c for c in selftest.DEFAULT_CHECKS if c.name in ("settings", "models", "tokens")]
    assert selftest.main(["--self-test", "--self-test-home", str(not_a_dir)], checks=checks) == 1
    out, err = capsys.readouterr()
    assert out.startswith("self-test: FAILED(settings,models) ")
    assert "tokens=ok" in out
    assert "self-test: models failed: not run: the services could not be built" in err


async def _stop_loop(ctx: SelfTestContext) -> str:
    import asyncio

    asyncio.get_running_loop().stop()
    await asyncio.Event().wait()
    return "never"


def test_a_dying_event_loop_fails_the_checks_not_yet_reported(
    capsys: pytest.CaptureFixture[str], qapp: Any
) -> None:
    checks = [
        Check("tokens", selftest.check_tokens),
        Check("stopper", _stop_loop),
        Check("later", selftest.check_tokens),
    ]
    assert selftest.main(["--self-test"], checks=checks) == 1
    out, err = capsys.readouterr()
    assert out.startswith("self-test: FAILED(stopper,later) ") and "tokens=ok" in out
    assert "self-test: later failed: Qt/event loop failed: RuntimeError" in err


def test_bad_argument_is_a_usage_error(qapp: Any) -> None:
    assert selftest.main(["--self-test", "--no-such-flag"]) == 2


def test_format_report() -> None:
    results = [CheckResult("a", "ok", "ok"), CheckResult("b", "skip", "skipped(lite)")]
    assert (
        format_report("lite", results, 1.234)
        == "self-test: OK flavour=lite a=ok b=skipped(lite) 1.2s"
    )


def _ctx_with_backend(tmp_path: Path, backend: Any) -> SelfTestContext:
    from app.core.paths import AppPaths
    from app.core.secrets import SecretStore
    from app.core.services import Services

    root = tmp_path / "kr-home"
    services = Services.create(
        AppPaths.under(root),
        secrets=SecretStore(backend, environ={}),
    )
    return SelfTestContext(flavour="lite", frozen=False, quick=True, home=root, services=services)


def test_no_secure_keyring_is_a_warning(tmp_path: Path, run: Any) -> None:
    from keyring.backends.fail import Keyring as FailKeyring

    ctx = _ctx_with_backend(tmp_path, FailKeyring())
    [result] = run(selftest.run_checks(ctx, [Check("keyring", selftest.check_keyring)]))
    assert (result.status, result.value) == ("warn", "none(warning)")
    assert "Secret Service" in result.message


@pytest.mark.keyring_real
@pytest.mark.skipif(
    os.environ.get("LLM_PLAYGROUND_REAL_KEYRING") != "1",
    reason="needs a real Secret Service: set LLM_PLAYGROUND_REAL_KEYRING=1 under dbus-run-session "
    "with an unlocked gnome-keyring-daemon (scripts/test.sh does)",
)
def test_real_keyring_round_trip_leaves_nothing_behind(tmp_path: Path, run: Any) -> None:
    from keyring.backends.SecretService import Keyring

    backend = Keyring()
    ctx = _ctx_with_backend(tmp_path, backend)
    [result] = run(selftest.run_checks(ctx, [Check("keyring", selftest.check_keyring)]))
    assert (result.status, result.value) == ("ok", "SecretServiceKeyring"), result.message
    assert backend.get_password(selftest.KEYRING_PROBE_SERVICE, "probe") is None
