"""MCP resources, for clients that attach context rather than call tools: the rooms, one room's snapshot, and one
room's history (the last day of it). Rooms are per project: `livekit://rooms` are the default project's,
`livekit://projects/{project}/rooms` another's; history is the default project's (its webhooks feed it)."""

from __future__ import annotations

import time
from collections.abc import Callable

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from livekit_mcp.errors import LiveKitMCPError, NotFound
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import RoomHistory, RoomList, RoomSummary
from livekit_mcp.projects import Projects
from livekit_mcp.store import Store, StoreError
from livekit_mcp.tools import AppContext, room_detail
from livekit_mcp.tools.rooms import HISTORY_OFF, sessions_of

ROOMS_SHOWN = 500
"""A resource has no cursor: beyond this many rooms it says how many more there are (list_rooms pages them)."""


HISTORY_SHOWN = 86_400
"""Seconds of history the room history resource holds (room_history goes further back, by pages)."""


def register_resources(server: MCPServer[AppContext], projects: Callable[[], Projects], history: Store | None) -> None:
    """Add the resources; `projects` gives the projects of the running lifespan."""

    def livekit(project: str = "") -> LiveKit:
        try:
            return projects().get(project).livekit
        except LiveKitMCPError as exc:
            raise ResourceNotFoundError(str(exc)) from exc

    async def rooms_of(lk: LiveKit) -> str:
        try:
            everything = sorted(await lk.list_rooms(), key=lambda r: r.name)
        except LiveKitMCPError as exc:
            raise ResourceError(str(exc)) from exc
        shown = [RoomSummary.of(r) for r in everything[:ROOMS_SHOWN]]
        return RoomList(rooms=shown, total=len(everything)).model_dump_json(exclude_none=True)

    async def room_of(lk: LiveKit, room: str) -> str:
        try:
            return (await room_detail(lk, room)).model_dump_json(exclude_none=True)
        except NotFound as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except LiveKitMCPError as exc:
            raise ResourceError(str(exc)) from exc

    @server.resource(
        "livekit://rooms", name="rooms", description="Every room with participant counts.", mime_type="application/json"
    )
    async def rooms() -> str:
        return await rooms_of(livekit())

    @server.resource(
        "livekit://projects/{project}/rooms",
        name="project rooms",
        description="Every room of one project (list_projects names them), with participant counts.",
        mime_type="application/json",
    )
    async def project_rooms(project: str) -> str:
        return await rooms_of(livekit(project))

    room_description = "One room: participants by kind, agents and their state, dispatches, publishers, uptime."

    @server.resource("livekit://rooms/{room}", name="room", description=room_description, mime_type="application/json")
    async def room(room: str) -> str:
        return await room_of(livekit(), room)

    @server.resource(
        "livekit://projects/{project}/rooms/{room}",
        name="project room",
        description=room_description,
        mime_type="application/json",
    )
    async def project_room(project: str, room: str) -> str:
        return await room_of(livekit(project), room)

    @server.resource(
        "livekit://rooms/{room}/history",
        name="room history",
        description="What happened in one room over the last day, by session: joins, departures and why, changes.",
        mime_type="application/json",
    )
    async def room_history(room: str) -> str:
        if history is None:
            return RoomHistory(history="off", room=room, note=HISTORY_OFF).model_dump_json(exclude_none=True)
        try:
            livekit().policy.check_room(
                room, changes=False
            )  # as LiveKit's calls do: rooms outside allowed_rooms are unseen
            page = await history.events(room, time.time() - HISTORY_SHOWN, 500)
        except StoreError as exc:
            note = f"Room history is unavailable: {exc}."
            return RoomHistory(history="unavailable", room=room, note=note).model_dump_json(exclude_none=True)
        except LiveKitMCPError as exc:
            raise ResourceError(str(exc)) from exc
        found = RoomHistory(history="on", room=room, sessions=sessions_of(page.events), next_cursor=page.cursor)
        return found.model_dump_json(exclude_none=True)
