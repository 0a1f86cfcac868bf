"""MCP resources, for clients that attach context rather than call tools: the rooms, one room's snapshot, and one
room's history (the last day of it). Rooms are per project: `livekit://rooms` are the default project's,
`livekit://projects/{project}/rooms` another's; history is the default project's (its webhooks feed it)."""

from __future__ import annotations

import time
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from livekit_mcp.agent_health import health_of
from livekit_mcp.errors import InvalidInput, LiveKitMCPError, NotFound, StoreError
from livekit_mcp.history import gaps_note, gaps_since
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import RoomHistory, RoomList, RoomSummary
from livekit_mcp.scope import AppContext, Scope, scope_of
from livekit_mcp.tools import room_detail
from livekit_mcp.tools.rooms import HISTORY_ELSEWHERE, HISTORY_OFF, sessions_of

ROOMS_SHOWN = 500
"""A resource has no cursor: beyond this many rooms it says how many more there are (list_rooms pages them)."""


HISTORY_SHOWN = 86_400
"""Seconds of history the room history resource holds (room_history goes further back, by pages)."""
HEALTH_SHOWN = 7 * 86_400
"""Seconds of an agent's record the agent health resource covers (room_history(agent_name=…, since=…) any period)."""


def register_resources(server: MCPServer[AppContext]) -> None:
    """Add the resources; each read runs in its request scope (scope.py), as a tool call does: a token limited to
    some projects reads nothing of the others, and room rules apply as at the LiveKit seam."""

    def scope(ctx: Context[Any, Any], project: str = "") -> Scope:
        try:
            return scope_of(ctx, project)
        except InvalidInput as exc:  # a project it does not know (or may not be told of)
            raise ResourceNotFoundError(str(exc)) from exc
        except LiveKitMCPError as exc:
            raise ResourceError(str(exc)) from exc

    def unkept(in_scope: Scope, room: str | None = None) -> str:
        """The answer of a history resource where no history is kept for the scope's project."""
        note = HISTORY_OFF if in_scope.app.kept_history is None else HISTORY_ELSEWHERE
        return RoomHistory(history="off", room=room, note=note).model_dump_json(exclude_none=True)

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

    # A template with an optional query: only a template's reader is handed the request's context (so its scope);
    # the server lists it at its bare URI too (app._Server.list_resources).
    @server.resource(
        "livekit://rooms{?project}",
        name="rooms",
        description="Every room with participant counts.",
        mime_type="application/json",
    )
    async def rooms(ctx: Context[Any, Any], project: str = "") -> str:
        return await rooms_of(scope(ctx, project).livekit)

    @server.resource(
        "livekit://projects/{project}/rooms",
        name="project rooms",
        description="Every room of one project (list_projects names them), with participant counts.",
        mime_type="application/json",
    )
    async def project_rooms(project: str, ctx: Context[Any, Any]) -> str:
        return await rooms_of(scope(ctx, project).livekit)

    room_description = "One room: participants by kind, agents and their state, dispatches, publishers, uptime."

    @server.resource("livekit://rooms/{room}", name="room", description=room_description, mime_type="application/json")
    async def room(room: str, ctx: Context[Any, Any]) -> str:
        return await room_of(scope(ctx).livekit, room)

    @server.resource(
        "livekit://projects/{project}/rooms/{room}",
        name="project room",
        description=room_description,
        mime_type="application/json",
    )
    async def project_room(project: str, room: str, ctx: Context[Any, Any]) -> str:
        return await room_of(scope(ctx, project).livekit, room)

    @server.resource(
        "livekit://rooms/{room}/history",
        name="room history",
        description="What happened in one room over the last day, by session: joins, departures and why, changes.",
        mime_type="application/json",
    )
    async def room_history(room: str, ctx: Context[Any, Any]) -> str:
        in_scope = scope(ctx)
        history = in_scope.history
        if history is None:
            return unkept(in_scope, room)
        try:
            in_scope.policy.check_room(
                room, changes=False
            )  # as LiveKit's calls do: rooms outside allowed_rooms are unseen
            page = await history.events(room, time.time() - HISTORY_SHOWN, 500)
            missing = gaps_note(await gaps_since(history, time.time() - HISTORY_SHOWN))  # what may be missing
        except StoreError as exc:
            note = f"Room history is unavailable: {exc}."
            return RoomHistory(history="unavailable", room=room, note=note).model_dump_json(exclude_none=True)
        except LiveKitMCPError as exc:
            raise ResourceError(str(exc)) from exc
        found = RoomHistory(
            history="on", room=room, sessions=sessions_of(page.events), next_cursor=page.cursor, note=missing or None
        )
        return found.model_dump_json(exclude_none=True)

    @server.resource(
        "livekit://agents/{agent_name}/health",
        name="agent health",
        description="One agent over the last 7 days: rooms expected, joined, time to join, how sessions ended, "
        "rooms it never came to.",
        mime_type="application/json",
    )
    async def agent_health(agent_name: str, ctx: Context[Any, Any]) -> str:
        in_scope = scope(ctx)
        history = in_scope.history
        if history is None:
            return unkept(in_scope)
        try:
            health = await health_of(history, agent_name, time.time() - HEALTH_SHOWN, in_scope.policy.visible)
        except StoreError as exc:
            note = f"Room history is unavailable: {exc}."
            return RoomHistory(history="unavailable", note=note).model_dump_json(exclude_none=True)
        return RoomHistory(history="on", agent=health).model_dump_json(exclude_none=True)
