"""The `egress` toolset: a room's recordings and streams. Started only to the output configured in the server's
settings (LIVEKIT_MCP_EGRESS_OUTPUT), never to storage named in chat; stopping one is destructive."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field

from livekit_mcp.confirm import Plan, Planned
from livekit_mcp.errors import InvalidInput, NotFound
from livekit_mcp.models import Egress, EgressList, EgressResult
from livekit_mcp.scope import Scope
from livekit_mcp.text import shown
from livekit_mcp.tools._args import AnyRoom, RoomName, ids
from livekit_mcp.tools._base import DESTRUCTIVE, READ, SEND, reply
from livekit_mcp.tools._registry import Confirm, tool

EgressId = Annotated[str, Field(max_length=64, description="EG_… id from list_egress."), ids("EG_", "an egress")]
RUNNING = ("STARTING", "ACTIVE")


def egress_line(e: Egress) -> str:
    since = f" since {e.started_at}" if e.started_at else ""
    ended = f", ended {e.ended_at}" if e.ended_at else ""
    to = f" to {', '.join(map(shown, e.outputs))}" if e.outputs else ""
    error = f", error: {shown(e.error)}" if e.error else ""
    return f"- {e.egress_id} {e.kind} of '{shown(e.room)}' {e.status}{since}{ended}{to}{error}"


@tool("egress", READ)
async def list_egress(
    scope: Scope,
    room: AnyRoom = "",
    active: Annotated[bool, Field(description="Only those recording now.")] = False,
) -> Annotated[CallToolResult, EgressList]:
    """List recordings and streams (egress): status, start, outputs."""
    found = await scope.livekit.list_egress(room=room, active=active)
    where = f" of room '{room}'" if room else ""
    lines = [f"{len(found)} {'active ' if active else ''}egress{where}.", *map(egress_line, found)]
    return reply(EgressList(egress=found), "\n".join(lines))


@tool("egress", SEND)
async def start_room_egress(
    scope: Scope,
    room: RoomName,
    audio_only: bool = False,
) -> Annotated[CallToolResult, EgressResult]:
    """Record a room to the output set in this server's settings; returns the egress id."""
    lk = scope.livekit
    await lk.get_room(room)  # LiveKit would answer a missing room only after it looked for an egress service
    started = await lk.start_room_egress(room, audio_only=audio_only)
    what = "audio" if audio_only else "audio and video"
    return reply(
        EgressResult(egress=started),
        f"Recording room '{room}' ({what}) as {started.egress_id} to {lk.egress_output}, {started.status}; "
        "stop_egress ends it.",
    )


async def _stop_plan(scope: Scope, egress_id: str) -> Planned[Egress]:
    found = await scope.livekit.list_egress(egress_id=egress_id)
    if not found:
        raise NotFound(f"egress '{egress_id}' does not exist; list_egress shows the ones that do")
    e = found[0]
    if e.status not in RUNNING:
        raise InvalidInput("egress_id", f"{egress_id} is {e.status} already; only a running egress can be stopped")
    to = f" to {', '.join(map(shown, e.outputs))}" if e.outputs else ""
    question = (
        f"This stops the {e.kind} recording {egress_id} of room '{shown(e.room)}' "
        f"({e.status} since {e.started_at or '?'}"
        f"{to}); what it recorded so far is kept."
    )
    plan = Plan("stop_egress", e.room, {"egress_id": egress_id}, [egress_id], question)
    return Planned(plan, e, EgressResult(egress=e))


@tool("egress", DESTRUCTIVE, confirm=Confirm(_stop_plan))
async def stop_egress(
    scope: Scope, egress_id: EgressId, planned: Planned[Egress]
) -> Annotated[CallToolResult, EgressResult]:
    """Stop a recording or stream (egress)."""
    room = planned.found.room
    stopped = await scope.livekit.stop_egress(room, egress_id)
    return reply(EgressResult(egress=stopped), f"Stopping {egress_id} of '{room}': now {stopped.status}.")
