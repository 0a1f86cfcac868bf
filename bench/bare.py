"""The floor: a bare `MCPServer` with one trivial tool, on stdio or streamable HTTP.

Run as a script (`python bench/bare.py [--http PORT]`), as a host would launch any server, so that it
imports nothing but the SDK: the cold start and memory comparisons rest on that.
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
def ping(text: str = "") -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), streamable_http_path="/mcp")
    else:
        server.run()
