"""The generated programs (text level; running them is tests/cli/test_show_code.py)."""

from __future__ import annotations

import ast

import pytest

from app.core.codegen import (
    HttpTarget,
    LocalTarget,
    curl_program,
    key_env_for,
    openai_python,
    program,
    transformers_python,
)
from app.core.errors import InvalidParams
from app.core.settings import EndpointConfig
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef

REQUEST = GenerationRequest(ModelRef("openai", "gpt-4o-mini"), (ChatMessage("user", "it's \"here\""),),
                            GenerationParams(temperature=0.2, seed=3))
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "it's \"here\""}], "stream": True,
        "temperature": 0.2, "extra_body": {"top_k": 5}}


def test_key_variables_by_endpoint() -> None:
    assert key_env_for(EndpointConfig(name="OpenAI", base_url="https://api.openai.com/v1", kind="openai")) == "OPENAI_API_KEY"
    assert key_env_for(EndpointConfig(name="Open Router", base_url="https://x/v1", needs_key=True)) == "OPEN_ROUTER_API_KEY"
    assert key_env_for(EndpointConfig(name="Ollama", base_url="http://localhost:11434/v1")) is None


def test_python_and_curl_are_valid_and_read_the_key_from_the_environment() -> None:
    target = HttpTarget("http://127.0.0.1:1/v1", "OPENAI_API_KEY", BODY, "gpt-4o-mini")
    python = openai_python(target)
    ast.parse(python)
    assert 'os.environ["OPENAI_API_KEY"]' in python and "extra_body={'top_k': 5}" in python
    curl = curl_program(target)
    assert '"top_k": 5' in curl and "extra_body" not in curl and "$OPENAI_API_KEY" in curl
    assert "<<'JSON'" in curl  # a quoted here-document: nothing in the body is expanded by the shell
    keyless = openai_python(HttpTarget("http://127.0.0.1:1/v1", None, BODY, "x"))
    ast.parse(keyless)
    assert "not-needed" in keyless and "Authorization" not in curl_program(HttpTarget("http://h/v1", None, BODY, "x"))


def test_transformers_program_carries_adapters_params_and_seed() -> None:
    request = GenerationRequest(ModelRef("local", "/m"), (ChatMessage("user", "hi"),),
                                GenerationParams(temperature=0.8, top_p=0.9, seed=42, stop=("END",), max_tokens=20),
                                adapters=(AdapterSpec("/a", 0.7), AdapterSpec("/b", 0.5)))
    code = transformers_python(LocalTarget("/m", None, "auto", "auto", "local:/m"), request)
    ast.parse(code)
    assert "torch.manual_seed(42)" in code and "'do_sample': True" in code and "'top_p': 0.9" in code
    assert "add_weighted_adapter(['a0', 'a1'], [0.7, 0.5]" in code and "STOP = ['END']" in code
    gguf = transformers_python(LocalTarget("/dir", "m.gguf", "float32", "cpu", "x"), request)
    assert "gguf_file='m.gguf'" in gguf and "DTYPE = torch.float32" in gguf and "DEVICE = 'cpu'" in gguf


def test_no_program_for_the_wrong_kind_of_model() -> None:
    with pytest.raises(InvalidParams, match="mock provider"):
        program("python", GenerationRequest(ModelRef("mock", "echo"), ()))
    with pytest.raises(InvalidParams, match="served over HTTP"):
        program("transformers", REQUEST, http=HttpTarget("http://h/v1", None, BODY, "x"))
    with pytest.raises(InvalidParams, match="no code for 'rust'"):
        program("rust", REQUEST)
