"""MCP resources, for clients that attach context rather than call tools: the rooms, and one room's snapshot."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from livekit_mcp.errors import LiveKitMCPError, NotFound
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import RoomList, RoomSummary
from livekit_mcp.tools import AppContext, room_detail

ROOMS_SHOWN = 500
"""A resource has no cursor: beyond this many rooms it says how many more there are (list_rooms pages them)."""


def register_resources(server: MCPServer[AppContext], livekit: Callable[[], LiveKit]) -> None:
    """Add the resources; `livekit` gives the process's LiveKit connection (opened by the lifespan)."""

    @server.resource(
        "livekit://rooms", name="rooms", description="Every room with participant counts.", mime_type="application/json"
    )
    async def rooms() -> str:
        try:
            everything = sorted(await livekit().list_rooms(), key=lambda r: r.name)
        except LiveKitMCPError as exc:
            raise ResourceError(str(exc)) from exc
        shown = [RoomSummary.of(r) for r in everything[:ROOMS_SHOWN]]
        return RoomList(rooms=shown, total=len(everything)).model_dump_json(exclude_none=True)

    @server.resource(
        "livekit://rooms/{room}",
        name="room",
        description="One room: participants by kind, agents and their state, dispatches, publishers, uptime.",
        mime_type="application/json",
    )
    async def room(room: str) -> str:
        try:
            return (await room_detail(livekit(), room)).model_dump_json(exclude_none=True)
        except NotFound as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except LiveKitMCPError as exc:
            raise ResourceError(str(exc)) from exc
