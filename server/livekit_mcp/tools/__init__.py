"""The MCP tools: thin, typed functions over the LiveKit seam, one module per toolset.

Arguments are validated by pydantic before anything is sent to LiveKit; a tool answers with compact
structured content (its return model) plus a short text for clients that show only text. Each tool belongs
to a toolset (`rooms`, `participants`, `agents`, `data`, `rpc`, `tokens`, `sip`, `egress`, `ingress`);
`build_tools` gives the enabled ones, each in its request scope (tools/_registry.py).
"""

# Importing the toolset modules declares their tools, in this order: the order of tools/list.
from livekit_mcp.tools import rooms, participants, agents, data, rpc, tokens, sip, egress, ingress, projects  # noqa: F401, I001
from livekit_mcp.tools._base import invalid_arguments
from livekit_mcp.tools._registry import build_tools
from livekit_mcp.tools.rooms import room_detail

__all__ = ["build_tools", "invalid_arguments", "room_detail"]
