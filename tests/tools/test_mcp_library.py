"""MCP prompts and resources: listed at start, filled and read by real test servers (stdio and
streamable HTTP, tests/support/mcp_servers.py), and turned into text for a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.core.errors import ToolError
from app.tools.mcp_client import McpServers
from app.tools.mcp_library import (
    MAX_INSERT_CHARS,
    McpPromptArgument,
    bounded,
    prompt_text,
    resource_text,
)
from tests.tools.test_mcp_client import call, http, http_url, scenario, stdio, store_with

__all__ = ["http_url", "scenario"]  # fixtures used by name


def test_prompts_and_resources_are_listed_with_their_arguments(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        async with McpServers([stdio()]) as servers:
            (state,) = servers.states()
            assert (state.prompts, state.resources) == (3, 3)
            prompts = {p.name: p for p in servers.prompts()}
            assert set(prompts) == {"greet", "review", "broken"}
            assert prompts["greet"].server == "local" and prompts["greet"].description == "A greeting prompt."
            assert prompts["review"].arguments == (McpPromptArgument("code", "", True),
                                                   McpPromptArgument("language", "", False))  # fmt: skip
            resources = {r.uri: r for r in servers.resources()}
            assert set(resources) == {"note://hello", "blob://logo", "note://big"}
            assert (resources["note://hello"].name, resources["note://hello"].mime_type) == ("hello", "text/plain")
            assert servers.notes() == []
        assert servers.prompts() == [] and servers.resources() == []  # stopped: nothing to offer

    scenario(body())


def test_a_prompt_is_filled_by_its_server(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        async with McpServers([stdio()]) as servers:
            prompts = {p.name: p for p in servers.prompts()}
            assert await servers.get_prompt(prompts["greet"], {"who": "Ada"}) == ("Say hello to Ada.", ["user"])
            text, roles = await servers.get_prompt(prompts["review"], {"code": "x = 1", "language": " "})
            assert roles == ["user", "assistant"]  # an empty optional argument is not sent: the default holds
            assert text == "User: Review this unnamed language code: x = 1\n\nAssistant: What should I look for first?"
            with pytest.raises(ToolError) as missing:
                await servers.get_prompt(prompts["review"], {"code": "  "})
            assert missing.value.message == "The prompt 'review' needs: code."
            with pytest.raises(ToolError) as failed:
                await servers.get_prompt(prompts["broken"], {})
            assert "MCP server 'local', prompt 'broken'" in failed.value.message
            assert "the server answered an error: Error rendering prompt broken" in failed.value.message
            assert (await servers.call(call("echo", '{"text": "still here"}'))).content == "still here"

    scenario(body())


def test_resources_are_read_as_text_and_binary_ones_refused(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        async with McpServers([stdio()]) as servers:
            resources = {r.uri: r for r in servers.resources()}
            assert await servers.read_resource(resources["note://hello"]) == "hello from the resource"
            with pytest.raises(ToolError) as binary:
                await servers.read_resource(resources["blob://logo"])
            assert binary.value.message.startswith("MCP server 'local', resource 'blob://logo': the resource has no text")
            big = await servers.read_resource(resources["note://big"])
            assert len(big) == 200_000
            assert bounded(big) == ("x" * MAX_INSERT_CHARS, 200_000 - MAX_INSERT_CHARS)

    scenario(body())


def test_prompts_and_resources_over_http(scenario: Callable[..., Any], http_url: str) -> None:
    async def body() -> None:
        async with McpServers([http(http_url)], store_with(mcp__TEST_KEY="s3cret-value")) as servers:
            prompts = {p.name: p for p in servers.prompts()}
            assert await servers.get_prompt(prompts["greet"], {"who": "HTTP"}) == ("Say hello to HTTP.", ["user"])
            (hello,) = [r for r in servers.resources() if r.uri == "note://hello"]
            assert hello.server == "remote"
            assert await servers.read_resource(hello) == "hello from the resource"

    scenario(body())


def test_prompt_and_resource_text() -> None:
    from mcp.types import (
        BlobResourceContents,
        ImageContent,
        PromptMessage,
        TextContent,
        TextResourceContents,
    )

    one = [PromptMessage(role="user", content=TextContent(type="text", text="a")),
           PromptMessage(role="user", content=ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"))]  # fmt: skip
    assert prompt_text(one) == ("a\n\n[image: image/png, 8 bytes]", ["user", "user"])
    mixed = [TextResourceContents(uri="note://a", text="text"),
             BlobResourceContents(uri="blob://b", blob="AAAA", mime_type="application/zip")]  # fmt: skip
    assert resource_text(mixed) == "text\n\n[binary content: application/zip, 3 bytes, blob://b]"
    with pytest.raises(ToolError):
        resource_text([BlobResourceContents(uri="blob://b", blob="AAAA")])
    assert bounded("abc", 5) == ("abc", 0) and bounded("abcdef", 4) == ("abcd", 2)


def test_a_resource_template_is_filled_in_and_read(scenario: Callable[..., Any]) -> None:
    async def body() -> None:
        async with McpServers([stdio()]) as servers:
            (template,) = servers.resource_templates()
            assert (template.server, template.name, template.uri_template, template.mime_type) == (
                "local", "topic_notes", "topic://{topic}/notes{?lang}", "text/plain")
            assert template.arguments == (McpPromptArgument("topic", "", True), McpPromptArgument("lang", "", False))
            uri, text = await servers.read_template(template, {"topic": "dragons & bread", "lang": ""})
            assert (uri, text) == ("topic://dragons%20%26%20bread/notes", "notes about dragons & bread (en)")
            assert await servers.read_template(template, {"topic": "owls", "lang": "de"}) == (
                "topic://owls/notes?lang=de", "notes about owls (de)")
            with pytest.raises(ToolError) as missing:
                await servers.read_template(template, {"lang": "de"})
            assert missing.value.message == "The resource template 'topic://{topic}/notes{?lang}' needs: topic."

    scenario(body())


def test_a_template_that_does_not_parse_is_left_out_and_said() -> None:
    from types import SimpleNamespace

    from app.tools.mcp_library import template_of

    bad = SimpleNamespace(uri_template="note://{a", name="bad", title=None, description=None, mime_type=None)
    with pytest.raises(ToolError) as caught:
        template_of("local", bad)
    assert caught.value.message.startswith("MCP server 'local': the resource template 'note://{a' is not a URI template")
    good = SimpleNamespace(uri_template="note://{a}", name="good", title="Good", description="d", mime_type=None)
    made = template_of("local", good)
    assert (made.label, made.expand({"a": "x/y"})) == ("Good", "note://x%2Fy")
