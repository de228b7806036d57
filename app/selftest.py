"""``python -m app --self-test``: check an installation headless and print one report line.

Checks, in order: ``settings`` (services build, settings load and save), ``models`` (every
provider lists or reports its models), ``mock`` (a generation through the engine),
``smollm2`` (a short generation with the bundled model; full flavour only, skipped with
``--quick``), ``tokens`` (count_chat gives the known values for gpt-4o and gpt-4, offline),
``keyring`` (the backend's name and a write/read/delete round trip under its own service
name; no secure keyring is a warning, not a failure) and
``window`` (QApplication offscreen, the real main window built, shown and closed).

Example report::

    self-test: OK flavour=lite settings=ok models=34 mock=ok smollm2=skipped(lite) tokens=ok keyring=SecretServiceKeyring window=ok 0.9s

Exit status 0 when every check passed, 1 when one failed (the line starts
``self-test: FAILED(<check>,...)`` and each failure's message goes to stderr), 2 for bad
arguments. The checks run in a temporary app home (so the user's settings, history and usage
ledger are untouched) unless ``--self-test-home DIR`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.core.services import Services

# count_chat for this chat: o200k_base (gpt-4o) and cl100k_base (gpt-4), OpenAI cookbook rule.
TOKEN_PROBE: tuple[tuple[str, str], ...] = (
    ("system", "You are a terse assistant."),
    ("user", "Grüße aus Köln! Wie viele Tokens sind das?"),
)
TOKEN_EXPECTED: dict[str, int] = {"gpt-4o": 29, "gpt-4": 30}
MOCK_TEXT = "self test ok"
KEYRING_PROBE_SERVICE = "llm-playground-selftest"


class CheckFailed(Exception):
    """A check failed; the message says what is wrong and what to do."""


class CheckWarning(Exception):
    """A check found something to report that is not a failure (``value`` goes in the line)."""

    def __init__(self, value: str, message: str) -> None:
        self.value = value
        super().__init__(message)


@dataclass
class CheckResult:
    """The outcome of one check: ``status`` is ok, warn, skip or fail."""

    name: str
    status: str
    value: str
    message: str = ""


@dataclass
class SelfTestContext:
    """What the checks share."""

    flavour: str
    frozen: bool
    quick: bool
    home: Path
    services: Services | None = None
    notes: dict[str, Any] = field(default_factory=dict)


CheckFn = Callable[[SelfTestContext], Awaitable[str]]


@dataclass(frozen=True)
class Check:
    """A named check with its own time limit (seconds)."""

    name: str
    run: CheckFn
    timeout_s: float = 60.0


def detect_flavour() -> tuple[str, bool]:
    """(flavour, frozen): a bundle says its flavour in build-info.json; a source tree is
    ``full`` when torch and transformers are importable, else ``lite``."""
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        try:
            info = json.loads((Path(meipass) / "build-info.json").read_text(encoding="utf-8"))
            return str(info.get("flavour", "lite")), True
        except (OSError, ValueError):
            pass
    from app.core.services import local_models_available

    return ("full" if local_models_available() else "lite"), bool(meipass)


async def check_settings(ctx: SelfTestContext) -> str:
    """Build the services (paths, settings, secrets, ledger, history) and save settings."""
    from app.core.paths import AppPaths
    from app.core.services import Services

    root = ctx.home
    ctx.services = Services.create(AppPaths.under(root))
    ctx.services.save_settings()
    again = ctx.services.settings_store.load()
    if again.model_dump() != ctx.services.settings.model_dump():
        raise CheckFailed("settings did not read back the same after saving")
    return "ok"


def _services(ctx: SelfTestContext) -> Services:
    if ctx.services is None:
        raise CheckFailed("not run: the services could not be built (see the settings check)")
    return ctx.services


async def check_models(ctx: SelfTestContext) -> str:
    """List every provider's models; the mock models must be there."""
    listing = await _services(ctx).list_all_models()
    ctx.notes["model_errors"] = listing.errors
    ids = {str(m.ref) for m in listing.models}
    if "mock:echo" not in ids:
        raise CheckFailed(f"mock:echo missing from the model list (errors: {listing.errors})")
    return str(len(listing.models))


async def _generate(ctx: SelfTestContext, model: str, prompt: str, max_tokens: int) -> Any:
    from app.core.types import ChatMessage, GenerationParams, GenerationRequest, ModelRef

    request = GenerationRequest(
        model=ModelRef.parse(model),
        messages=(ChatMessage("user", prompt),),
        params=GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=0),
    )
    return await _services(ctx).scheduler.run(request)


async def check_mock(ctx: SelfTestContext) -> str:
    """A whole generation through the engine (usage, cost and ledger included)."""
    result = await _generate(ctx, f"mock:fixed?text={MOCK_TEXT.replace(' ', '+')}", "ping", 16)
    if result.text != MOCK_TEXT or result.finish_reason != "stop":
        raise CheckFailed(
            f"mock answered {result.text!r} ({result.finish_reason}), expected {MOCK_TEXT!r}"
        )
    if result.usage.completion_tokens != len(MOCK_TEXT.split()):
        raise CheckFailed(f"mock usage is {result.usage.completion_tokens} tokens, expected 3")
    return "ok"


async def check_smollm2(ctx: SelfTestContext) -> str:
    """Full flavour: generate a few tokens with the bundled model. Lite: the local provider
    must say it is unavailable (an app error with a hint), never crash."""
    from app.core.errors import AppError

    if ctx.flavour != "full":
        try:
            models = await _services(ctx).registry.get("local").list_models()
            listed = [m for m in models if str(m.ref) == "local:smollm2"]
            if listed and (listed[0].state != "unavailable" or not listed[0].description):
                raise CheckFailed(
                    "without torch, local:smollm2 must be listed as unavailable with a reason"
                )
            await _generate(ctx, "local:smollm2", "Say hello.", 4)
        except AppError:  # the expected outcome: a clear error, not a crash
            return "skipped(lite)"
        except CheckFailed:
            raise
        except Exception as exc:
            raise CheckFailed(
                f"the local provider crashes without torch instead of saying it is unavailable: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        raise CheckFailed("local:smollm2 generated text in the lite flavour, which has no torch")
    if ctx.quick:
        return "skipped(quick)"
    from app.providers.bundled import bundled_status

    ok, reason = bundled_status()
    if not ok:
        if ctx.frozen:
            raise CheckFailed(f"the full bundle lacks its model: {reason}")
        raise CheckWarning("skipped(no-model)", reason)
    result = await _generate(ctx, "local:smollm2", "Say hello.", 8)
    if not result.text.strip() or result.usage.completion_tokens < 1:
        raise CheckFailed(f"SmolLM2 gave no text (finish reason {result.finish_reason})")
    return "ok"


async def check_tokens(ctx: SelfTestContext) -> str:
    """count_chat gives the known values (bundled encodings, no network)."""
    from app.core.tokens import count_chat
    from app.core.types import ChatMessage

    messages = [ChatMessage(role, text) for role, text in TOKEN_PROBE]  # type: ignore[arg-type]
    for model, expected in TOKEN_EXPECTED.items():
        got = count_chat(model, messages)
        if got.tokens != expected or not got.exact:
            raise CheckFailed(
                f"count_chat({model}) = {got.tokens} ({got.method}), expected {expected} exact"
            )
    return "ok"


async def check_keyring(ctx: SelfTestContext) -> str:
    """The keyring backend's name; no secure keyring is a warning (session-only keys)."""
    secrets = _services(ctx).secrets
    name = secrets.backend_name().replace(" ", "")
    if not secrets.available():
        raise CheckWarning(
            "none(warning)",
            f"no secure keyring ({name}); keys can only be kept for the session. "
            "Install and unlock a Secret Service (gnome-keyring or KWallet) to store them.",
        )
    # A write/read/delete round trip under a service name of its own (no user entry touched).
    import secrets as _random

    backend = secrets.backend
    probe = _random.token_hex(8)
    try:
        backend.set_password(KEYRING_PROBE_SERVICE, "probe", probe)
        try:
            read = backend.get_password(KEYRING_PROBE_SERVICE, "probe")
        finally:
            backend.delete_password(KEYRING_PROBE_SERVICE, "probe")
    except Exception as exc:
        raise CheckFailed(
            f"keyring {name} is present but a write/read/delete failed: {type(exc).__name__}"
        ) from exc
    if read != probe:
        raise CheckFailed(f"keyring {name} gave back a different value than was stored")
    return name


async def check_window(ctx: SelfTestContext) -> str:
    """Build the real main window offscreen, show it, let the loop run, close it."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if not isinstance(app, QApplication):
        raise CheckFailed("no QApplication")
    from app.ui.launch import create_main_window

    app.setQuitOnLastWindowClosed(False)  # closing the window must not stop the loop
    window = create_main_window(_services(ctx), restore=False)
    try:
        window.show()
        for _ in range(5):
            app.processEvents()
            await asyncio.sleep(0.01)
        if not window.isVisible():
            raise CheckFailed("the main window did not show")
    finally:
        window.close()
        backend = getattr(window, "backend", None)
        if backend is not None:
            await asyncio.wait_for(backend.aclose(), 10)
        window.deleteLater()
        app.processEvents()
    return "ok"


DEFAULT_CHECKS: tuple[Check, ...] = (
    Check("settings", check_settings, 30),
    Check("models", check_models, 30),
    Check("mock", check_mock, 30),
    Check("smollm2", check_smollm2, 600),
    Check("tokens", check_tokens, 30),
    Check("keyring", check_keyring, 30),
    Check("window", check_window, 60),
)


async def run_checks(
    ctx: SelfTestContext,
    checks: tuple[Check, ...] | list[Check],
    results: list[CheckResult] | None = None,
) -> list[CheckResult]:
    """Run every check in order (a failure does not stop the others); close the services.

    Results are appended to ``results`` (when given) as they come, so they survive a loop
    that dies mid-way."""
    results = [] if results is None else results
    try:
        for check in checks:
            try:
                value = await asyncio.wait_for(check.run(ctx), check.timeout_s)
                results.append(
                    CheckResult(check.name, "skip" if value.startswith("skipped") else "ok", value)
                )
            except CheckWarning as warn:
                results.append(CheckResult(check.name, "warn", warn.value, str(warn)))
            except TimeoutError:
                results.append(
                    CheckResult(
                        check.name, "fail", "FAIL", f"timed out after {check.timeout_s:g} s"
                    )
                )
            except Exception as exc:  # a failed check is reported by name, never raised
                message = (
                    str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
                )
                results.append(CheckResult(check.name, "fail", "FAIL", message))
    finally:
        if ctx.services is not None:
            await ctx.services.aclose()
            ctx.services = None
    return results


def format_report(flavour: str, results: list[CheckResult], elapsed_s: float) -> str:
    """The one-line report."""
    failed = [r.name for r in results if r.status == "fail"]
    head = "OK" if not failed else f"FAILED({','.join(failed)})"
    fields = " ".join(f"{r.name}={r.value}" for r in results)
    return f"self-test: {head} flavour={flavour} {fields} {elapsed_s:.1f}s"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llm-playground --self-test", add_help=True)
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--quick", action="store_true", help="skip the bundled-model generation")
    parser.add_argument(
        "--self-test-home", metavar="DIR", help="app home to use (default: a temporary one)"
    )
    return parser.parse_args(argv)


def _run_in_qt(ctx: SelfTestContext, checks: tuple[Check, ...] | list[Check]) -> list[CheckResult]:
    """Run the checks on a qasync loop over a QApplication, as the app itself runs.

    If Qt or the loop breaks, the checks not yet reported fail with that error."""
    results: list[CheckResult] = []
    try:
        import PySide6.QtWidgets as QtWidgets  # PySide6 before qasync
        import qasync

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(
            [sys.argv[0] or "llm-playground"]
        )
        loop = qasync.QEventLoop(app, already_running=False)
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(run_checks(ctx, checks, results))
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:  # a loop stopped mid-way: let run_checks close the services
                task.cancel()
            if pending and not loop.is_closed():
                loop.run_until_complete(asyncio.wait(pending, timeout=10))
            asyncio.set_event_loop(None)
            loop.close()
    except Exception as exc:  # Qt or qasync itself is broken
        done = {r.name for r in results}
        message = f"Qt/event loop failed: {type(exc).__name__}: {exc}"
        results += [
            CheckResult(c.name, "fail", "FAIL", message) for c in checks if c.name not in done
        ]
    return results


def main(
    argv: list[str] | None = None, checks: tuple[Check, ...] | list[Check] | None = None
) -> int:
    """Run the self-test; print the report line; return 0 (passed), 1 (failed) or 2 (usage)."""
    try:
        args = _parse(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.perf_counter()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.self_test_home:
        home = Path(args.self_test_home).expanduser()
    else:
        tmp = tempfile.TemporaryDirectory(
            prefix="llm-playground-selftest-", ignore_cleanup_errors=True
        )
        home = Path(tmp.name)
    old_home = os.environ.get("LLM_PLAYGROUND_HOME")
    os.environ["LLM_PLAYGROUND_HOME"] = str(home)
    try:
        try:
            flavour, frozen = detect_flavour()
        except Exception as exc:  # pragma: no cover - only a broken install gets here
            flavour, frozen = f"unknown({type(exc).__name__})", False
        ctx = SelfTestContext(flavour=flavour, frozen=frozen, quick=args.quick, home=home)
        chosen = DEFAULT_CHECKS if checks is None else checks
        results = _run_in_qt(ctx, chosen)
    finally:
        if old_home is None:
            os.environ.pop("LLM_PLAYGROUND_HOME", None)
        else:
            os.environ["LLM_PLAYGROUND_HOME"] = old_home
        if tmp is not None:
            tmp.cleanup()
    line = format_report(flavour, results, time.perf_counter() - started)
    out = sys.stdout or sys.stderr
    if out is not None:
        print(line, file=out, flush=True)
    err = sys.stderr
    if err is not None:
        for r in results:
            if r.status in ("fail", "warn") and r.message:
                kind = "failed" if r.status == "fail" else "warning"
                print(f"self-test: {r.name} {kind}: {r.message}", file=err, flush=True)
    return 1 if any(r.status == "fail" for r in results) else 0
