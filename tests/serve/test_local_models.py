"""In-process models through the server: greedy answers equal ``ask``'s, an adapter id answers
as ``ask --lora`` does, a client that leaves frees the model worker at once; the app itself as
a client of its own server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.cli import main
from tests.cli.test_ask import ledger_rows
from tests.serve.conftest import ServerThread
from tests.serve.test_server import _until

PROMPT = "hello world"


def ask_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["ask", *argv, "--json", PROMPT])
    out, err = capsys.readouterr()
    assert code == 0, err
    return str(json.loads(out.splitlines()[-1])["text"])


def served_text(srv: ServerThread, model: str, **kwargs: object) -> str:
    reply = srv.sdk().chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                              temperature=0, max_tokens=8, **kwargs)
    return str(reply.choices[0].message.content)


def test_greedy_answers_and_adapter_ids_equal_asks(
    serve_factory: Callable[..., ServerThread], tiny_local: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from app.core.types import AdapterSpec

    model_dir, adapter_dir = tiny_local
    srv = serve_factory(adapters={"ada": AdapterSpec(str(adapter_dir), 1.0, "ada")})
    base = f"local:{model_dir}"
    through_server = served_text(srv, base)
    tuned_server = served_text(srv, f"{base}+ada")
    streamed = srv.sdk().chat.completions.create(model=base, messages=[{"role": "user", "content": PROMPT}],
                                                 temperature=0, max_tokens=8, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == through_server
    argv = ["-m", base, "--temperature", "0", "--max-tokens", "8"]
    assert through_server == ask_text(argv, capsys)
    assert tuned_server == ask_text([*argv, "--lora", f"{adapter_dir}:1.0"], capsys)
    assert tuned_server != through_server  # the adapter answered, not the base
    served_rows = [dict(r) for r in ledger_rows() if (r["run_id"] or "").startswith("served:")]
    assert [r["adapter"] is not None for r in served_rows] == [False, True, False]


def test_a_client_that_leaves_cancels_its_run_and_frees_the_model(
    served: ServerThread, tiny_local: tuple[Path, Path]
) -> None:
    model = f"local:{tiny_local[0]}"
    client = served.sdk()
    long = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                          temperature=0, max_tokens=100_000, stream=True)
    chunks = iter(long)
    for _ in range(3):
        next(chunks)  # it is generating on the model worker
    long.close()  # the client goes away mid-stream
    assert served.call(_until(lambda: served.server.active_requests() == 0))  # its run ended: the worker is free
    assert served_text(served, model)  # and the next request gets the model
    rows = [dict(r) for r in ledger_rows()]
    assert [r["finish_reason"] for r in rows] == ["cancelled", "length"]
    assert rows[0]["completion_tokens"] < 400  # cut within tokens, not run to the context's end


def test_the_app_is_a_client_of_its_own_server(served: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    from app.core.secrets import SecretStore

    assert served.key is not None
    SecretStore().set(f"endpoint:{served.url}", served.key)  # the key as the app keeps any endpoint's
    text = ask_text(["-m", "openai:mock:echo", "--base-url", served.url], capsys)
    assert text == PROMPT
    assert served.call(_until(lambda: any(f.status == "finished" for f in served.figures)))  # logged after the bytes
    assert [f.client.split("/")[0] for f in served.figures if f.status == "finished"] == ["AsyncOpenAI"]
