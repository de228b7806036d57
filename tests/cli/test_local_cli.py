"""``ask`` with an in-process model: progress on stderr, --lora changes the answer, ledger row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from tests.cli.test_ask import ledger_rows


def ask_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, object], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.splitlines()[-1]), err


def test_local_ask_with_and_without_lora(
    tiny_local: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, adapter_dir = tiny_local
    base_argv = [
        "ask",
        "-m",
        f"local:{model_dir}",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--json",
    ]
    base, err = ask_json([*base_argv, "hello world"], capsys)
    assert "loading" in err and "\r" not in err  # stderr is no terminal: one line per phase
    assert base["text"] and base["usage"]["estimated"] is False  # type: ignore[index]
    tuned, _ = ask_json([*base_argv, "--lora", f"{adapter_dir}:1.0", "hello world"], capsys)
    assert tuned["text"] != base["text"]
    half, _ = ask_json([*base_argv, "--lora", f"{adapter_dir}:0", "hello world"], capsys)
    assert half["text"] == base["text"]  # scale 0 is the base model
    rows = ledger_rows()
    assert [r["adapter"] is not None for r in rows] == [False, True, True]
    assert all(r["provider"] == "local" for r in rows)


def test_bad_lora_scale_and_missing_adapter(
    tiny_local: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, adapter_dir = tiny_local
    assert main(["ask", "-m", f"local:{model_dir}", "--lora", f"{adapter_dir}:50", "hi"]) == 2
    assert "LoRA scale must be between 0 and 10" in capsys.readouterr().err
    assert main(["ask", "-m", f"local:{model_dir}", "--lora", str(tmp_path / "nothing"), "hi"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "error:" in err and "Traceback" not in err


def test_count_with_the_local_tokenizer(
    tiny_local: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoTokenizer

    model_dir, _ = tiny_local
    tok = AutoTokenizer.from_pretrained(model_dir)
    plain = len(tok("hello world, what is the capital", add_special_tokens=False)["input_ids"])
    assert (
        main(["count", "-m", f"local:{model_dir}", "--json", "hello world, what is the capital"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["exact"] is True and data["method"].startswith("tokenizer:")
    assert data["tokens"] == plain
    assert (
        main(["count", "-m", f"local:{model_dir}", "--chat", "hello world, what is the capital"])
        == 0
    )
    out = capsys.readouterr().out
    chat = int(out.split()[0])
    assert chat > plain and "(exact, tokenizer:" in out
