"""Where tool results come from besides the user's stubs: MCP servers (over stdio and
streamable HTTP, with the official ``mcp`` SDK). Qt-free; the SDK is imported inside the
modules' functions so that start-up never pays for it."""
