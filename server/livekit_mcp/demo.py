"""`livekit-mcp demo`: a short guided tour.

It starts the LiveKit sandbox, launches `livekit-mcp` over stdio the way Claude Desktop would, and drives it
with the MCP SDK's own client: list the rooms, find the agent in the support call, remove it (and its
dispatch, so it stays out), delete a room.
"""

from __future__ import annotations

import json
import secrets
import sys
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import get_default_environment
from mcp.types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult, TextContent

from livekit_mcp.sandbox import Sandbox

SUPPORT_ROOM = "support-call-1042"


def _say(text: str = "") -> None:
    print(text, flush=True)


async def _call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    _say(f"\n>>> {tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})")
    result = await client.call_tool(tool, args)
    for block in result.content:
        if isinstance(block, TextContent):
            _say(block.text)
    if result.is_error:
        raise SystemExit(f"demo: {tool} failed")
    return result.structured_content or {}


async def _user_says_yes(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    """The demo's stand-in for the person at the keyboard: shown the question, says yes (or types the name)."""
    _say(f"    [the server asks the user] {params.message}")
    fields = params.requested_schema.get("properties", {}) if isinstance(params, ElicitRequestFormParams) else {}
    if "room" in fields:
        typed = params.message.split("'")[1]  # the room named in the question
        _say(f"    [the user types] {typed}")
        return ElicitResult(action="accept", content={"room": typed})
    _say("    [the user answers] yes")
    return ElicitResult(action="accept", content={"confirm": True})


async def _tour() -> None:
    async with Sandbox(keys={"demo": secrets.token_hex(32)}, seed=True) as sandbox:
        _say(f"LiveKit sandbox with demo rooms at {sandbox.url} (key {sandbox.api_key}).")
        env = get_default_environment() | {
            "LIVEKIT_URL": sandbox.url,
            "LIVEKIT_API_KEY": sandbox.api_key,
            "LIVEKIT_API_SECRET": sandbox.api_secret,
        }
        server = StdioServerParameters(command=sys.executable, args=["-m", "livekit_mcp"], env=env)
        _say(f"Starting `{sys.executable} -m livekit_mcp` over stdio, as an MCP host would.")
        async with Client(server, elicitation_callback=_user_says_yes) as client:
            tools = await client.list_tools()
            _say(f"The server offers {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}.")
            await _call(client, "list_rooms", {})
            await _call(client, "list_participants", {"room": SUPPORT_ROOM})
            found = await _call(client, "find_agent", {"room": SUPPORT_ROOM})
            agent = found["agents"][0]["identity"]
            await _call(client, "get_participant", {"room": SUPPORT_ROOM, "identity": agent})
            await _call(client, "remove_agent", {"room": SUPPORT_ROOM})
            await _call(client, "list_participants", {"room": SUPPORT_ROOM})
            await _call(client, "delete_room", {"room": "town-hall"})
            await _call(client, "list_rooms", {})
            _say("\nThe structured result of find_agent, as a client application sees it:")
            _say(json.dumps(found, indent=2))
        _say("\nA bot that cannot ask its user (no elicitation) confirms with a token instead:")
        async with Client(server) as bot:
            preview = await _call(bot, "delete_room", {"room": "standup"})
            await _call(bot, "delete_room", {"room": "standup", "confirm_token": preview["confirm_token"]})
    _say("\nDone. Connect your own assistant with `livekit-mcp --sandbox` (see README: Connecting a client).")


def run_demo() -> None:
    anyio.run(_tour)
