"""livekit-mcp: an MCP server for operating LiveKit rooms safely."""

__version__ = "0.1.0"
