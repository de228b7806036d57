"""What an MCP server offers besides tools: its prompts and resources, as plain data and text.

A prompt is a template the server fills (``prompts/get`` with string arguments) into messages;
a resource is a piece of context the server reads out (``resources/read``) by its URI, and a
resource template is a URI with variables (RFC 6570, expanded by the SDK's ``UriTemplate``)
that names many resources. The window inserts any of them into the message being written,
where the user sees and edits it before sending. This module turns the SDK's types into :class:`McpPrompt` /
:class:`McpResource` and their results into text; :class:`~app.tools.mcp_client.McpServers`
makes the requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import ToolError
from app.tools.mcp_content import content_text

MAX_INSERT_CHARS = 100_000
"""The most characters of a prompt or resource put into a message (the rest is cut, and said)."""


@dataclass(frozen=True, slots=True)
class McpPromptArgument:
    """One argument of a prompt (its value is a string)."""

    name: str
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class McpOffer:
    """What every prompt and resource has: its server, its name, title and description."""

    server: str
    name: str
    title: str = ""
    description: str = ""

    @property
    def label(self) -> str:
        """How a list shows it: its title, else its name."""
        return self.title or self.name


@dataclass(frozen=True, slots=True)
class McpFillable(McpOffer):
    """An offer the user fills in first: its ``arguments`` (strings)."""

    arguments: tuple[McpPromptArgument, ...] = ()

    def missing(self, values: Mapping[str, str]) -> list[str]:
        """The required arguments that ``values`` leaves empty."""
        return [a.name for a in self.arguments if a.required and not values.get(a.name, "").strip()]


@dataclass(frozen=True, slots=True)
class McpPrompt(McpFillable):
    """A prompt a server offers."""


@dataclass(frozen=True, slots=True)
class McpResourceTemplate(McpFillable):
    """A resource template a server offers: each variable of ``uri_template`` is an argument,
    required unless it is a query variable (``{?q}``)."""

    uri_template: str = field(kw_only=True)
    mime_type: str = ""

    def expand(self, values: Mapping[str, str]) -> str:
        """The URI for ``values`` (each percent-encoded as its place in the template wants)."""
        from mcp.shared.uri_template import UriTemplate

        return UriTemplate.parse(self.uri_template).expand({k: v for k, v in values.items() if v})


@dataclass(frozen=True, slots=True)
class McpResource(McpOffer):
    """A resource a server offers, read by its ``uri`` (``size`` in bytes when the server says)."""

    uri: str = field(kw_only=True)
    mime_type: str = ""
    size: int | None = None

    @property
    def label(self) -> str:
        """Its title, else its name, else its URI."""
        return self.title or self.name or self.uri


def prompt_of(server: str, prompt: Any) -> McpPrompt:
    """An ``mcp.types.Prompt`` of ``server`` as an :class:`McpPrompt`."""
    args = tuple(McpPromptArgument(str(a.name), str(a.description or ""), bool(a.required))
                 for a in (prompt.arguments or ()))  # fmt: skip
    return McpPrompt(server, str(prompt.name), str(prompt.title or ""), str(prompt.description or ""), args)


def template_of(server: str, template: Any) -> McpResourceTemplate:
    """An ``mcp.types.ResourceTemplate`` of ``server``; raises ToolError when its URI template
    does not parse (the template is then left out, and said)."""
    from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

    text = str(template.uri_template)
    try:
        parsed = UriTemplate.parse(text)
    except InvalidUriTemplate as exc:
        raise ToolError(f"MCP server '{server}': the resource template {text!r} is not a URI template ({exc}); "
                        "it is left out.") from None  # fmt: skip
    return McpResourceTemplate(server, str(template.name or ""), str(template.title or ""),
                               str(template.description or ""),
                               tuple(McpPromptArgument(n, "", n not in parsed.query_variable_names)
                                     for n in parsed.variable_names),
                               uri_template=text, mime_type=str(template.mime_type or ""))  # fmt: skip


def resource_of(server: str, resource: Any) -> McpResource:
    """An ``mcp.types.Resource`` of ``server`` as an :class:`McpResource`."""
    size = resource.size if isinstance(resource.size, int) else None
    return McpResource(server, str(resource.name or ""), str(resource.title or ""), str(resource.description or ""),
                       uri=str(resource.uri), mime_type=str(resource.mime_type or ""), size=size)  # fmt: skip


def prompt_text(messages: Iterable[Any]) -> tuple[str, list[str]]:
    """The text of a ``prompts/get`` result's messages, and their roles in order.

    One message, or only user messages: their texts, a blank line between. When the server's
    prompt includes the assistant's side too, each message is headed by its role, so the
    user sees the whole exchange it describes."""
    parts: list[tuple[str, str]] = []
    for message in messages:
        role = str(getattr(message, "role", "user"))
        parts.append((role, content_text([message.content])))
    roles = [role for role, _ in parts]
    if all(role == "user" for role in roles):
        return "\n\n".join(text for _, text in parts), roles
    return "\n\n".join(f"{role.capitalize()}: {text}" for role, text in parts), roles


def resource_text(contents: Iterable[Any]) -> str:
    """The text of a ``resources/read`` result: each text item as is; a binary item named
    with its type and size (its bytes cannot go into a message). Raises :class:`ToolError`
    when nothing in it is text."""
    parts: list[str] = []
    binary = 0
    for item in contents:
        text = getattr(item, "text", None)
        if isinstance(text, str):
            parts.append(text)
            continue
        binary += 1
        blob = str(getattr(item, "blob", "") or "")
        size = len(blob) * 3 // 4 - blob.count("=", -2)
        parts.append(f"[binary content: {getattr(item, 'mime_type', None) or 'unknown type'}, {size} bytes, "
                     f"{getattr(item, 'uri', '')}]")  # fmt: skip
    if not parts or binary == len(parts):
        raise ToolError("the resource has no text (only binary content), so it cannot go into a message",
                        hint="Pick a text resource.")  # fmt: skip
    return "\n\n".join(parts)


def bounded(text: str, limit: int = MAX_INSERT_CHARS) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many were cut (0: none)."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit
