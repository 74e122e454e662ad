"""MCP tools, one module per family. Each `register(server, app)` adds its tools."""
