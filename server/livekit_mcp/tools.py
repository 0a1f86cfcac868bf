"""The MCP tools: thin, typed functions over the LiveKit seam.

Arguments are validated by pydantic before anything is sent to LiveKit; a tool answers with compact
structured content (its return model) plus a short text for clients that show only text.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field

from livekit_mcp.errors import InvalidInput, RoomNotFound
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import (
    AgentInfo,
    AgentList,
    DeletedRoom,
    Participant,
    ParticipantList,
    ParticipantSummary,
    RemovedParticipant,
    RoomList,
    RoomSummary,
)

T = TypeVar("T")


@dataclass
class AppContext:
    """What the lifespan hands every tool."""

    livekit: LiveKit


def _livekit(ctx: Context) -> LiveKit:
    # The SDK types the lifespan context loosely; ours is always the AppContext that app.lifespan yields.
    return cast(AppContext, ctx.request_context.lifespan_context).livekit


# --- Argument types ----------------------------------------------------------------------------------


def _plain_name(value: str) -> str:
    """LiveKit accepts any string and simply matches nothing, so the checks a name needs are ours."""
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


RoomName = Annotated[str, Field(min_length=1, max_length=256, description="Room name."), AfterValidator(_plain_name)]
Identity = Annotated[
    str, Field(min_length=1, max_length=256, description="Participant identity."), AfterValidator(_plain_name)
]
AgentName = Annotated[
    str, Field(min_length=1, max_length=256, description="Agent name (lk.agent_name)."), AfterValidator(_plain_name)
]
Cursor = Annotated[str | None, Field(max_length=1024, description="next_cursor from the previous page.")]
Kind = Literal["STANDARD", "AGENT", "SIP", "INGRESS", "EGRESS", "CONNECTOR", "BRIDGE"]

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)


# --- Output helpers ----------------------------------------------------------------------------------


def reply(result: BaseModel, text: str) -> CallToolResult:
    """Structured content without empty fields, plus the readable text."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )


def _page(
    items: Sequence[T], key: Callable[[T], list[Any]], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """One page of `items` (already sorted by `key`) after the cursor, and the cursor of the next page.

    The cursor is the sort key of the last item shown, so a page stays right when people join or leave.
    """
    start = 0
    if cursor:
        try:
            after = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        except (ValueError, binascii.Error) as exc:
            raise InvalidInput("cursor", "not a cursor this server returned; omit it to start from the top") from exc
        if not isinstance(after, list):
            raise InvalidInput("cursor", "not a cursor this server returned; omit it to start from the top")
        while start < len(items) and key(items[start]) <= after:
            start += 1
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    next_cursor = base64.urlsafe_b64encode(json.dumps(key(page[-1])).encode()).decode() if more and page else None
    return page, next_cursor


def _participant_line(p: ParticipantSummary) -> str:
    name = f' "{p.name}"' if p.name else ""
    agent = f" agent={p.agent_name or '?'} state={p.agent_state or '?'}" if p.agent_name or p.agent_state else ""
    tracks = ""
    if p.tracks:
        tracks = f", tracks audio={p.tracks.audio} video={p.tracks.video} muted={p.tracks.muted}"
    return f"- {p.identity}{name} {p.kind} {p.state}{agent}, joined {p.joined_at or '?'}{tracks}"


def _more(next_cursor: str | None) -> str:
    return f"\nMore: call again with cursor='{next_cursor}'." if next_cursor else ""


def _by_kind(participants: Sequence[Participant]) -> dict[str, int]:
    return dict(Counter(p.effective_kind for p in participants))


# --- The tools ---------------------------------------------------------------------------------------


def register(server: MCPServer[AppContext]) -> None:
    """Add every tool to the server."""

    @server.tool(annotations=READ)
    async def list_rooms(
        ctx: Context,
        names: Annotated[list[RoomName] | None, Field(max_length=100, description="Only these rooms.")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, RoomList]:
        """List the rooms on the LiveKit server with participant counts, sorted by name."""
        rooms = sorted(await _livekit(ctx).list_rooms(names or ()), key=lambda r: r.name)
        page, next_cursor = _page(rooms, lambda r: [r.name], limit, cursor)
        found = {r.name for r in rooms}
        not_found = [n for n in dict.fromkeys(names or ()) if n not in found] or None
        result = RoomList(
            rooms=[RoomSummary.of(r) for r in page], total=len(rooms), next_cursor=next_cursor, not_found=not_found
        )
        lines = [f"{len(rooms)} room(s); showing {len(page)}."]
        lines += [f"- {r.name} ({r.participants} participants, created {r.created_at or '?'})" for r in result.rooms]
        if not_found:
            lines.append(f"Not rooms: {', '.join(not_found)}.")
        return reply(result, "\n".join(lines) + _more(next_cursor))

    @server.tool(annotations=READ)
    async def list_participants(
        ctx: Context,
        room: RoomName,
        kind: Annotated[Kind | None, Field(description="Only participants of this kind.")] = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, ParticipantList]:
        """List who is in a room (identity, kind, state, tracks; agents with their name and state)."""
        lk = _livekit(ctx)
        everyone = await lk.list_participants(room)
        if not everyone and not await lk.list_rooms([room]):
            raise RoomNotFound(room)
        chosen = sorted(
            (p for p in everyone if kind is None or p.effective_kind == kind), key=lambda p: (p.joined_at, p.identity)
        )
        page, next_cursor = _page(chosen, lambda p: [p.joined_at, p.identity], limit, cursor)
        result = ParticipantList(
            room=room,
            participants=[ParticipantSummary.of(p) for p in page],
            total=len(chosen),
            next_cursor=next_cursor,
        )
        of_kind = f" of kind {kind}" if kind else ""
        head = f"Room '{room}' has {len(chosen)} participant(s){of_kind}; showing {len(page)}."
        if not everyone:
            head = f"Room '{room}' exists and is empty."
        return reply(result, "\n".join([head, *map(_participant_line, result.participants)]) + _more(next_cursor))

    @server.tool(annotations=READ)
    async def find_agent(
        ctx: Context,
        room: Annotated[RoomName | None, Field(description="Search only this room; all rooms when omitted.")] = None,
        agent_name: Annotated[AgentName | None, Field(description="Only agents dispatched under this name.")] = None,
    ) -> Annotated[CallToolResult, AgentList]:
        """Find AI agent participants (their identity, agent name and state) in one room or in every room."""
        lk = _livekit(ctx)
        # Empty rooms hold no agent: skipping them saves a call per idle room on large deployments.
        rooms = [room] if room is not None else sorted(r.name for r in await lk.list_rooms() if r.num_participants)
        per_room = await lk.gather(lk.list_participants, rooms)
        if room is not None and not per_room[0] and not await lk.list_rooms([room]):
            raise RoomNotFound(room)
        agents = [
            AgentInfo.of(name, p)
            for name, participants in zip(rooms, per_room, strict=True)
            for p in participants
            if p.is_agent and (agent_name is None or p.agent_name == agent_name)
        ]
        result = AgentList(agents=agents, rooms_searched=len(rooms))
        where = f"room '{room}'" if room else f"{len(rooms)} room(s) with participants"
        named = f" named '{agent_name}'" if agent_name else ""
        lines = [f"{len(agents)} agent(s){named} in {where}."]
        lines += [f"- {a.identity} in '{a.room}': agent={a.agent_name or '?'} state={a.state or '?'}" for a in agents]
        return reply(result, "\n".join(lines))

    @server.tool(annotations=DESTRUCTIVE)
    async def remove_participant(
        ctx: Context, room: RoomName, identity: Identity
    ) -> Annotated[CallToolResult, RemovedParticipant]:
        """Disconnect a participant from a room (their token stays valid, so they can rejoin)."""
        lk = _livekit(ctx)
        target = await lk.get_participant(room, identity)
        await lk.remove_participant(room, identity)
        notes = ["Their join token is not revoked: they can rejoin with it until it expires."]
        if target.is_agent:
            notes.append(
                "This is an agent: its dispatch is still there. The open-source server does not relaunch it, "
                "but LiveKit Cloud may; delete the dispatch to keep the agent out."
            )
        result = RemovedParticipant(
            room=room,
            identity=identity,
            sid=target.sid,
            kind=target.effective_kind,
            name=target.name or None,
            agent_name=target.agent_name,
            notes=notes,
        )
        return reply(
            result, f"Removed {target.effective_kind} participant '{identity}' from '{room}'. " + " ".join(notes)
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_room(ctx: Context, room: RoomName) -> Annotated[CallToolResult, DeletedRoom]:
        """Delete a room, disconnecting everyone in it."""
        lk = _livekit(ctx)
        target = await lk.get_room(room)
        participants = await lk.list_participants(room)
        await lk.delete_room(room)
        counts = _by_kind(participants)
        result = DeletedRoom(room=room, sid=target.sid, disconnected=counts, total_disconnected=len(participants))
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nobody"
        return reply(result, f"Deleted room '{room}'; disconnected {detail}.")
