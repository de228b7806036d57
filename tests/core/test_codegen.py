"""The generated programs (text level, and tool calls run against the loopback server; the
rest of running them is tests/cli/test_show_code.py)."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.codegen import (
    HttpTarget,
    LocalTarget,
    curl_program,
    http_target,
    key_env_for,
    openai_python,
    program,
    python_reader,
    transformers_python,
)
from app.core.errors import InvalidParams
from app.core.secrets import MemoryKeyring, SecretStore
from app.core.services import Services
from app.core.settings import EndpointConfig
from app.core.tools import ResponseSchema, ToolSpec
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest, ModelRef
from tests.support.openai_server import OpenAIServer
from tests.support.openai_tool_calls import tool_calls

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
    assert 'os.environ["OPENAI_API_KEY"]' in python and "'extra_body': {'top_k': 5}" in python
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


WEATHER = ToolSpec("get_weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})  # fmt: skip
SCHEMA = ResponseSchema({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                         "additionalProperties": False})  # fmt: skip


def test_programs_send_the_tools_choice_and_response_format_and_print_the_calls(tmp_path: Path) -> None:
    """The app's own body (tools, tool_choice, parallel_tool_calls, response_format) is what
    the programs send, run against the loopback server; the Python one prints the calls."""
    with OpenAIServer() as server:
        services = Services.create(secrets=SecretStore(backend=MemoryKeyring(), environ={}))
        services.settings.endpoints = [server.endpoint("Loop")]
        request = GenerationRequest(ModelRef("openai", "test-model"), (ChatMessage("user", "Weather in Oslo?"),),
                                    GenerationParams(seed=1), endpoint="Loop", tools=(WEATHER,),
                                    tool_choice="get_weather", parallel_tool_calls=False, response_schema=SCHEMA)  # fmt: skip
        try:
            target = http_target(services, request)
        finally:
            asyncio.run(services.aclose())
        assert target.body["tools"] == [WEATHER.to_openai()]
        assert target.body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert target.body["parallel_tool_calls"] is False and target.body["response_format"] == SCHEMA.to_openai()
        python, curl = openai_python(target), curl_program(target)
        (tmp_path / "p.py").write_text(python, encoding="utf-8")
        (tmp_path / "c.sh").write_text(curl, encoding="utf-8")
        server.enqueue(tool_calls(("call_1", "get_weather", ['{"ci', 'ty": "Os', 'lo"}']),
                                  ("call_2", "get_weather", '{"city": "Bergen"}')))  # fmt: skip
        result = subprocess.run([sys.executable, str(tmp_path / "p.py")], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert ('tool call call_1: get_weather({"city": "Oslo"})\n'
                'tool call call_2: get_weather({"city": "Bergen"})\n') in result.stdout  # fmt: skip
        result = subprocess.run(["sh", str(tmp_path / "c.sh")], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        from_python, from_curl = server.chat_requests
    assert from_python.json == from_curl.json == target.body  # both send exactly the app's body
    plain = openai_python(HttpTarget("http://h/v1", None, BODY, "x"))
    assert "tool_calls" not in plain and "tool_calls" not in python_reader(BODY)


def test_python_program_runs_the_tool_loop_with_the_stub_results(tmp_path: Path) -> None:
    """With stubs the Python program answers the calls as ``tool`` messages with their ids and
    sends again until the answer (the loopback server checks the ids)."""
    from tests.support.openai_tool_calls import answer_tool_results, tool_results

    with OpenAIServer() as server:
        body = {"model": "m", "messages": [{"role": "user", "content": "Weather?"}], "stream": True,
                "tools": [WEATHER.to_openai()]}  # fmt: skip
        python = openai_python(HttpTarget(server.base_url, None, body, "x"), {"get_weather": '{"temp": 21}'}, 3)
        (tmp_path / "p.py").write_text(python, encoding="utf-8")
        server.enqueue(tool_calls(("call_1", "get_weather", '{"city": "Oslo"}'), ("call_2", "get_weather", "{}")),
                       answer_tool_results())  # fmt: skip
        result = subprocess.run([sys.executable, str(tmp_path / "p.py")], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert 'Results: call_1={"temp": 21}; call_2={"temp": 21}' in result.stdout
        first, second = server.chat_requests
    assert first.json == body
    assert tool_results(second.json["messages"]) == [("call_1", '{"temp": 21}'), ("call_2", '{"temp": 21}')]
