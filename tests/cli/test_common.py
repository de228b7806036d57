"""The CLI's shared helpers (app/cli/common.py): exit codes, error and warning printing,
model ids with an endpoint, masking, strict UTF-8 for arguments and stdin."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from app.cli import common
from app.core.errors import (
    AuthError,
    ConfigError,
    InvalidModelId,
    InvalidParams,
    NoKeyringError,
    StorageBusy,
)
from app.core.types import ModelRef


def test_exit_codes_tell_provider_and_storage_failures_from_bad_input() -> None:
    assert common.exit_code_for(AuthError("no")) == common.EXIT_PROVIDER
    assert common.exit_code_for(StorageBusy("busy")) == common.EXIT_PROVIDER
    assert common.exit_code_for(NoKeyringError("none")) == common.EXIT_PROVIDER
    assert common.exit_code_for(InvalidParams("bad")) == common.EXIT_BAD_INPUT
    assert common.exit_code_for(ConfigError("bad")) == common.EXIT_BAD_INPUT


def test_errors_print_their_message_and_hint_and_a_note_without_a_keyring() -> None:
    out = io.StringIO()
    common.print_error(InvalidParams("temperature must be between 0 and 2.", hint="Use 0.7."), out)
    assert out.getvalue().startswith("error: temperature must be between 0 and 2.")
    assert "Use 0.7." in out.getvalue() and "Traceback" not in out.getvalue()
    out = io.StringIO()
    common.print_error(NoKeyringError("No keyring."), out)
    assert "OPENAI_API_KEY=... python -m app ask" in out.getvalue()


def test_warnings_are_printed_once_each() -> None:
    out = io.StringIO()
    common.print_warnings(["a", "b", "a"], out)
    assert out.getvalue() == "warning: a\nwarning: b\n"
    out = io.StringIO()
    common.print_warnings([], out)
    assert out.getvalue() == ""


def test_model_ids_with_an_endpoint_name_the_servers_model() -> None:
    assert common.resolve_model_id("mock:echo", None) == ModelRef.parse("mock:echo")
    assert str(common.resolve_model_id("llama3.2:1b", "Ollama")) == "openai:llama3.2:1b"
    assert str(common.resolve_model_id("gpt-4o", "http://127.0.0.1:9/v1")) == "openai:gpt-4o"
    assert str(common.resolve_model_id("openai:gpt-4o", "Ollama")) == "openai:gpt-4o"
    with pytest.raises(InvalidParams, match="only apply to OpenAI-compatible models") as info:
        common.resolve_model_id("mock:echo", "Ollama")
    assert "Drop the endpoint option" in info.value.hint
    with pytest.raises(InvalidModelId):
        common.resolve_model_id("nope:model", None)


def test_secrets_are_masked_to_their_last_four_characters() -> None:
    assert common.mask_secret("sk-abcdefghijklmnop") == "sk-…mnop"
    assert common.mask_secret("tokentokentoken1234") == "…1234"
    assert common.mask_secret("short") == "…"
    assert common.mask_secret("") == "(empty)"


def test_text_that_is_not_utf8_is_refused_saying_where() -> None:
    assert common.ensure_utf8("héllo", "The prompt") == "héllo"
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidParams, match=r"The prompt is not valid UTF-8 text \(byte 0xe9 at character 4\)") as info:
        common.ensure_utf8(bad, "The prompt")
    assert "iconv" in info.value.hint
    with pytest.raises(InvalidParams, match="U\\+D800"):
        common.ensure_utf8("\ud800", "x")


def test_stdin_is_read_as_strict_utf8_whatever_the_locale() -> None:
    assert common.read_stdin_text(io.TextIOWrapper(io.BytesIO("grüße".encode()), encoding="latin-1")) == "grüße"
    with pytest.raises(InvalidParams, match=r"byte 0xff at byte offset 2"):
        common.read_stdin_text(io.TextIOWrapper(io.BytesIO(b"ok\xff"), encoding="utf-8"))
    assert common.read_stdin_text(io.StringIO("plain")) == "plain"
    assert common.read_text_arg("-", io.StringIO("from stdin")) == "from stdin"
    assert common.read_text_arg("the argument", io.StringIO("unused")) == "the argument"


def test_every_text_argument_is_checked_and_named() -> None:
    common.check_arguments(argparse.Namespace(prompt="fine", system=["ok"], max_tokens=3, func=print))
    bad = b"\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidParams, match="The prompt is not valid UTF-8"):
        common.check_arguments(argparse.Namespace(prompt=bad))
    with pytest.raises(InvalidParams, match="--stop_words|--stop-words is not valid UTF-8"):
        common.check_arguments(argparse.Namespace(stop_words=["ok", bad]))


def test_a_key_in_a_base_url_stays_out_of_the_arguments() -> None:
    args = argparse.Namespace(base_url="http://user:sk-secretsecret123@127.0.0.1:9/v1", endpoint=None)
    common.accept_url_arguments(args)
    assert "sk-secret" not in args.base_url and args.base_url.startswith("http://")
    with pytest.raises(ConfigError):
        common.accept_url_arguments(argparse.Namespace(base_url="http://[bad", endpoint=None))


def test_run_with_services_closes_them_and_prints_their_warnings_after(app_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen = []

    async def body(services: object) -> int:
        seen.append(services)
        services.ledger.warnings.append("the ledger said something")  # type: ignore[attr-defined]
        print("output")
        return 7

    assert common.run_with_services(body) == 7  # type: ignore[arg-type]
    captured = capsys.readouterr()
    assert captured.out == "output\n"
    assert "warning: the ledger said something" in captured.err
    assert app_home.exists()
